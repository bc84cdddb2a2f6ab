"""The openai backend against a server nobody here wrote: ``transformers serve``
(transformers 4.55's OpenAI-compatible FastAPI server) serving the tiny model
on CPU.

What 4.55's server has, and what these tests pin down:

* ``/v1/chat/completions`` streams a role-only chunk first, then one chunk
  per flushed piece of text, no ``usage`` and no ``[DONE]``: TTFT must skip
  the role chunk and token counts come from the tokenizer;
* there is no ``/v1/completions`` (HTTP 404): a completions run fails cleanly;
* unknown body fields are rejected (HTTP 422), so vLLM's ``ignore_eos`` must
  not be sent (``send_ignore_eos: false``).
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

from bench.backends.base import Request
from bench.backends.openai.backend import OpenAIBackend
from bench.core.config import RunConfig
from bench.core.prompts import Prompt, load_prompt_set
from bench.runner import run_benchmark
from tests.procs import free_port, stop

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 16
READY_TIMEOUT_S = 120.0


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
    cmd = [
        str(exe),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--log_level",
        "warning",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        stop(proc, 20)


def _config(url: str, model: Path, **kw: Any) -> RunConfig:
    options = {
        "base_url": url + "/v1",
        "endpoint": "chat",
        "send_ignore_eos": False,
        **kw.pop("options", {}),
    }
    return RunConfig(
        model=str(model),
        backend="openai",
        device="cpu",
        precision="fp32",
        max_new_tokens=MAX_NEW_TOKENS,
        limit=8,
        **kw,
        options=options,
    )


@pytest.mark.parametrize("concurrency", [1, 4])
def test_chat_stream_from_transformers_serve(
    serve_url: str, tiny_model: Path, concurrency: int
) -> None:
    from transformers import AutoTokenizer

    result = run_benchmark(_config(serve_url, tiny_model, concurrency=concurrency))
    assert result.ok, result.error
    m = result.metrics
    assert m is not None and m.n_requests == 8 and m.n_failed == 0
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompts = load_prompt_set("default").prompts
    for r in result.requests:
        assert r.success, r.error
        # No usage in 4.55's stream: input tokens are the chat template's count.
        expected_in = len(
            tok.apply_chat_template(
                prompts[r.request_index].as_messages(), add_generation_prompt=True
            )
        )
        assert r.input_tokens == expected_in
        assert 1 <= r.output_tokens <= MAX_NEW_TOKENS
        assert r.ttft_ms is not None and r.e2e_ms is not None
        assert 0.0 < r.ttft_ms <= r.e2e_ms < 30_000
        assert all(gap >= 0 for gap in r.itl_ms)
        assert r.e2e_ms - r.ttft_ms == pytest.approx(sum(r.itl_ms), abs=1e-6)
    assert m.output_tokens_per_s is not None and m.output_tokens_per_s > 0
    assert m.requests_per_s == pytest.approx(8 / m.duration_s)
    assert result.environment is not None and result.environment["extra"]["server"] == "uvicorn"


def test_ttft_is_not_the_role_chunk(serve_url: str, tiny_model: Path) -> None:
    """The role-only chunk comes before generation starts; our first token
    time is a later read that carries text."""
    config = _config(serve_url, tiny_model, concurrency=1)
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


def test_completions_endpoint_is_missing_in_4_55(serve_url: str, tiny_model: Path) -> None:
    result = run_benchmark(_config(serve_url, tiny_model, options={"endpoint": "completions"}))
    assert result.status == "failed"
    assert result.error == "all 8 requests failed; first: HTTP 404: Not Found"


def test_vllm_extension_fields_are_rejected(serve_url: str, tiny_model: Path) -> None:
    result = run_benchmark(_config(serve_url, tiny_model, options={"send_ignore_eos": True}))
    assert result.status == "failed"
    assert result.error is not None and "HTTP 422: Unexpected keys in the request" in result.error
    assert "ignore_eos" in result.error
