"""`bench regressions`, `bench changepoints` and `bench report` on a real database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.store.db import get_engine
from tests.conftest import REPO
from tests.regressions.test_detect_db import load_nights

pytestmark = pytest.mark.slow


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ),
        timeout=300,
    )


@pytest.fixture
def stepped_history(db_url: str) -> list[str]:
    """18 nights of one config, TTFT 10% slower from night 14; the gate run on the last four
    (a change point needs a few nights of the new level to be seen)."""
    engine = get_engine(db_url)
    refs = load_nights(engine, [50.0] * 14 + [55.0] * 4, seed=2)
    for ref in refs[-4:]:
        proc = bench("regressions", "--detect", "--campaign", ref.dag_run_id, "--verdict", "all")
        assert proc.returncode == 0, proc.stderr
    return [r.dag_run_id for r in refs]


def test_regressions_lists_the_confirmed_one(stepped_history: list[str]) -> None:
    proc = bench("regressions", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert ("ttft_p50_ms", "regression", stepped_history[15]) in {
        (r["metric"], r["verdict"], r["dag_run_id"]) for r in rows
    }
    assert all(r["verdict"] == "regression" for r in rows)
    table = bench("regressions", "--verdict", "all", "--campaign", stepped_history[14])
    assert "suspicious" in table.stdout and "ttft_p50_ms" in table.stdout


def test_changepoints_show_the_first_bad_night(stepped_history: list[str]) -> None:
    proc = bench("changepoints", "--model", "tiny", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (cp,) = json.loads(proc.stdout)
    assert cp["dag_run_id"] == stepped_history[14]  # the first night of the new level
    assert cp["direction"] == "worse" and 5 < cp["change_pct"] < 15


def test_report_has_a_chart_per_config_and_the_markers(
    stepped_history: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    proc = bench("report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"report of {stepped_history[-1]}" in proc.stdout
    html = out.read_text()
    charts = re.findall(
        r'<div class="chart trend-chart"[^>]*data-config="([^"]+)"[^>]*data-regressions="(\d+)"',
        html,
    )
    assert len(charts) == 1 and charts[0][0] == "tiny/fp32/bs1" and int(charts[0][1]) >= 1, charts
    assert 'class="chart cdf-chart"' in html and 'class="chart pareto-chart"' in html
    assert not re.search(r'<script[^>]+src="https?://', html)  # self-contained: opens offline
    bad = bench("report", "--out", str(tmp_path), "--campaign", "nope")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
