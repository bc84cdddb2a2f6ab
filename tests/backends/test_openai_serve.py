"""The openai backend against a server nobody here wrote: ``transformers serve``
serving the tiny model on CPU, with every option at its default.

This file runs under both transformers generations the project supports
(the pinned 4.55 and the newest 5.x); product code has no version branch,
so what differs is asserted here, by version:

* 4.55 has no ``/v1/completions`` (HTTP 404) and sends no ``usage``: ``auto``
  picks chat, counts come from the tokenizer (chat template for prompts);
* 5.x serves ``/v1/completions`` with ``usage``: ``auto`` picks it;
* both refuse ``ignore_eos``/``min_tokens`` (HTTP 422, "Unexpected keys" /
  "Unexpected fields"): the run goes on without them and records
  ``ignore_eos: false``;
* both send a role-only chat chunk before prefill, which never starts TTFT;
* 5.x writes several completion events per network read: they arrive as one
  chunk, so no ITL gap is 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import transformers

from bench.backends.base import Request
from bench.backends.openai.backend import OpenAIBackend
from bench.backends.openai.tokens import TokenCounter
from bench.cli import main
from bench.core.config import RunConfig
from bench.core.prompts import Prompt, load_prompt_set
from bench.errors import ModelLoadError
from bench.runner import run_benchmark
from tests.procs import free_port, stop

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 16
READY_TIMEOUT_S = 120.0
TF5 = int(transformers.__version__.split(".")[0]) >= 5
#: what ``--endpoint auto`` finds on this server
AUTO_ENDPOINT = "completions" if TF5 else "chat"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url + "/openapi.json", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(
        f"transformers serve not ready after {READY_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        pytest.fail(f"{exe} missing: the dev extra installs transformers' serve dependencies")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    cmd += ["--log-level" if TF5 else "--log_level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        stop(proc, 20)


def _config(url: str, model: Path, **kw: Any) -> RunConfig:
    """Only what a user must say: where the server is and which model."""
    options = {"base_url": url + "/v1", **kw.pop("options", {})}
    kw.setdefault("limit", 8)
    return RunConfig(
        model=str(model),
        backend="openai",
        device="cpu",
        max_new_tokens=MAX_NEW_TOKENS,
        **kw,
        options=options,
    )


def test_bench_run_with_no_other_flag(serve_url: str, tiny_model: Path, db_url: str) -> None:
    """Issue 10's done-means, verbatim, then what it stored."""
    import sqlalchemy as sa

    argv = ["run", "--backend", "openai", "--base-url", serve_url + "/v1"]
    argv += ["--model", str(tiny_model), "--limit", "8", "--concurrency", "4", "-q"]
    assert main(argv) == 0
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            config = conn.execute(
                sa.text("SELECT precision, ignore_eos, options, label FROM benchmark_config")
            ).one()
            rows = conn.execute(
                sa.text("SELECT output_tokens, tpot_ms, itl_ms FROM request_result")
            ).all()
            status = conn.execute(sa.text("SELECT status FROM run")).scalar_one()
    finally:
        engine.dispose()
    assert status == "ok" and len(rows) == 8
    assert config.precision == "unknown" and config.label == "tiny-llama/unknown/c4"
    assert config.ignore_eos is False  # refused by the server: not in effect
    assert config.options["endpoint"] == AUTO_ENDPOINT
    for row in rows:
        assert 1 <= row.output_tokens <= 128
        assert all(gap > 0 for gap in row.itl_ms)
        assert (row.tpot_ms is None) == (not row.itl_ms)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_defaults_measure_the_stream(serve_url: str, tiny_model: Path, concurrency: int) -> None:
    from transformers import AutoTokenizer

    result = run_benchmark(_config(serve_url, tiny_model, concurrency=concurrency))
    assert result.ok, result.error
    m = result.metrics
    assert m is not None and m.n_requests == 8 and m.n_failed == 0
    assert result.config.options["endpoint"] == AUTO_ENDPOINT
    assert result.config.ignore_eos is False
    assert result.environment is not None
    extra = result.environment["extra"]
    assert extra["server"] == "uvicorn"
    assert extra["refused_fields"] == ["ignore_eos", "min_tokens"]
    assert "ignore_eos" not in extra["request_fields"]
    assert extra["token_counts"] == (
        "server usage" if TF5 else "tokenizer (outputs bounded by the stream)"
    )
    # Input tokens as the server sees them (its usage on 5.x, the same rule on 4.55).
    counter = TokenCounter(AutoTokenizer.from_pretrained(tiny_model), templated=not TF5)
    prompts = load_prompt_set("default").prompts
    for r in result.requests:
        assert r.success, r.error
        assert r.input_tokens == len(counter.prompt_ids(prompts[r.request_index]))
        assert 1 <= r.output_tokens <= MAX_NEW_TOKENS
        assert r.ttft_ms is not None and r.e2e_ms is not None
        assert 0.0 < r.ttft_ms <= r.e2e_ms < 30_000
        # one chunk per network read: a gap is never a 0.00 artefact of the transport
        assert all(gap > 0 for gap in r.itl_ms)
        assert (r.tpot_ms is None) == (not r.itl_ms)
        assert r.e2e_ms - r.ttft_ms == pytest.approx(sum(r.itl_ms), abs=1e-6)
    assert m.output_tokens_per_s is not None and m.output_tokens_per_s > 0
    assert m.requests_per_s == pytest.approx(8 / m.duration_s)


def test_ttft_is_not_the_role_chunk(serve_url: str, tiny_model: Path) -> None:
    """The role-only chunk comes before generation starts; our first token
    time is a later read that carries text."""
    config = _config(serve_url, tiny_model, concurrency=1, options={"endpoint": "chat"})
    backend = OpenAIBackend(config)
    try:
        backend.load()
        requests = [Request(i, Prompt(text="Explain the moon in one line.")) for i in range(3)]
        backend.check(requests)
        records = backend.execute(requests, lambda n: None)
    finally:
        backend.close()
    for record in records:
        assert record.success, record.error
        assert len(record.token_times) >= 1
        assert record.token_times[0] > record.t_send


def test_an_explicit_completions_endpoint(serve_url: str, tiny_model: Path) -> None:
    """4.55 has none: a one-line setup error naming the fix. 5.x streams it."""
    config = _config(serve_url, tiny_model, options={"endpoint": "completions"})
    if TF5:
        result = run_benchmark(config)
        assert result.ok and result.config.options["endpoint"] == "completions"
        return
    backend = OpenAIBackend(config)
    with pytest.raises(ModelLoadError) as caught:
        backend.load()
    backend.close()
    assert str(caught.value) == (
        f"no endpoint under {serve_url}/v1 streams (/completions: HTTP 404: Not Found); "
        "check --base-url (the API root, e.g. http://host:8000/v1) and --served-model "
        "(a model the server serves); --endpoint auto tries every API"
    )


def test_exact_input_lengths_with_the_models_tokenizer(
    serve_url: str, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--input-tokens`` with ``--tokenizer``: every prompt is 24 tokens by
    the probed endpoint's rule, and the server agrees (5.x: its usage says 24,
    and no disagreement is logged; 4.55 sends no usage: the same rule counts)."""
    import logging

    caplog.set_level(logging.WARNING, logger="bench")
    config = _config(
        serve_url,
        tiny_model,
        concurrency=2,
        input_tokens=24,
        options={"tokenizer": str(tiny_model)},
    )
    result = run_benchmark(config)
    assert result.ok, result.error
    assert result.config.label.endswith("/in24-out16")
    assert [r.input_tokens for r in result.requests] == [24] * 8
    assert "prompt token counts disagree" not in caplog.text


def test_dataset_output_lengths_reach_the_server_as_max_tokens(
    serve_url: str, tiny_model: Path, tmp_path: Path
) -> None:
    """``output_lengths: dataset``: each request's ``max_tokens`` is its reply's
    length; the server refuses ``min_tokens``, so the run records that EOS was
    not ignored and no request goes past the length it asked for."""
    import json

    from transformers import AutoTokenizer

    replies = ["Yes.", "word " * 3, "word " * 40]
    prompts = tmp_path / "set.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "reply": r}) + "\n" for i, r in enumerate(replies))
    )
    config = _config(
        serve_url, tiny_model, concurrency=2, output_lengths="dataset", prompts=str(prompts),
        options={"tokenizer": str(tiny_model)},
    )  # fmt: skip
    result = run_benchmark(config)
    assert result.ok, result.error
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    wanted = [
        min(MAX_NEW_TOKENS, len(tokenizer(r, add_special_tokens=False)["input_ids"]))
        for r in replies
    ]
    assert result.config.ignore_eos is False  # min_tokens refused: lengths not enforced
    assert result.config.label.endswith(f"/outds{MAX_NEW_TOKENS}")
    for r in result.requests:
        assert r.success, r.error
        assert 1 <= r.output_tokens <= wanted[r.request_index % 3]
