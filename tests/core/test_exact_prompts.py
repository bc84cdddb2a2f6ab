"""Token-exact prompts (``--input-tokens``): exact counts as the model sees
them, deterministic builds, the cache, the bad-input rules, and runs of the
real tiny model whose every request reads exactly N tokens."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from bench.core.config import RunConfig
from bench.core.prompts import load_prompt_set
from bench.core.prompts.exact import PromptTokens, build_exact
from bench.errors import ConfigError, PromptError
from bench.runner import prepare, run_benchmark
from tests.core.test_cli_run import bench


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def model_counts(tokenizer: Any, texts: list[str], *, templated: bool) -> list[int]:
    """Counted independently of the builder, the way transformers feeds a model."""
    if templated:
        return [
            len(  # return_dict: a list of ids is not what 4.x and 5.x agree to return
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": t}],
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                )["input_ids"]
            )
            for t in texts
        ]
    return [len(ids) for ids in tokenizer(texts)["input_ids"]]


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "chat-template"])
@pytest.mark.parametrize("mode", ["text", "random"])
@pytest.mark.parametrize("n_tokens", [16, 300])
def test_every_prompt_is_exactly_n_tokens(
    tokenizer: Any, templated: bool, mode: str, n_tokens: int
) -> None:
    source = load_prompt_set("default") if mode == "text" else None
    built = build_exact(PromptTokens(tokenizer, templated), n_tokens, 40, source=source, seed=3)
    texts = [p.text or "" for p in built.prompts]
    assert len(texts) == 40 and len(set(texts)) == 40
    assert set(model_counts(tokenizer, texts, templated=templated)) == {n_tokens}
    assert built.name == f"{'default' if mode == 'text' else 'random'}@in{n_tokens}"


class TransformersCallsOnly(PromptTokens):
    """The same rule, counted and decoded through transformers' own calls."""

    @cached_property
    def _rust(self) -> Any:
        return None


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "chat-template"])
@pytest.mark.parametrize("mode", ["text", "random"])
def test_the_rust_path_builds_what_transformers_calls_build(
    tokenizer: Any, templated: bool, mode: str
) -> None:
    """Counting and decoding through the Rust tokenizer directly (the fast
    path) gives the same texts, hence the same set sha, as transformers' calls."""
    source = load_prompt_set("default") if mode == "text" else None
    fast = PromptTokens(tokenizer, templated)
    assert fast._rust is not None  # the tiny model's tokenizer is a fast one
    built = build_exact(fast, 200, 24, source=source, seed=5)
    slow = build_exact(TransformersCallsOnly(tokenizer, templated), 200, 24, source=source, seed=5)
    assert built.sha == slow.sha
    texts = [p.text or "" for p in built.prompts]
    assert fast.count(texts) == TransformersCallsOnly(tokenizer, templated).count(texts)


@pytest.mark.parametrize("length", [16, 700])
def test_random_streams_drawn_together_are_those_drawn_one_by_one(
    tokenizer: Any, length: int
) -> None:
    from bench.core.prompts.exact import _RandomStream

    stream = _RandomStream(PromptTokens(tokenizer, False), seed=11)
    together = stream.many(range(25), length)
    assert together == [stream(i, length) for i in range(25)]
    assert {len(ids) for ids in together} == {length} and len({tuple(i) for i in together}) == 25


def test_text_mode_starts_request_i_at_prompt_i(tokenizer: Any) -> None:
    source = load_prompt_set("default")
    built = build_exact(PromptTokens(tokenizer, False), 100, 5, source=source)
    for i, prompt in enumerate(built.prompts):
        assert (prompt.text or "").startswith(source.prompts[i].text or "")
        assert source.prompts[i + 1].text in (prompt.text or "")  # appended: the next prompt


@dataclass(frozen=True)
class CountingRule(PromptTokens):
    """The same rule, remembering how many texts each count call was given."""

    calls: list[int] = field(default_factory=list)

    def count(self, texts: Sequence[str]) -> list[int]:
        self.calls.append(len(texts))
        return super().count(texts)


def test_a_set_shorter_than_the_count_builds_each_distinct_text_once(tokenizer: Any) -> None:
    """Request i + len(set) starts where request i does: the same text,
    settled once (a night's 1,000 requests over the 200-prompt set count 200)."""
    source = load_prompt_set("default")
    n = len(source.prompts)
    rule = CountingRule(tokenizer, False)
    texts = [p.text or "" for p in build_exact(rule, 48, 2 * n + 5, source=source).prompts]
    assert texts[n : 2 * n] == texts[:n] and texts[2 * n :] == texts[:5]
    assert len(set(texts)) == n and max(rule.calls) == n
    assert set(model_counts(tokenizer, texts, templated=False)) == {48}


def test_builds_are_deterministic_and_seeded(
    tokenizer: Any, tiny_model: Path, tmp_path: Path
) -> None:
    rule = PromptTokens(tokenizer, False)
    source = load_prompt_set("default")
    assert (
        build_exact(rule, 64, 10, source=source).sha == build_exact(rule, 64, 10, source=source).sha
    )
    seeded = [build_exact(rule, 64, 10, source=None, seed=s).sha for s in (0, 0, 1)]
    assert seeded[0] == seeded[1] != seeded[2]
    # the tokenizer is known by its files' content, not their path
    moved = shutil.copytree(tiny_model, tmp_path / "elsewhere")
    from transformers import AutoTokenizer

    assert PromptTokens(AutoTokenizer.from_pretrained(str(moved)), False).digest == rule.digest
    assert PromptTokens(tokenizer, True).digest != rule.digest


def test_the_cache_is_read_back_and_a_damaged_entry_rebuilt(tokenizer: Any, tmp_path: Path) -> None:
    rule = PromptTokens(tokenizer, True)
    source = load_prompt_set("default")
    first = build_exact(rule, 128, 20, source=source, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.json")
    hit = build_exact(rule, 128, 20, source=source, cache_dir=tmp_path)
    assert hit.sha == first.sha
    assert set(model_counts(tokenizer, [p.text or "" for p in hit.prompts], templated=True)) == {
        128
    }
    # what is in the entry is what a hit returns (it is read, not rebuilt) ...
    texts = json.loads(entry.read_text())["texts"]
    entry.write_text(json.dumps({"texts": ["x", *texts[1:]]}))
    assert build_exact(rule, 128, 20, source=source, cache_dir=tmp_path).prompts[0].text == "x"
    # ... and an entry that is not one is rebuilt
    entry.write_text("{not json")
    assert build_exact(rule, 128, 20, source=source, cache_dir=tmp_path).sha == first.sha


def test_a_length_the_template_alone_reaches_is_refused(tokenizer: Any) -> None:
    rule = PromptTokens(tokenizer, True)
    overhead = rule.overhead
    assert overhead > 1  # BOS, role tags, newlines
    with pytest.raises(PromptError, match=f"template and special tokens alone take {overhead}"):
        build_exact(rule, overhead, 4, source=load_prompt_set("default"))


def _config(model: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(
        model=str(model), device="cpu", precision="fp32", max_new_tokens=2, warmup=0
    )
    return RunConfig(**{**base, **kw})


def test_plans_have_the_same_fingerprint_every_night(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprints = set()
    for night in ("one", "two"):  # a cold cache each time
        monkeypatch.setenv("BENCH_HOME", str(tmp_path / night))
        plan = prepare(_config(tiny_model, input_tokens=48, limit=6))
        fingerprints.add(plan.fingerprint)
        assert plan.prompt_set_json()["input_tokens"] == 48
    assert len(fingerprints) == 1
    other = prepare(_config(tiny_model, input_tokens=49, limit=6)).fingerprint
    assert other not in fingerprints


def test_a_shape_beyond_the_context_is_refused_before_the_model_loads(tiny_model: Path) -> None:
    # the tiny model's context is 2048 tokens
    with pytest.raises(ConfigError, match="exceeds the model's context of 2048 tokens"):
        prepare(_config(tiny_model, input_tokens=2000, max_new_tokens=100))


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize(
    "prompts,templated", [("default", False), ("default", True), ("random", False)]
)
def test_every_request_reads_exactly_n_tokens(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch_size: int,
    prompts: str,
    templated: bool,
) -> None:
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    options = {"chat_template": True} if templated else {}
    config = _config(
        tiny_model,
        input_tokens=40,
        batch_size=batch_size,
        limit=8,
        prompts=prompts,
        options=options,
    )
    for attempt in ("cold", "cached"):
        result = run_benchmark(config)
        assert result.status == "ok", (attempt, result.error)
        assert [r.input_tokens for r in result.requests] == [40] * 8
        assert {r.output_tokens for r in result.requests} == {2}
        assert result.config.label.endswith("/in40-out2")
    assert any((tmp_path / "prompt-cache").glob("*.json"))


@pytest.mark.slow
def test_done_means_command(tiny_model: Path, tmp_path: Path) -> None:
    """Issue 10: 6 rows with input_tokens 64 and output_tokens 8."""
    out = tmp_path / "o.jsonl"
    proc = bench(
        "run", "--model", str(tiny_model), "--input-tokens", "64", "--max-new-tokens", "8",
        "--batch-size", "3", "--limit", "6", "--no-db", "--output", str(out), "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    requests = [r for r in rows if r["kind"] == "request"]
    assert len(requests) == 6
    assert {(r["input_tokens"], r["output_tokens"]) for r in requests} == {(64, 8)}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--input-tokens", "2000", "--max-new-tokens", "100"], "exceeds the model's context"),
        (["--input-tokens", "3", "--option", "chat_template=true"], "leaves no room for text"),
        (["--prompts", "random"], "prompts random needs input_tokens"),
    ],
    ids=["beyond-context", "under-template", "random-without-length"],
)
def test_bad_shapes_are_one_line_and_exit_2(
    tiny_model: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "o.jsonl"
    proc = bench("run", "--model", str(tiny_model), "--no-db", "--output", str(out), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()
