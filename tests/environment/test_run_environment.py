"""`bench run` on the tiny model records the complete environment and the run's telemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.store.db import get_engine
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_a_run_stores_image_kernel_revision_and_telemetry(
    tiny_model: Path, tmp_path: Path, db_url: str
) -> None:
    out = tmp_path / "run.jsonl"
    proc = bench(
        "run", "--model", str(tiny_model), "--device", "cpu", "--precision", "fp32",
        "--limit", "4", "--max-new-tokens", "8", "--warmup", "0", "--output", str(out), "-q",
        env={"BENCH_IMAGE": "llm-bench-cpu-worker:test-1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text().splitlines()[-1])
    env = summary["environment"]
    assert env["image"] == "llm-bench-cpu-worker:test-1"
    assert env["kernel"] and env["cpu_model"]
    assert env["model_revision"].startswith("sha256:")
    assert env["packages"]["deepspeed"] is None  # tracked, not installed: recorded as such
    telemetry = summary["telemetry"]
    assert telemetry["sources"] == ["host"] and telemetry["samples"] >= 2
    assert "cpu_utilization_pct" in telemetry["fields"] and telemetry["throttled"] is False
    with get_engine(db_url).connect() as conn:
        extra, stored = conn.execute(
            sa.text(
                "SELECT e.extra, r.telemetry FROM run r JOIN environment e ON e.id = r.environment_id"
            )
        ).one()
    assert extra["image"] == "llm-bench-cpu-worker:test-1"
    assert extra["model_revision"] == env["model_revision"]
    assert stored == telemetry


def test_confirm_needs_a_campaign(tiny_model: Path) -> None:
    proc = bench("run", "--model", str(tiny_model), "--device", "cpu", "--confirm", "--no-db")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: error: --confirm re-runs a campaign's configuration: give --campaign-run-id"
    ]
