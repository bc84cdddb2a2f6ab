"""``--output-lengths dataset``: each request asks for its reference reply's
length in the model's tokens (capped), as vLLM does for ShareGPT; counted
once when the run is planned, kept per request by the real tiny model in
every timing mode, refused in one line where it cannot mean anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.core.config import RunConfig
from bench.core.prompts import Prompt, load_prompt_set
from bench.core.prompts.exact import PromptTokens
from bench.core.prompts.lengths import reply_lengths
from bench.errors import ConfigError, PromptError
from tests.core.test_cli_run import bench

REPLIES = [
    "Sure.",
    "The capital of France is Paris, a city on the Seine with a long history.",
    "Yes",
    "Water boils at one hundred degrees Celsius at sea level, and lower at altitude. " * 6,
    "No idea at all, sorry.",
]
CAP = 24


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def expected(tokenizer: Any, reply: str, cap: int = CAP) -> int:
    """Counted independently: the reply's tokens without BOS, 1..cap."""
    return max(1, min(cap, len(tokenizer(reply, add_special_tokens=False)["input_ids"])))


@pytest.fixture
def sharegpt_set(tmp_path: Path) -> Path:
    """A ShareGPT file imported as a prompt set (one record has no reply)."""
    records = [
        {
            "conversations": [
                {"from": "human", "value": f"question {i}: why?"},
                {"from": "gpt", "value": r},
            ]
        }
        for i, r in enumerate(REPLIES)
    ]
    records.append({"conversations": [{"from": "human", "value": "unanswered"}]})
    source = tmp_path / "sg.json"
    source.write_text(json.dumps(records))
    proc = bench(
        "prompts", "import", str(source), "--format", "sharegpt", "--name", "sg", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "prompts" / "sg.jsonl"


def test_lengths_are_the_replies_tokens_capped_and_at_least_one(tokenizer: Any) -> None:
    prompts = [Prompt(text=f"q{i}", reply=r) for i, r in enumerate([*REPLIES, " "])]
    lengths = reply_lengths(
        prompts * 2, PromptTokens(tokenizer, False), CAP
    )  # repeats counted once
    assert lengths == {p.sha: expected(tokenizer, p.reply or "") for p in prompts}
    assert set(lengths.values()) >= {1, CAP} and len(set(lengths.values())) >= 4


def test_a_prompt_without_a_reply_is_refused(tokenizer: Any) -> None:
    with pytest.raises(PromptError, match="1 of 2 prompts have no reference reply"):
        reply_lengths(
            [Prompt(text="a", reply="b"), Prompt(text="c")], PromptTokens(tokenizer, False), CAP
        )


def test_fixed_lengths_keep_their_fingerprints() -> None:
    """A field added later stays out of the history key at its legacy value."""
    fixed = RunConfig(model="m", device="cpu")
    ident = fixed.identity(prompt_set_sha="x", n_requests=1)
    assert "output_lengths" not in ident
    dataset = fixed.replace(output_lengths="dataset")
    assert dataset.identity(prompt_set_sha="x", n_requests=1)["output_lengths"] == "dataset"
    assert dataset.label == "m/bf16/bs1/outds128" and fixed.label == "m/bf16/bs1"


def test_with_input_tokens_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="use one or the other"):
        RunConfig(model="m", input_tokens=64, output_lengths="dataset")


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", [(), ("--timing", "dual"), ("--stop-at-eos",)], ids=["stream", "dual", "stop-at-eos"]
)
def test_each_request_keeps_the_length_it_asked_for(
    tiny_model: Path, tokenizer: Any, sharegpt_set: Path, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    out = tmp_path / "o.jsonl"
    proc = bench(
        "run", "--model", str(tiny_model), "--prompts", str(sharegpt_set),
        "--output-lengths", "dataset", "--max-new-tokens", str(CAP), "--batch-size", "2",
        "--limit", "6", "--warmup", "0", "--no-db", "--output", str(out), *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    rows = sorted((r for r in lines if r["kind"] == "request"), key=lambda r: r["request_index"])
    (summary,) = [r for r in lines if r["kind"] == "summary"]
    replies = [p.reply or "" for p in load_prompt_set(str(sharegpt_set)).prompts]
    wanted = [expected(tokenizer, replies[i % len(replies)]) for i in range(6)]
    assert len(rows) == 6
    for row, n in zip(rows, wanted, strict=True):
        got = row["output_tokens"]
        assert got == n if "--stop-at-eos" not in extra else 1 <= got <= n
        assert len(row["itl_ms"]) == got - 1 and len(row["output_token_ids"]) == got
    lengths = summary["prompt_set"]["output_lengths"]
    assert lengths == {
        "mode": "dataset", "cap": CAP, "min": min(wanted), "max": max(wanted),
        "median": pytest.approx(sorted(wanted)[2:4][0] / 2 + sorted(wanted)[2:4][1] / 2),
        "mean": round(sum(wanted) / 6, 2), "capped": wanted.count(CAP),
    }  # fmt: skip
    assert summary["config"]["output_lengths"] == "dataset"
    assert f"/outds{CAP}" in proc.stdout
    assert (
        f"output lengths: the dataset's replies, {min(wanted)}-{max(wanted)} tokens" in proc.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--prompts", "default"), "prompt set 'default' has no reference replies"),
        (("--input-tokens", "16"), "use one or the other"),
    ],
    ids=["no-replies", "with-input-tokens"],
)
def test_bad_combinations_are_one_line_and_exit_2(
    tiny_model: Path, args: tuple[str, ...], message: str
) -> None:
    proc = bench(
        "run", "--model", str(tiny_model), "--output-lengths", "dataset", "--no-db", *args
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
