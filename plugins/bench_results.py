"""Where Airflow tasks find the results database.

Order: the Airflow connection ``bench_results`` (e.g. from
``AIRFLOW_CONN_BENCH_RESULTS``, read through the Postgres provider's hook),
then ``BENCH_DB_URL``, then the embedded server under ``$BENCH_HOME``
(returned as None: ``bench`` starts it on first use). The URL is handed to
``bench run`` child processes through their environment, never logged.
"""

from __future__ import annotations

import os

RESULTS_CONN_ID = "bench_results"


def results_db_url() -> str | None:
    """SQLAlchemy URL of the results DB, or None for the embedded server."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        url = PostgresHook(postgres_conn_id=RESULTS_CONN_ID).sqlalchemy_url
    except AirflowNotFoundException:
        return os.environ.get("BENCH_DB_URL") or None
    url = url.set(drivername="postgresql+psycopg2")
    if url.host and url.host.startswith(
        "/"
    ):  # a Unix socket directory: only the query form survives rendering
        url = url._replace(host=None).update_query_dict({"host": url.host})
    return url.render_as_string(hide_password=False)
