"""Streaming LLM benchmarks that time every token, for nightly campaigns.

The public API, for scripts and notebooks; the CLI (``bench``) and the
Airflow DAGs are built on exactly these names::

    from bench import RunConfig, run_benchmark

    result = run_benchmark(RunConfig(model="/models/tiny", device="cpu", precision="fp32"))
    print(result.metrics.ttft_p50_ms)

Names load lazily (PEP 562): ``import bench.campaign`` in a DAG file must
not drag in torch, transformers or numpy.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Campaign": "bench.campaign",
    "load_campaign": "bench.campaign",
    "PRECISIONS": "bench.core.config",
    "RunConfig": "bench.core.config",
    "BenchError": "bench.errors",
    "BenchmarkFailed": "bench.errors",
    "CampaignError": "bench.errors",
    "ConfigError": "bench.errors",
    "DatabaseUnavailable": "bench.errors",
    "DeviceError": "bench.errors",
    "ModelLoadError": "bench.errors",
    "PromptError": "bench.errors",
    "ResultFileError": "bench.errors",
    "StoreError": "bench.errors",
    "RunMetrics": "bench.core.metrics",
    "request_result": "bench.core.metrics",
    "summarize": "bench.core.metrics",
    "Prompt": "bench.core.prompts",
    "PromptSet": "bench.core.prompts",
    "load_prompt_set": "bench.core.prompts",
    "RequestRecord": "bench.core.records",
    "RequestResult": "bench.core.records",
    "CampaignRef": "bench.core.results",
    "RunResult": "bench.core.results",
    "read_jsonl": "bench.core.results",
    "write_jsonl": "bench.core.results",
    "run_benchmark": "bench.runner",
    "TimingStreamer": "bench.core.streamer",
}

try:
    __version__ = _metadata.version("llm-bench-campaigns")
except _metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "PRECISIONS",
    "BenchError",
    "BenchmarkFailed",
    "Campaign",
    "CampaignError",
    "CampaignRef",
    "ConfigError",
    "DatabaseUnavailable",
    "DeviceError",
    "ModelLoadError",
    "Prompt",
    "PromptError",
    "PromptSet",
    "RequestRecord",
    "RequestResult",
    "ResultFileError",
    "RunConfig",
    "RunMetrics",
    "RunResult",
    "StoreError",
    "TimingStreamer",
    "__version__",
    "load_campaign",
    "load_prompt_set",
    "read_jsonl",
    "request_result",
    "run_benchmark",
    "summarize",
    "write_jsonl",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from bench.campaign import Campaign, load_campaign
    from bench.core.config import PRECISIONS, RunConfig
    from bench.core.metrics import RunMetrics, request_result, summarize
    from bench.core.prompts import Prompt, PromptSet, load_prompt_set
    from bench.core.records import RequestRecord, RequestResult
    from bench.core.results import CampaignRef, RunResult, read_jsonl, write_jsonl
    from bench.core.streamer import TimingStreamer
    from bench.errors import (
        BenchError,
        BenchmarkFailed,
        CampaignError,
        ConfigError,
        DatabaseUnavailable,
        DeviceError,
        ModelLoadError,
        PromptError,
        ResultFileError,
        StoreError,
    )
    from bench.runner import run_benchmark
