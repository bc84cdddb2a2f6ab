"""A run in the result-JSON shape of vLLM's ``bench serve`` (``--save-result
--save-detailed``), so plotting and comparison scripts written for vLLM read
our runs unchanged: ``bench run ... --output x.json --format vllm``.

Mapping (ours -> vLLM):

* closed loop at concurrency C -> ``request_rate: "inf"``, ``max_concurrency: C``
  (what ``vllm bench serve --max-concurrency C`` runs); open loop ->
  ``request_rate``, ``burstiness`` and the cap, if any;
* ``completed``/``failed``/totals/throughputs from our run metrics, which
  count successful requests only, as vLLM does;
* aggregates ``mean_/median_/std_/p{50,90,95,99}_{ttft,tpot,itl,e2el}_ms``
  (vLLM's E2EL is our ``e2e``; median is our p50; std is the population std
  over the same per-request values, as numpy computes it in vLLM);
* per-request lists ``ttfts``/``itls``/``latencies`` in **seconds**,
  ``input_lens``/``output_lens``/``errors``, with vLLM's values for a failed
  request (0.0, [], 0.0, output length 0, the error text).

Left out because we do not keep them: ``start_times``, ``queue_times``,
``generated_texts``, and the peak-concurrency figures derived from start
times (``max_output_tokens_per_s``, ``max_concurrent_requests``: null).
Our own identity goes under ``llm_bench`` (ignored by vLLM tooling).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.metrics import PERCENTILES, RunMetrics
from bench.core.results import RunResult

#: Our metric prefix -> vLLM's.
_METRICS = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2e": "e2el"}


def _backend_name(result: RunResult) -> str:
    """vLLM's name for the kind of endpoint (``openai``, ``openai-chat``) or ours."""
    cfg = result.config
    if cfg.backend != "openai":
        return cfg.backend
    return "openai-chat" if cfg.options.get("endpoint") == "chat" else "openai"


def _traffic(result: RunResult) -> dict[str, Any]:
    cfg = result.config
    if cfg.request_rate is None:
        return {
            "request_rate": "inf",
            "burstiness": 1.0,
            "max_concurrency": cfg.concurrency or cfg.batch_size,
        }
    caps = [c for c in (cfg.options.get("max_concurrency"), cfg.concurrency) if c is not None]
    return {
        "request_rate": cfg.request_rate,
        "burstiness": float(cfg.options.get("burstiness", 1.0)),
        "max_concurrency": min(caps) if caps else None,
    }


def _aggregates(result: RunResult, metrics: RunMetrics | None) -> dict[str, Any]:
    ok = [r for r in result.requests if r.success]
    samples = {
        "ttft": [r.ttft_ms for r in ok if r.ttft_ms is not None],
        "tpot": [r.tpot_ms for r in ok if r.tpot_ms is not None],
        "itl": [g for r in ok for g in r.itl_ms],
        "e2e": [r.e2e_ms for r in ok if r.e2e_ms is not None],
    }
    out: dict[str, Any] = {}
    for ours, theirs in _METRICS.items():
        values = samples[ours]
        out[f"mean_{theirs}_ms"] = _stat(metrics, ours, "mean")
        out[f"median_{theirs}_ms"] = _stat(metrics, ours, "p50")
        out[f"std_{theirs}_ms"] = float(np.std(values)) if values else None
        for p in PERCENTILES:
            out[f"p{p}_{theirs}_ms"] = _stat(metrics, ours, f"p{p}")
    return out


def _stat(metrics: RunMetrics | None, metric: str, stat: str) -> float | None:
    return getattr(metrics, f"{metric}_{stat}_ms") if metrics is not None else None


def vllm_result(result: RunResult) -> dict[str, Any]:
    """The dict ``vllm bench serve`` would have saved for this run."""
    cfg = result.config
    m = result.metrics
    requests = result.requests
    duration = m.duration_s if m else 0.0
    total_in = m.input_tokens_total if m else 0
    total_out = m.output_tokens_total if m else 0
    out: dict[str, Any] = {
        "date": result.started_at.strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": _backend_name(result),
        "backend": _backend_name(result),
        "label": cfg.label,
        "model_id": cfg.model,
        "tokenizer_id": cfg.options.get("tokenizer") or cfg.load_path,
        "num_prompts": len(requests),
        **_traffic(result),
        "duration": duration,
        "completed": (m.n_requests - m.n_failed) if m else 0,
        "failed": m.n_failed if m else 0,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": m.requests_per_s if m else None,
        "request_goodput": m.goodput_requests_per_s if m else None,
        "output_throughput": m.output_tokens_per_s if m else None,
        "total_token_throughput": (total_in + total_out) / duration if duration > 0 else None,
        "input_lens": [r.input_tokens for r in requests],
        "output_lens": [r.output_tokens if r.success else 0 for r in requests],
        "ttfts": [(r.ttft_ms or 0.0) / 1e3 if r.success else 0.0 for r in requests],
        "itls": [[g / 1e3 for g in r.itl_ms] if r.success else [] for r in requests],
        "latencies": [(r.e2e_ms or 0.0) / 1e3 if r.success else 0.0 for r in requests],
        "errors": [r.error or "" for r in requests],
        "max_output_tokens_per_s": None,
        "max_concurrent_requests": None,
        **_aggregates(result, m),
        "llm_bench": {
            "run_uid": result.run_uid,
            "fingerprint": result.fingerprint,
            "status": result.status,
            "error": result.error,
            "backend": cfg.backend,
        },
    }
    return out


def write_vllm_json(result: RunResult, path: Path) -> Path:
    """Atomically write :func:`vllm_result` to ``path`` (one JSON object)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(vllm_result(result), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


__all__ = ["vllm_result", "write_vllm_json"]
