"""How often does a server deliver several stream events in one network read,
and what would timing each event do to ITL?

Starts ``transformers serve`` (the one installed beside this interpreter)
on a free port with the tiny model, runs the openai backend against each
endpoint with all defaults, and counts per endpoint: content events, network
reads that carried content, and the events that shared a read with an
earlier one. A client that timestamps each event (vLLM's) records a gap of
about 0 ms for each of those; ours merges them into the read's chunk, so its
ITL holds only gaps it observed. TPOT is the same either way.

    python benchmarks/serve_chunking.py [--requests 32] [--concurrency 4] [--tokens 32]

Run it under each transformers generation (``/work/venv`` and a 5.x venv)
to compare servers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backends.base import Request
from bench.backends.openai.backend import OpenAIBackend
from bench.core.config import RunConfig
from bench.core.prompts import load_prompt_set, plan_requests
from bench.errors import ModelLoadError
from bench.tinymodel import build_tiny_model
from tests.procs import free_port, stop


def serve(model_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    level = "--log-level" if int(transformers.__version__.split(".")[0]) >= 5 else "--log_level"
    cmd = [str(Path(sys.executable).with_name("transformers")), "serve", "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--device", "cpu", level, "warning"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(480):
        try:
            urllib.request.urlopen(url + "/openapi.json", timeout=2).close()
            return proc, url + "/v1"
        except OSError:
            time.sleep(0.25)
    stop(proc)
    raise SystemExit("transformers serve did not start")


def measure(url: str, model: Path, endpoint: str, args: argparse.Namespace) -> None:
    config = RunConfig(
        model=str(model),
        backend="openai",
        device="cpu",
        max_new_tokens=args.tokens,
        concurrency=args.concurrency,
        options={"base_url": url, "endpoint": endpoint},
    )
    backend = OpenAIBackend(config)
    try:
        backend.load()
    except ModelLoadError as exc:
        print(f"{endpoint:<12} not served: {exc}")
        backend.close()
        return
    try:
        prompts = plan_requests(load_prompt_set("default"), limit=args.requests, batch_size=1)
        requests = [Request(i, p) for i, p in enumerate(prompts)]
        backend.check(requests)
        assert backend._loop is not None
        streams = [
            s for _, s in backend._loop.run_until_complete(backend._run(requests, lambda n: None))
        ]
    finally:
        backend.close()
    ok = [s for s in streams if s.error is None and s.token_times]
    events = sum(s.events for s in ok)
    reads = sum(len(s.token_times) for s in ok)
    merged = [g * 1e3 for s in ok for g in np.diff(s.token_times)]
    per_event = merged + [0.0] * (events - reads)
    print(
        f"{endpoint:<12}{len(ok):>5}{events:>8}{reads:>7}{events - reads:>8} of {len(per_event):<6}"
        f"{np.median(per_event):>14.2f}{np.median(merged):>14.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32, help="max_new_tokens per request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny-llama")
        proc, url = serve(model)
        try:
            print(
                f"transformers {transformers.__version__} serve, {args.requests} requests, "
                f"concurrency {args.concurrency}, max_new_tokens {args.tokens}"
            )
            print(
                f"{'endpoint':<12}{'ok':>5}{'events':>8}{'reads':>7}{'0-gaps':>8}{'':>10}"
                f"{'ITL p50/event':>14}{'ITL p50/read':>14}"
            )
            for endpoint in ("completions", "chat"):
                measure(url, model, endpoint, args)
        finally:
            stop(proc, 20)


if __name__ == "__main__":
    main()
