"""``bench prompts import`` and ``bench prompts list``: real files in, a
prompt set out that every command reads; bad files refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core.prompts import Prompt, load_prompt_set
from bench.core.prompts.importers import import_prompts
from bench.errors import PromptError
from tests.core.test_cli_run import bench

SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "human", "value": "Tell me about Gaudi."},
            {"from": "gpt", "value": "An accelerator with HBM and on-chip RoCE."},
            {"from": "human", "value": "And the second turn?"},
            {"from": "gpt", "value": "Not kept."},
        ],
    },
    {"id": "b", "conversations": [{"from": "gpt", "value": "a reply to nothing"}]},
    {
        "id": "c",
        "conversations": [
            {"from": "system", "value": "be brief"},
            {"from": "human", "value": "What is a KV cache?"},
            {"from": "gpt", "value": "Keys and values kept per token."},
        ],
    },
]


def test_sharegpt_keeps_each_first_user_turn_and_its_reply(tmp_path: Path) -> None:
    source = tmp_path / "sg.json"
    source.write_text(json.dumps(SHAREGPT))
    done = import_prompts(source, "sharegpt", "sg", tmp_path / "prompts")
    assert (done.kept, done.skipped) == (2, 1)
    ps = load_prompt_set(str(done.path))
    assert ps.prompts == (
        Prompt(text="Tell me about Gaudi.", reply="An accelerator with HBM and on-chip RoCE."),
        Prompt(text="What is a KV cache?", reply="Keys and values kept per token."),
    )
    # the reply is part of the content hash; a set without replies keeps its shas
    assert ps.prompts[0].sha != Prompt(text="Tell me about Gaudi.").sha
    # JSON lines of the same records import the same
    lines = tmp_path / "sg.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in SHAREGPT))
    again = import_prompts(lines, "sharegpt", "sg2", tmp_path / "prompts")
    assert load_prompt_set(str(again.path)).sha == ps.sha


def test_jsonl_prompts_with_replies_or_messages(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [
        {"prompt": "one", "completion": "uno"},
        {"prompt": "two"},
        {"messages": [{"role": "user", "content": "three"}, {"role": "assistant", "content": "3"}]},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows))
    done = import_prompts(source, "jsonl", "mixed", tmp_path)
    assert [(p.text, p.reply) for p in load_prompt_set(str(done.path)).prompts] == [
        ("one", "uno"),
        ("two", None),
        ("three", "3"),
    ]


@pytest.mark.parametrize(
    "content,fmt,message",
    [
        ("What is LLaMA?\nExplain attention.\n", "jsonl", "neither a JSON array nor JSON lines"),
        ('{"prompt": "x"}\n', "sharegpt", "not a ShareGPT record"),
        ('[{"conversations": [{"from": "gpt", "value": "x"}]}]', "sharegpt", "no sharegpt conv"),
        ('{"text": "x"}\n', "jsonl", "expected an object with 'prompt' or 'messages'"),
        ('[{"conversations": []', "sharegpt", "not a JSON array"),
    ],
    ids=["text-file", "jsonl-as-sharegpt", "no-exchange", "unknown-keys", "truncated"],
)
def test_a_file_that_is_not_the_format_is_refused(
    tmp_path: Path, content: str, fmt: str, message: str
) -> None:
    source = tmp_path / "bad"
    source.write_text(content)
    with pytest.raises(PromptError, match=message):
        import_prompts(source, fmt, "bad", tmp_path / "out")
    assert not (tmp_path / "out" / "bad.jsonl").exists()


@pytest.mark.slow
def test_cli_import_then_list_with_percentiles(tiny_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "sg.json"
    source.write_text(json.dumps(SHAREGPT))
    folder = tmp_path / "prompts"
    proc = bench("prompts", "import", str(source), "--format", "sharegpt", "--name", "sg",
                 "--dir", str(folder), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sg.jsonl: 2 prompts; 1 without a user turn and a reply skipped" in proc.stdout
    proc = bench("prompts", "list", "--tokenizer", str(tiny_model), "--format", "json",
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (row,) = [r for r in json.loads(proc.stdout) if r["name"] == "sg"]
    assert row["prompts"] == 2 and row["replies"] == 2
    assert 1 < row["in_p50"] <= row["in_p90"] <= row["in_max"]
    assert 1 < row["reply_p50"] <= row["reply_max"]
    bad = bench("prompts", "import", str(tiny_model / "config.json"), "--format", "sharegpt",
                "--name", "x", "--dir", str(folder), cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
