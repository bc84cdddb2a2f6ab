"""The retry policy rows 2 and 3 rely on: the tasks after the benchmarks
retry soon and only while the results DB is unreachable; plan never."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench.errors import DatabaseUnavailable, StoreError
from tests.airflow.conftest import dagbag

__all__ = ["dagbag"]


def test_tasks_after_the_benchmarks_retry_soon_and_plan_never(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["llm_bench_smoke"]
    for task_id in ("suspects", "detect_regressions", "report"):
        task = dag.get_task(task_id)
        assert task.retries == 5, task_id
        assert task.retry_delay == timedelta(seconds=15), task_id
        assert task.max_retry_delay == timedelta(minutes=4), task_id
    assert dag.get_task("plan").retries == 0


def test_only_an_unreachable_db_is_worth_a_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from bench_task import retry_only_when_db_down  # plugins/

    with pytest.raises(DatabaseUnavailable), retry_only_when_db_down():
        raise DatabaseUnavailable("results DB unreachable (socket gone)")
    with pytest.raises(AirflowFailException, match="bad query"), retry_only_when_db_down():
        raise StoreError("results DB error: bad query")
    with retry_only_when_db_down():
        pass  # success passes through
