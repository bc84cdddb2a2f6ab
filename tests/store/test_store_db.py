"""Connection: BENCH_DB_URL, the embedded server, one-line failures."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import psycopg2
import pytest
import sqlalchemy as sa
from store_helpers import bench_proc

from bench.errors import ConfigError, DatabaseUnavailable
from bench.paths import pgdata_dir
from bench.store.db import display_url, get_engine, is_disconnect, resolve_url, stop_embedded
from bench.store.migrate import upgrade


def test_bench_db_url_wins(db_url: str) -> None:
    assert resolve_url() == db_url
    assert get_engine() is get_engine(db_url)


@pytest.mark.parametrize("url", ["not a url", "sqlite:///x.db"])
def test_a_bad_bench_db_url_is_a_config_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DB_URL", url)
    with pytest.raises(ConfigError, match="BENCH_DB_URL"):
        resolve_url()


def test_passwords_are_never_shown() -> None:
    shown = display_url("postgresql+psycopg2://bench:hunter2@db.example:5432/results")
    assert shown == "postgresql+psycopg2://bench:***@db.example:5432/results"


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    engine = get_engine(f"postgresql+psycopg2://bench:hunter2@/results?host={tmp_path}")
    with pytest.raises(DatabaseUnavailable) as info:
        upgrade(engine)
    message = str(info.value)
    assert message.startswith("results DB unreachable (postgresql+psycopg2://bench:***@/results")
    assert "\n" not in message and "hunter2" not in message


def test_embedded_server_concurrent_first_starts(bench_home: Path) -> None:
    """Parallel Airflow tasks on a fresh machine: all start the embedded DB at
    once; one initdb, one postmaster, every process gets a working DB."""
    env = {"BENCH_HOME": str(bench_home)}
    env_no_url = {k: v for k, v in os.environ.items() if k != "BENCH_DB_URL"}
    procs = [bench_proc("db", "upgrade", env={**env_no_url, **env}) for _ in range(3)]
    try:
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        pid = int((pgdata_dir() / "postmaster.pid").read_text().split()[0])
        assert psutil.Process(pid).name() == "postgres"
        postmasters = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres"
            and str(pgdata_dir()) in " ".join(p.info["cmdline"] or ())
            and p.ppid() != pid
        ]
        assert [p.pid for p in postmasters] == [pid]
        url = resolve_url()  # reuses the running server
        with sa.create_engine(url).connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar_one() >= 7
    finally:
        assert stop_embedded()
    assert not stop_embedded()


@pytest.mark.parametrize(
    ("exc", "gone"),
    [
        (psycopg2.OperationalError("could not connect to server"), True),
        (psycopg2.InterfaceError("connection already closed"), True),
        # libpq said the server closed the connection before psycopg2 saw it bad
        (psycopg2.DatabaseError("server closed the connection unexpectedly"), True),
        (psycopg2.ProgrammingError("syntax error at or near"), False),
        (psycopg2.IntegrityError("duplicate key value"), False),
        (ValueError("not a database error"), False),
    ],
    ids=["operational", "interface", "bare-database-error", "programming", "integrity", "other"],
)
def test_which_errors_mean_the_server_is_gone(exc: BaseException, gone: bool) -> None:
    """A lost server keeps the result spooled (DatabaseUnavailable); a bad
    statement is an error of its own, never mistaken for an outage."""
    assert is_disconnect(exc) is gone
