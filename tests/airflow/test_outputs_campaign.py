"""Agreement with the reference precision through the real DAG (``dag.test()``):
the smoke campaign at fp32 and bf16 stores both agreement metrics per
configuration (fp32, the reference, scores 1.0), ``bench trend`` shows them,
and the report has its outputs section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.store.db import get_engine
from bench.store.queries import run_query
from tests.conftest import REPO

pytestmark = pytest.mark.slow

CONF = {"precisions": ["fp32", "bf16"], "batch_sizes": [1], "limit": 4, "max_new_tokens": 8}


def test_fp32_and_bf16_in_one_campaign_store_their_agreement(  # type: ignore[no-untyped-def]
    dag_test, smoke_home: Path, db_url: str
) -> None:
    outcome = dag_test("llm_bench_smoke", CONF)
    assert outcome.state == "success", outcome.log[-3000:]
    engine = get_engine(db_url)
    (campaign,) = run_query(engine, "latest_campaign", model="")
    rows = {
        r["precision"]: r
        for r in run_query(engine, "campaign_outputs", campaign=campaign["dag_run_id"])
    }
    assert rows["fp32"]["reference_precision"] == "fp32"  # the default: the most precise one
    assert (rows["fp32"]["output_exact_match"], rows["fp32"]["output_prefix_match"]) == (1.0, 1.0)
    bf16 = rows["bf16"]
    assert 0.0 <= bf16["output_exact_match"] <= 1.0
    assert 0.0 <= bf16["output_prefix_match"] <= 1.0
    assert bf16["output_prefix_match"] >= bf16["output_exact_match"]  # identical = prefix 1
    trend = subprocess.run(
        [sys.executable, "-m", "bench", "trend", "--model", str(bf16["model"]),
         "--metric", "output_exact_match"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "BENCH_DB_URL": db_url},
    )  # fmt: skip
    assert trend.returncode == 0, trend.stderr
    assert "tiny-llama/fp32/bs1" in trend.stdout and "tiny-llama/bf16/bs1" in trend.stdout
    (report,) = (smoke_home / "reports" / "llm_bench_smoke").glob("*.html")
    page = report.read_text()
    assert '<section id="outputs">' in page
    assert '<tr class="agreement" data-label="tiny-llama/bf16/bs1">' in page
