"""End to end through a real scheduler started the ``make airflow`` way
(bench.orchestration.airflow_env): trigger over REST, wait, check the rows,
then read the task logs as a user does, through the REST API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bench.core.results import CampaignRef
from bench.orchestration.tasks import report_path
from tests.airflow.cluster import Cluster, airflow_cluster
from tests.airflow.test_dag_run import FAST, RUNS, rows

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]

DAG = "llm_bench_smoke"


def _seconds(run: dict[str, str]) -> float:
    start, end = (datetime.fromisoformat(run[k]) for k in ("start_date", "end_date"))
    return (end - start).total_seconds()


def _check_logs_of_a_good_run(af: Cluster, run_id: str) -> None:
    """What a user reads in the UI: each configuration, its progress and
    table; the verdicts; the campaign table (120 columns) and the report URL."""
    for label, index in af.map_indexes(DAG, run_id, "benchmark").items():
        log = af.task_log(DAG, run_id, "benchmark", map_index=index)
        text = "\n".join(log)
        assert f"{label}: model tiny-llama (" in text, text
        assert f"{label}: 4/4 requests (100%)" in text
        assert f"{label}  backend=hf device=cpu timing=stream  status=ok" in text  # result table
        assert any(line.startswith("ttft_ms ") for line in log)
        assert f"{label}: ok" in log and "s in the child: start-up" in text
    detect = "\n".join(af.task_log(DAG, run_id, "detect_regressions"))
    assert "2 ok run(s) judged" in detect, detect
    report = af.task_log(DAG, run_id, "report")
    table = report[report.index("2/2 configurations ok") :][:3]
    assert table[1].startswith("configuration") and all(len(line) <= 120 for line in table), report
    path = report_path(CampaignRef(dag_run_id=run_id, dag_id=DAG))
    url = f"{af.env['AIRFLOW__API__BASE_URL']}/benchmarks/reports/{DAG}/{path.name}"
    assert f"report: {url}" in report and path.is_file(), report


def _check_an_empty_matrix_fails_fast_in_one_line(af: Cluster, db_url: str) -> None:
    """Batch 16 passes the form's schema but is above the model's max_batch_size 8."""
    bad = af.trigger(DAG, {**FAST, "batch_sizes": [16]})
    assert af.wait_for_run(DAG, bad, timeout_s=180) == "failed"
    assert _seconds(af.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{bad}")) < 60  # no retry wait
    states = af.task_states(DAG, bad)
    assert states["plan"] == "failed"
    assert states["detect_regressions"] == states["report"] == "success", states
    assert states["any_config_failed"] == "failed"
    assert not [
        k for k, v in states.items() if k.startswith("benchmark[") and v != "upstream_failed"
    ]
    plan = af.task_log(DAG, bad, "plan")
    (error,) = [line for line in plan if line.startswith("plan: error: ")]
    assert "matrix is empty" in error and "smoke.yaml" in error, plan
    assert not any("Traceback" in line or 'File "' in line for line in plan), plan
    for task in ("detect_regressions", "report"):
        assert any(line.startswith("nothing ran: ") for line in af.task_log(DAG, bad, task))
    assert "no configuration ran: the plan task failed (its log says why)" in af.task_log(
        DAG, bad, "any_config_failed"
    )
    assert rows(db_url, RUNS, run_id=bad) == []


def test_rest_trigger_runs_the_smoke_campaign_and_rejects_bad_conf(
    smoke_home: Path, db_url: str, tmp_path: Path
) -> None:
    with airflow_cluster(tmp_path / "logs") as af:
        af.wait_for_dag(DAG)
        run_id = af.trigger(DAG, FAST)
        assert af.wait_for_run(DAG, run_id) == "success", af.tail("scheduler")
        states = af.task_states(DAG, run_id)
        assert states["benchmark[tiny-llama/fp32/bs1]"] == "success"
        assert states["benchmark[tiny-llama/fp32/bs4]"] == "success"
        assert states["report"] == "success"
        runs = rows(db_url, RUNS, run_id=run_id)
        assert [(r["label"], r["status"], r["n_rows"]) for r in runs] == [
            ("tiny-llama/fp32/bs1", "ok", 4),
            ("tiny-llama/fp32/bs4", "ok", 4),
        ]
        _check_logs_of_a_good_run(af, run_id)

        # passes the form's JSON schema, fails the campaign's own validation in plan
        _check_an_empty_matrix_fails_fast_in_one_line(af, db_url)

        # invalid for the schema itself: the API refuses to create the run
        response = af.api(
            "POST",
            f"/api/v2/dags/{DAG}/dagRuns",
            {"logical_date": None, "conf": {"precisions": ["fp9"]}},
        )
        assert "fp9" in str(response)
