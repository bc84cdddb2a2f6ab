"""Prompt sets: text and JSONL, shas, request planning, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core.prompts import Prompt, load_prompt_set, plan_requests
from bench.errors import PromptError


def test_default_set_is_the_seed_200_prompts() -> None:
    ps = load_prompt_set("default")
    assert len(ps) == 200 and ps.name == "default"
    assert ps.prompts[0].text == "What is LLaMA 2 and how does it work?"
    assert len({p.sha for p in ps.prompts}) == 200 and len(ps.sha) == 64


def test_jsonl_prompt_messages_and_system(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    rows = [
        {"prompt": "plain"},
        {"prompt": "with system", "system": "be brief"},
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "more"},
            ],
            "system": "sys",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ps = load_prompt_set(str(path))
    assert ps.prompts[0] == Prompt(text="plain")
    assert ps.prompts[1].as_messages() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "with system"},
    ]
    assert [m["role"] for m in ps.prompts[2].as_messages()] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert ps.prompts[0].as_messages() == [{"role": "user", "content": "plain"}]


def test_set_sha_follows_content_not_path(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.txt").write_text("one\n\ntwo")
    (tmp_path / "c.txt").write_text("two\none\n")
    a, b, c = (load_prompt_set(str(tmp_path / f"{n}.txt")) for n in "abc")
    assert a.sha == b.sha != c.sha


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.txt", "holds no prompts"),
        (b"\n  \n", "blank.txt", "holds no prompts"),
        (b"caf\xe9\n", "latin1.txt", "is not UTF-8"),
        (b'{"prompt": "x"}\nnot json\n', "bad.jsonl", r"bad.jsonl:2: invalid JSON"),
        (b'{"text": "x"}\n', "nokey.jsonl", "needs a non-empty string 'prompt'"),
        (
            b'{"messages": [{"role": "bot", "content": "x"}]}\n',
            "role.jsonl",
            "each message needs role",
        ),
    ],
)
def test_bad_prompt_files(tmp_path: Path, content: bytes, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PromptError, match=message):
        load_prompt_set(str(path))


def test_named_sets_resolve_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository's prompts/ is found from anywhere (a user runs `bench`
    from their own directory, which has no prompts/ of its own)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_PROMPTS_DIR", raising=False)
    assert len(load_prompt_set("default")) == 200


def test_missing_set_names_where_it_looked() -> None:
    with pytest.raises(PromptError, match="'nope' not found"):
        load_prompt_set("nope")


def test_plan_cycles_and_rounds_up_to_whole_batches(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a\nb\nc\n")
    ps = load_prompt_set(str(tmp_path / "p.txt"))
    assert [p.text for p in plan_requests(ps, limit=None, batch_size=1)] == ["a", "b", "c"]
    assert [p.text for p in plan_requests(ps, limit=5, batch_size=1)] == ["a", "b", "c", "a", "b"]
    assert [p.text for p in plan_requests(ps, limit=5, batch_size=2)] == [
        "a",
        "b",
        "c",
        "a",
        "b",
        "c",
    ]
