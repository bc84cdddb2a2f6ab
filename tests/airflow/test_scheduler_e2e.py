"""End to end through a real scheduler: trigger over REST, wait, check rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow.cluster import airflow_cluster
from tests.airflow.test_dag_run import FAST, RUNS, rows

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]


def test_rest_trigger_runs_the_smoke_campaign_and_rejects_bad_conf(
    smoke_home: Path, db_url: str, tmp_path: Path
) -> None:
    with airflow_cluster(tmp_path / "logs") as af:
        af.wait_for_dag("llm_bench_smoke")
        run_id = af.trigger("llm_bench_smoke", FAST)
        assert af.wait_for_run("llm_bench_smoke", run_id) == "success", af.tail("scheduler")
        states = af.task_states("llm_bench_smoke", run_id)
        assert states["benchmark[tiny-llama/fp32/bs1]"] == "success"
        assert states["benchmark[tiny-llama/fp32/bs4]"] == "success"
        assert states["report"] == "success"
        runs = rows(db_url, RUNS, run_id=run_id)
        assert [(r["label"], r["status"], r["n_rows"]) for r in runs] == [
            ("tiny-llama/fp32/bs1", "ok", 4),
            ("tiny-llama/fp32/bs4", "ok", 4),
        ]

        # passes the form's JSON schema, fails the campaign's own validation in plan
        bad = af.trigger("llm_bench_smoke", {**FAST, "batch_sizes": [64]})
        assert af.wait_for_run("llm_bench_smoke", bad) == "failed"
        states = af.task_states("llm_bench_smoke", bad)
        assert states["plan"] == "failed"
        assert not any(k.startswith("benchmark[") for k in states) or all(
            v in ("upstream_failed", "removed")
            for k, v in states.items()
            if k.startswith("benchmark")
        )
        assert rows(db_url, RUNS, run_id=bad) == []

        # invalid for the schema itself: the API refuses to create the run
        response = af.api(
            "POST",
            "/api/v2/dags/llm_bench_smoke/dagRuns",
            {"logical_date": None, "conf": {"precisions": ["fp9"]}},
        )
        assert "fp9" in str(response)
