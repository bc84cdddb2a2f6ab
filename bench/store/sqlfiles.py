"""Where the SQL lives: ``sql/migrations`` and ``sql/queries`` at the repo root.

The schema and the named queries are plain files so that psql, a Grafana
panel and a code reviewer read exactly what the library runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import StoreError

SQL_DIR_ENV = "BENCH_SQL_DIR"


def sql_dir() -> Path:
    """``$BENCH_SQL_DIR`` (for installs outside a checkout) or ``<repo>/sql``."""
    path = Path(os.environ.get(SQL_DIR_ENV) or Path(__file__).resolve().parents[2] / "sql")
    if not (path / "migrations").is_dir():
        raise StoreError(
            f"SQL files not found in {path} (set {SQL_DIR_ENV} to the project's sql/ folder)"
        )
    return path


def migrations_dir() -> Path:
    return sql_dir() / "migrations"


def queries_dir() -> Path:
    return sql_dir() / "queries"
