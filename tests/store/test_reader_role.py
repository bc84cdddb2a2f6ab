"""The read-only role ``bench_reader`` (migration 010): reads everything, writes nothing."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
import store_factory as f
from store_helpers import REPO

from bench.cli.report import cmd_report
from bench.errors import ConfigError
from bench.store import queries, writer
from bench.store.db import get_engine
from bench.store.migrate import upgrade

ROLE = "bench_reader"


def admin(engine: sa.Engine, sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(sql))


@pytest.fixture
def reader(engine: sa.Engine) -> Iterator[sa.Engine]:
    """A login as ``bench_reader``, made the way the README tells an admin to
    (the test server trusts local logins, so no password is needed here)."""
    writer.load(engine, f.result(f.config(model="m"), campaign=f.nightly(0)))
    admin(engine, f"ALTER ROLE {ROLE} WITH LOGIN")
    url = engine.url.set(username=ROLE, password=None)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


def relations(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema() ORDER BY table_name"
                )
            ).scalars()
        )


def test_the_role_reads_every_table_and_view(engine: sa.Engine, reader: sa.Engine) -> None:
    names = relations(engine)
    assert {"run", "run_summary", "request_result", "v_run_trend", "v_latest_run"} <= set(names)
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() == ROLE
        for name in names:
            conn.execute(sa.text(f'SELECT * FROM "{name}" LIMIT 1')).all()
        read_only = conn.execute(sa.text("SHOW default_transaction_read_only")).scalar_one()
    assert read_only == "on"


def test_the_role_runs_every_named_query(engine: sa.Engine, reader: sa.Engine) -> None:
    with engine.connect() as conn:
        run_id, campaign, environment_id, run_uid = conn.execute(
            sa.text(
                "SELECT r.id, c.dag_run_id, r.environment_id, r.run_uid"
                " FROM run r JOIN campaign c ON c.id = r.campaign_id"
            )
        ).one()
    required = {
        "model": "m",
        "campaign": campaign,
        "run_id": run_id,
        "run_uid": run_uid,
        "environment_id": environment_id,
        "slo_ttft_p99_ms": 100,
        "campaign_a": campaign,
        "campaign_b": campaign,
        "select_a": "",
        "select_b": "",
    }
    for name in queries.available():
        params = {p.name: required[p.name] for p in queries.query(name).params if p.required}
        queries.run_query(reader, name, **params)  # raises on "permission denied"


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO campaign (dag_run_id, started_at) VALUES ('x', now())",
        "UPDATE run SET status = 'failed'",
        "DELETE FROM regression",
        "TRUNCATE request_result",
        "CREATE TABLE mine (x int)",
        "SELECT * FROM run FOR UPDATE",
        "DROP VIEW v_run_trend",
    ],
)
def test_the_role_cannot_write_even_in_a_read_write_transaction(
    engine: sa.Engine, reader: sa.Engine, sql: str
) -> None:
    before = relations(engine)
    with reader.connect() as conn:
        conn.execute(sa.text("SET TRANSACTION READ WRITE"))  # undo the role's default
        with pytest.raises(sa.exc.ProgrammingError) as caught:
            conn.execute(sa.text(sql))
    assert isinstance(caught.value.orig, psycopg2.errors.InsufficientPrivilege), caught.value
    assert relations(engine) == before


def test_a_table_a_later_migration_creates_is_readable_too(
    engine: sa.Engine, reader: sa.Engine
) -> None:
    admin(engine, "CREATE TABLE later_table (x int)")  # as the migrating login
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM later_table")).scalar_one() == 0


def test_the_migration_runs_again_and_on_a_second_database(
    engine: sa.Engine, db_url: str, pg_server: object
) -> None:
    """Roles are server-wide: a second results DB on the server finds the role
    and only adds its grants; running the file again by hand changes nothing."""
    script = (REPO / "sql/migrations/010_create_bench_reader.sql").read_text()
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute(script)
            cursor.execute(script)
        raw.commit()
    finally:
        raw.close()
    second = sa.make_url(db_url).set(database=f"{sa.make_url(db_url).database}_b")
    admin(engine, f'CREATE DATABASE "{second.database}"')
    try:
        other = get_engine(second.render_as_string(hide_password=False))
        assert "010_create_bench_reader.sql" in upgrade(other)
        with other.connect() as conn:
            may = {
                what: conn.execute(
                    sa.text("SELECT has_table_privilege(:role, 'run', :what)"),
                    {"role": ROLE, "what": what},
                ).scalar_one()
                for what in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
            }
        assert may == {
            "SELECT": True,
            "INSERT": False,
            "UPDATE": False,
            "DELETE": False,
            "TRUNCATE": False,
        }
        other.dispose()
    finally:
        admin(engine, f'DROP DATABASE IF EXISTS "{second.database}" WITH (FORCE)')


def test_a_login_that_may_not_create_roles_is_warned_not_failed(engine: sa.Engine) -> None:
    """As in docker-compose, where the results DB's owner has no CREATEROLE: a
    missing role is a warning naming what an admin runs, never a failed upgrade.
    (Run under another role name, in a transaction rolled back: the real role
    exists on this server already.)"""
    script = (REPO / "sql/migrations/010_create_bench_reader.sql").read_text()
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("CREATE ROLE bench_migrator_test NOLOGIN")
            cursor.execute("SET ROLE bench_migrator_test")
            cursor.execute(script.replace(ROLE, "bench_reader_missing_test"))
            cursor.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname = 'bench_reader_missing_test'"
            )
            assert cursor.fetchone() == (0,)
        notices = "".join(raw.notices)  # type: ignore[attr-defined]
    finally:
        raw.rollback()
        raw.close()
    assert "WARNING:  role bench_reader_missing_test does not exist" in notices
    assert "CREATE ROLE bench_reader_missing_test NOLOGIN" in notices


def test_reader_engine_reads_bench_reader_url_and_stays_read_only(
    engine: sa.Engine, reader: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(queries.READER_URL_ENV, reader.url.render_as_string(hide_password=False))
    eng = queries.reader_engine()
    assert eng.url.username == ROLE
    with eng.connect() as conn:
        assert conn.execute(sa.text("SHOW transaction_read_only")).scalar_one() == "on"
    monkeypatch.delenv(queries.READER_URL_ENV)
    owner = queries.reader_engine()  # falls back to the results DB, still read-only
    assert owner.url.username != ROLE
    with owner.connect() as conn, pytest.raises(sa.exc.InternalError, match="read-only"):
        conn.execute(sa.text("DELETE FROM regression"))
    monkeypatch.setenv(queries.READER_URL_ENV, "sqlite:///x.db")
    with pytest.raises(ConfigError, match="must point at PostgreSQL"):
        queries.reader_engine()


def test_bench_report_reads_through_the_reader_login(
    engine: sa.Engine, reader: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With BENCH_READER_DB_URL set, `bench report` needs nothing else: the
    owner's BENCH_DB_URL may point nowhere."""
    monkeypatch.setenv(queries.READER_URL_ENV, reader.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BENCH_DB_URL", "postgresql+psycopg2://owner:secret@127.0.0.1:9/none")
    out = tmp_path / "report.html"
    assert cmd_report(argparse.Namespace(out=out, campaign=None, model=None, last=30)) == 0
    assert "m/fp32/bs1" in out.read_text()
