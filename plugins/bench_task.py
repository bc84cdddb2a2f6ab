"""The Airflow side of the campaign tasks (``dags/llm_bench.py``): what a
task reads from its context, and how it writes its log and fails.

``bench`` never imports Airflow; the task bodies in
``bench.orchestration.tasks`` take plain values and a ``log`` function, and
these few functions are where the two meet. Lines go through Airflow's own
logging as logger ``bench``, so they keep their place among Airflow's lines
and stay visible (``[logging] namespace_levels = bench=INFO``) when Airflow
itself logs at WARNING.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

import structlog

LOGGER = "bench"


def campaign_ref(context: Any) -> Any:
    """The campaign of this DAG run (``bench.core.results.CampaignRef``)."""
    from bench.core.results import CampaignRef

    run = context["dag_run"]
    trigger = str(getattr(run, "run_type", "manual") or "manual").split(".")[-1].lower()
    return CampaignRef(dag_run_id=run.run_id, dag_id=run.dag_id, trigger=trigger)


def try_number(context: Any) -> int:
    """Which try of its task this is (1 on the first): stored with the run."""
    return int(context["ti"].try_number)


def planned_items(context: Any) -> list[dict[str, Any]] | None:
    """The plan task's items; None when it failed (then nothing ran)."""
    items = context["ti"].xcom_pull(task_ids="plan")
    return list(items) if items else None


def base_url() -> str | None:
    """Where users reach this Airflow (``[api] base_url``), for links in logs."""
    from airflow.sdk import conf

    return conf.get("api", "base_url", fallback=None) or None


def log(message: str) -> None:
    """``message`` in the task's log, one event a line (a table stays a table)."""
    logger = structlog.get_logger(LOGGER)
    for line in message.splitlines() or [""]:
        logger.info(line)


def fail(message: str, code: int) -> NoReturn:
    """Fail the task (these tasks have no retries) with ``message`` as the
    error line of its log, without a traceback that would bury it."""
    structlog.get_logger(LOGGER).error(message)
    raise SystemExit(int(code))


@contextlib.contextmanager
def retry_only_when_db_down() -> Iterator[None]:
    """Let Airflow retry a task only while the results DB is unreachable.

    ``DatabaseUnavailable`` propagates (the task's ``retries`` wait the
    outage out); any other project error fails the task at once, without
    a traceback, since another attempt would fail the same way.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from bench.errors import BenchError, DatabaseUnavailable

    try:
        yield
    except DatabaseUnavailable as exc:
        structlog.get_logger(LOGGER).warning(f"{exc}; the task retries")
        raise
    except BenchError as exc:
        structlog.get_logger(LOGGER).error(str(exc))
        raise AirflowFailException(str(exc)) from None
