"""The public names of ``bench`` are pinned: removing one is a breaking change."""

from __future__ import annotations

import subprocess
import sys

import bench

PUBLIC = {
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
}


def test_public_names_are_pinned_and_resolve() -> None:
    assert set(bench.__all__) == PUBLIC == {"__version__", *bench._EXPORTS}
    for name in PUBLIC:
        assert getattr(bench, name) is not None


def test_light_modules_stay_light() -> None:
    """What a DAG file imports must not pull torch, transformers or numpy."""
    code = (
        "import sys, bench, bench.campaign, bench.core.config, bench.backends;"
        "print(','.join(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
