"""Token-exact prompts against a server (``--input-tokens`` with
``--tokenizer``): what the server receives counts exactly N tokens by the
endpoint's rule (completions: the text with BOS; chat: the template)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.core.config import RunConfig
from bench.errors import ConfigError
from bench.runner import prepare, run_benchmark
from tests.backends.openai_stub import fetch_log, run_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with run_stub() as url:
        yield url


def _config(url: str, **kw: Any) -> RunConfig:
    options = {"base_url": url + "/v1", **kw.pop("options", {})}
    base: dict[str, Any] = dict(
        model="stub", backend="openai", device="cpu", max_new_tokens=3, warmup=0, concurrency=2
    )
    return RunConfig(**{**base, **kw, "options": options})


def _server_count(tokenizer: Any, body: dict[str, Any]) -> int:
    if "messages" in body:
        return len(  # return_dict: what 4.x and 5.x both return
            tokenizer.apply_chat_template(
                body["messages"], add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
    return len(tokenizer(body["prompt"])["input_ids"])


@pytest.mark.parametrize("endpoint", ["auto", "completions", "chat"])
def test_the_server_receives_exactly_n_tokens(
    stub: str,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
) -> None:
    from transformers import AutoTokenizer

    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    marker = f"exact{uuid.uuid4().hex[:8]}"
    prompts = tmp_path / "set.txt"
    prompts.write_text("".join(f"{marker} question {i} about attention\n" for i in range(6)))
    config = _config(
        stub,
        input_tokens=33,
        limit=6,
        prompts=str(prompts),
        options={"tokenizer": str(tiny_model), "endpoint": endpoint},
    )
    result = run_benchmark(config)
    assert result.ok, result.error
    bodies = [e["body"] for e in fetch_log(stub) if marker in str(e["body"])]
    measured = [b for b in bodies if b.get("max_tokens") == 3]
    assert len(measured) >= 6
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    assert {_server_count(tokenizer, b) for b in measured} == {33}
    # (the stub's usage says 5 prompt tokens: the server's count is recorded, with a warning)
    assert result.config.label.endswith("/in33-out3")
    chat = endpoint == "chat"
    assert all(("messages" in b) == chat for b in measured)


def test_without_a_tokenizer_exact_lengths_are_refused(stub: str, tmp_path: Path) -> None:
    config = _config(stub, input_tokens=33, options={"tokenizer": "none"})
    with pytest.raises(ConfigError, match="input_tokens needs the model's tokenizer"):
        prepare(config)


def test_dataset_output_lengths_are_each_requests_max_tokens(
    stub: str, tiny_model: Path, tmp_path: Path
) -> None:
    """``output_lengths: dataset``: each body asks for its reply's token count
    (capped), ``min_tokens`` with it, and each record keeps what came back."""
    import json

    from transformers import AutoTokenizer

    marker = f"ds{uuid.uuid4().hex[:8]}"
    replies = ["Yes.", "Paris.", "word " * 40]
    prompts = tmp_path / "set.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": f"{marker} q{i}", "reply": r}) + "\n"
            for i, r in enumerate(replies)
        )
    )
    config = _config(
        stub,
        max_new_tokens=12,
        output_lengths="dataset",
        limit=6,
        prompts=str(prompts),
        options={"tokenizer": str(tiny_model)},
    )
    result = run_benchmark(config)
    assert result.ok, result.error
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    wanted = [min(12, len(tokenizer(r, add_special_tokens=False)["input_ids"])) for r in replies]
    assert len(set(wanted)) == 3 and 12 in wanted
    bodies = [e["body"] for e in fetch_log(stub) if marker in str(e["body"])]
    for body in bodies:
        i = int(str(body.get("prompt") or body["messages"][-1]["content"]).rsplit("q", 1)[1])
        assert body["max_tokens"] == wanted[i] and body.get("min_tokens", wanted[i]) == wanted[i]
    assert [r.output_tokens for r in result.requests] == [wanted[i % 3] for i in range(6)]
    assert result.config.label.endswith("/outds12")
    assert result.prompt_set["output_lengths"]["max"] == 12


def test_without_a_tokenizer_dataset_lengths_are_refused(stub: str, tmp_path: Path) -> None:
    prompts = tmp_path / "set.jsonl"
    prompts.write_text('{"prompt": "q", "reply": "a b c"}\n')
    config = _config(
        stub, output_lengths="dataset", prompts=str(prompts), options={"tokenizer": "none"}
    )
    with pytest.raises(ConfigError, match="output_lengths dataset needs the model's tokenizer"):
        prepare(config)
