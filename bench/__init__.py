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
    "CampaignError": "bench.campaign",
    "load_campaign": "bench.campaign",
    "PRECISIONS": "bench.config",
    "RunConfig": "bench.config",
    "BenchError": "bench.errors",
    "BenchmarkFailed": "bench.errors",
    "ConfigError": "bench.errors",
    "DatabaseUnavailable": "bench.errors",
    "DeviceError": "bench.errors",
    "ModelLoadError": "bench.errors",
    "OutOfMemory": "bench.errors",
    "PromptError": "bench.errors",
    "ResultFileError": "bench.errors",
    "RunTimeout": "bench.errors",
    "StoreError": "bench.errors",
    "RunMetrics": "bench.metrics",
    "request_result": "bench.metrics",
    "summarize": "bench.metrics",
    "Prompt": "bench.prompts",
    "PromptSet": "bench.prompts",
    "load_prompt_set": "bench.prompts",
    "RequestRecord": "bench.records",
    "RequestResult": "bench.records",
    "CampaignRef": "bench.results",
    "RunResult": "bench.results",
    "read_jsonl": "bench.results",
    "write_jsonl": "bench.results",
    "run_benchmark": "bench.runner",
    "TimingStreamer": "bench.streamer",
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
    "OutOfMemory",
    "Prompt",
    "PromptError",
    "PromptSet",
    "RequestRecord",
    "RequestResult",
    "ResultFileError",
    "RunConfig",
    "RunMetrics",
    "RunResult",
    "RunTimeout",
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
    from bench.campaign import Campaign, CampaignError, load_campaign
    from bench.config import PRECISIONS, RunConfig
    from bench.errors import (
        BenchError,
        BenchmarkFailed,
        ConfigError,
        DatabaseUnavailable,
        DeviceError,
        ModelLoadError,
        OutOfMemory,
        PromptError,
        ResultFileError,
        RunTimeout,
        StoreError,
    )
    from bench.metrics import RunMetrics, request_result, summarize
    from bench.prompts import Prompt, PromptSet, load_prompt_set
    from bench.records import RequestRecord, RequestResult
    from bench.results import CampaignRef, RunResult, read_jsonl, write_jsonl
    from bench.runner import run_benchmark
    from bench.streamer import TimingStreamer
