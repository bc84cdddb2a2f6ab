"""Where tasks find the results DB: connection bench_results, else BENCH_DB_URL, else embedded."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa


def test_airflow_connection_wins_and_connects(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow  # noqa: F401  (puts plugins/ on sys.path, as in every Airflow process)
    from bench_results import results_db_url

    url = sa.make_url(db_url)
    conn = {
        "conn_type": "postgres",
        "host": url.query["host"],  # the embedded server's socket directory
        "login": url.username,
        "password": "",
        "schema": url.database,
    }
    monkeypatch.setenv("AIRFLOW_CONN_BENCH_RESULTS", json.dumps(conn))
    monkeypatch.setenv("BENCH_DB_URL", "postgresql+psycopg2://nobody@/nowhere")
    resolved = results_db_url()
    assert resolved is not None and resolved.startswith("postgresql+psycopg2://")
    engine = sa.create_engine(resolved)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT current_database()")).scalar() == url.database
    engine.dispose()


def test_without_a_connection_bench_db_url_then_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow  # noqa: F401  (puts plugins/ on sys.path, as in every Airflow process)
    from bench_results import results_db_url

    monkeypatch.setenv("BENCH_DB_URL", "postgresql+psycopg2://u@h/db")
    assert results_db_url() == "postgresql+psycopg2://u@h/db"
    monkeypatch.delenv("BENCH_DB_URL")
    assert results_db_url() is None  # bench starts the embedded server on first use


def test_readers_take_the_reader_connection_then_the_variable_then_the_writers_db(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import airflow  # noqa: F401  (puts plugins/ on sys.path, as in every Airflow process)
    from bench_results import reader_db_url

    monkeypatch.setenv("BENCH_DB_URL", "postgresql+psycopg2://owner@h/db")
    assert reader_db_url() == "postgresql+psycopg2://owner@h/db"
    monkeypatch.setenv("BENCH_READER_DB_URL", "postgresql+psycopg2://bench_reader@h/db")
    assert reader_db_url() == "postgresql+psycopg2://bench_reader@h/db"
    conn = {"conn_type": "postgres", "host": "pg", "login": "grafana", "schema": "results"}
    monkeypatch.setenv("AIRFLOW_CONN_BENCH_RESULTS_READER", json.dumps(conn))
    assert reader_db_url() == "postgresql+psycopg2://grafana@pg/results"
