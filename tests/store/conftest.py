"""Fixtures of the results-store tests: a migrated database, a server of one's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """A fresh database with the schema applied (BENCH_DB_URL points at it)."""
    from bench.store.db import get_engine
    from bench.store.migrate import upgrade

    eng = get_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def own_pgdata(tmp_path: Path) -> Iterator[Path]:
    """A data directory for a Postgres this test may stop and start at will
    (never the shared session server); stopped at teardown."""
    from bench.store.db import stop_embedded

    pgdata = tmp_path / "own-pg"
    yield pgdata
    stop_embedded(pgdata)
