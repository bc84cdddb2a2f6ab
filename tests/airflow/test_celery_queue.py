"""Queue routing on a real CeleryExecutor: benchmark tasks wait for the Gaudi queue's worker.

The production stack (docker-compose.yaml) sends every campaign task to the
Celery queue its campaign names (``queue: hpu`` for nightly) and runs one
worker per Gaudi node consuming that queue; plan, regressions and report stay
on ``default``. Here: Redis as the broker, a worker on ``default`` only,
then a second worker on ``hpu`` (standing in for a Gaudi node). Until the
second worker exists the benchmark task stays queued; then the campaign
finishes and its rows land in Postgres.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.airflow.cluster import airflow_cluster
from tests.airflow.test_dag_run import RUNS, rows
from tests.conftest import require_tool
from tests.procs import free_port

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = require_tool("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_benchmarks_run_only_on_the_worker_of_their_queue(  # type: ignore[no-untyped-def]
    redis_url: str, dags_copy: Path, smoke_home: Path, db_url: str, tmp_path: Path
) -> None:
    smoke = yaml.safe_load((dags_copy / "campaigns" / "smoke.yaml").read_text())
    (dags_copy / "campaigns" / "routed.yaml").write_text(
        yaml.safe_dump(
            {
                **smoke,
                "queue": "hpu",
                "precisions": ["fp32"],
                "batch_sizes": [2],
                "limit": 4,
                "max_new_tokens": 8,
            }
        )
    )
    celery = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CELERY__BROKER_URL": redis_url}
    with airflow_cluster(tmp_path / "logs", dags_folder=dags_copy, extra_env=celery) as af:
        af.start(
            "worker-default", ["celery", "worker", "--queues", "default", "--concurrency", "1"]
        )
        af.wait_for_dag("llm_bench_routed")
        run_id = af.trigger("llm_bench_routed", {})
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            states = af.task_states("llm_bench_routed", run_id)
            if states.get("plan") == "success" and states.get("benchmark[0]") == "queued":
                break
            af.check_alive()
            time.sleep(3)
        else:
            raise AssertionError(
                f"benchmark never reached the hpu queue: {states}\n{af.tail('worker-default')}"
            )
        time.sleep(20)  # a default-queue worker must not pick it up
        assert af.task_states("llm_bench_routed", run_id)["benchmark[0]"] == "queued"
        assert rows(db_url, RUNS, run_id=run_id) == []

        af.start("worker-hpu", ["celery", "worker", "--queues", "hpu", "--concurrency", "1"])
        assert af.wait_for_run("llm_bench_routed", run_id) == "success", af.tail("worker-hpu")
        assert (
            af.task_states("llm_bench_routed", run_id)["benchmark[tiny-llama/fp32/bs2]"]
            == "success"
        )
        runs = rows(db_url, RUNS, run_id=run_id)
        assert [(r["label"], r["status"], r["n_rows"]) for r in runs] == [
            ("tiny-llama/fp32/bs2", "ok", 4)
        ]


def test_a_two_target_campaign_runs_each_target_on_its_own_worker(  # type: ignore[no-untyped-def]
    redis_url: str, dags_copy: Path, smoke_home: Path, db_url: str, tmp_path: Path
) -> None:
    """Scale-out (issue 14): Redis, a worker on ``default`` and one worker per
    target queue. The ``gaudi3`` worker is down when the campaign starts: its
    configuration waits, queued, while ``gaudi2``'s runs; when the worker comes
    back it runs it. Both histories land in one Postgres, once each."""
    smoke = yaml.safe_load((dags_copy / "campaigns" / "smoke.yaml").read_text())
    targets = [{"name": "gaudi2", "queue": "q_gaudi2"}, {"name": "gaudi3", "queue": "q_gaudi3"}]
    (dags_copy / "campaigns" / "fleet.yaml").write_text(
        yaml.safe_dump(
            {**smoke, "targets": targets, "precisions": ["fp32"], "batch_sizes": [2]}
            | {"limit": 4, "max_new_tokens": 8}
        )
    )
    celery = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CELERY__BROKER_URL": redis_url}
    worker = ["celery", "worker", "--concurrency", "1", "--queues"]
    with airflow_cluster(tmp_path / "logs", dags_folder=dags_copy, extra_env=celery) as af:
        af.start("worker-default", [*worker, "default"])
        af.start("worker-gaudi2", [*worker, "q_gaudi2"])
        af.wait_for_dag("llm_bench_fleet")
        run_id = af.trigger("llm_bench_fleet", {})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = af.task_states("llm_bench_fleet", run_id)
            if states.get("benchmark_gaudi2[tiny-llama/fp32/bs2@gaudi2]") == "success":
                break
            af.check_alive()
            time.sleep(3)
        else:
            raise AssertionError(f"gaudi2 never ran: {states}\n{af.tail('worker-gaudi2')}")
        # the gaudi3 configuration is waiting for its worker, not lost, not run elsewhere
        assert states["benchmark_gaudi3[0]"] == "queued", states
        assert [r["label"] for r in rows(db_url, RUNS, run_id=run_id)] == ["tiny-llama/fp32/bs2"]

        af.start("worker-gaudi3", [*worker, "q_gaudi3"])
        assert af.wait_for_run("llm_bench_fleet", run_id) == "success", af.tail("worker-gaudi3")
        targets_run = rows(
            db_url,
            "SELECT r.target, count(*) AS n FROM run r JOIN campaign c ON c.id = r.campaign_id"
            " WHERE c.dag_run_id = :r GROUP BY r.target ORDER BY r.target",
            r=run_id,
        )
        assert [(r["target"], r["n"]) for r in targets_run] == [("gaudi2", 1), ("gaudi3", 1)]
