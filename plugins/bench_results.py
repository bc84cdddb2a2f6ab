"""Where Airflow components find the results database.

Writers (the DAG's tasks): the Airflow connection ``bench_results`` (e.g.
from ``AIRFLOW_CONN_BENCH_RESULTS``, read through the Postgres provider's
hook), then ``BENCH_DB_URL``, then the embedded server under ``$BENCH_HOME``
(returned as None: ``bench`` starts it on first use).

Readers (the Benchmarks page): the connection ``bench_results_reader``
(a login holding the read-only ``bench_reader`` role of migration 010), then
``BENCH_READER_DB_URL``, then the writers' lookup; the caller opens every
transaction ``READ ONLY`` whichever it gets
(:func:`bench.store.queries.reader_engine`).

URLs are handed to ``bench`` and its child processes, never logged.
"""

from __future__ import annotations

import os

RESULTS_CONN_ID = "bench_results"
READER_CONN_ID = "bench_results_reader"


def _connection_url(conn_id: str) -> str | None:
    """SQLAlchemy URL of Airflow connection ``conn_id``; None when it is not defined."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        url = PostgresHook(postgres_conn_id=conn_id).sqlalchemy_url
    except AirflowNotFoundException:
        return None
    url = url.set(drivername="postgresql+psycopg2")
    if url.host and url.host.startswith(
        "/"
    ):  # a Unix socket directory: only the query form survives rendering
        url = url._replace(host=None).update_query_dict({"host": url.host})
    return url.render_as_string(hide_password=False)


def results_db_url() -> str | None:
    """SQLAlchemy URL of the results DB, or None for the embedded server."""
    return _connection_url(RESULTS_CONN_ID) or os.environ.get("BENCH_DB_URL") or None


def reader_db_url() -> str | None:
    """SQLAlchemy URL for reading results (see the module docstring), or None
    for the embedded server."""
    from bench.store.queries import READER_URL_ENV

    return (
        _connection_url(READER_CONN_ID)
        or os.environ.get(READER_URL_ENV, "").strip()
        or results_db_url()
    )
