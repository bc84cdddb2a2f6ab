"""Matrix row 4: a Celery worker SIGKILLed during a benchmark.

CeleryExecutor with Redis, as ``tests/airflow/test_celery_queue.py``: one
worker runs the campaign; while a benchmark task is running its whole
process group is SIGKILLed (the node lost its worker container) and a new
worker is started. The task instance stops heartbeating, the scheduler
fails it and retries it on the new worker, and the retry replaces the run:
each configuration once in the results DB, the DAG run green, the task at
its second try, the run stored as attempt 2 and the report task's campaign
table showing it in its "tries" column.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.airflow.cluster import airflow_cluster
from tests.airflow.test_celery_queue import redis_url
from tests.airflow.test_dag_run import RUNS, rows
from tests.reliability.test_campaign_faults import _task_instances, _wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]

__all__ = ["redis_url"]

DAG = "llm_bench_faults"


def _wait_for_benchmark_child(worker_pid: int, timeout_s: float = 120) -> None:
    """Until the worker runs a benchmark child (``bench run ... --outcome``):
    a kill from then on lands before the task can finish, however fast the
    machine (a fixed sleep after "running" let a quick task finish first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in psutil.Process(worker_pid).children(recursive=True):
            try:
                if "--outcome" in proc.cmdline():
                    return
            except psutil.Error:
                continue  # gone, or a zombie, while looked at
        time.sleep(0.1)
    raise AssertionError(f"no benchmark child under the worker within {timeout_s:.0f} s")


def test_a_killed_celery_worker_is_retried_elsewhere_and_replaces_not_duplicates(
    redis_url: str, dags_copy: Path, smoke_home: Path, db_url: str, tmp_path: Path
) -> None:
    smoke = yaml.safe_load((dags_copy / "campaigns" / "smoke.yaml").read_text())
    smoke.update(precisions=["fp32"], batch_sizes=[2], limit=2, max_new_tokens=4, retries=2)
    (dags_copy / "campaigns" / "faults.yaml").write_text(yaml.safe_dump(smoke))
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    }
    worker = ["celery", "worker", "--queues", "default", "--concurrency", "2"]
    with airflow_cluster(tmp_path / "logs", dags_folder=dags_copy, extra_env=env) as af:
        af.start("worker-1", worker)
        af.wait_for_dag(DAG)
        started = time.monotonic()
        run_id = af.trigger(DAG, {})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            tis = _task_instances(af, run_id)
            if any(t["task_id"] == "benchmark" and t["state"] == "running" for t in tis):
                break
            af.check_alive()
            time.sleep(2)
        else:
            raise AssertionError(f"no benchmark started: {tis}\n{af.tail('worker-1')}")
        _wait_for_benchmark_child(af.procs["worker-1"].pid)
        time.sleep(1)  # into the child's start-up or model load: seconds from done
        os.killpg(af.procs["worker-1"].pid, signal.SIGKILL)
        af.procs.pop("worker-1").wait()
        af.start("worker-2", worker)
        assert _wait_for_run(af, run_id) == "success", af.tail("worker-2")
        (bench,) = [t for t in _task_instances(af, run_id) if t["task_id"] == "benchmark"]
        assert bench["try_number"] == 2, bench
        runs = rows(db_url, RUNS, run_id=run_id)
        assert [(r["label"], r["status"], r["n_rows"]) for r in runs] == [
            ("tiny-llama/fp32/bs2", "ok", 2)
        ]
        assert rows(db_url, "SELECT attempt FROM run WHERE id = :id", id=runs[0]["id"]) == [
            {"attempt": 2}
        ]
        table = af.task_log(DAG, run_id, "report")
        assert any(line.split()[:3] == ["configuration", "status", "tries"] for line in table)
        assert any(line.split()[:3] == ["tiny-llama/fp32/bs2", "ok", "2"] for line in table), table
        print(
            f"\nrow 4: worker SIGKILLed, task retried (try {bench['try_number']}) on a new "
            f"worker, 1 run row (attempt 2, tries 2 in the campaign table); "
            f"{time.monotonic() - started:.0f} s"
        )
