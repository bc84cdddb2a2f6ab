"""Apply ``sql/migrations/NNN_<verb>_<object>.sql`` in order, once each.

The files are the only definition of the schema. Each one runs in its own
transaction together with its row in ``schema_migrations`` (name, sha256),
so a failed migration leaves nothing half-applied. The whole upgrade holds a
Postgres advisory lock: several workers starting at once (Airflow mapped
tasks, ``bench run`` in parallel) apply each migration exactly once, the
others wait and then find nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2
import sqlalchemy as sa

from bench.errors import StoreError
from bench.store.db import first_line, is_disconnect, translate_errors
from bench.store.sqlfiles import migrations_dir

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
#: pg_advisory_lock key: the first 8 bytes of sha256("bench.store.migrate"), signed.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"bench.store.migrate").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    """One migration as ``bench db status`` shows it."""

    name: str
    applied_at: datetime | None
    #: The file differs from what was applied (edited after the fact), or
    #: the file is gone (the database is newer than this checkout).
    drift: str | None = None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files, in order; a malformed or duplicate number is an error."""
    directory = directory or migrations_dir()
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise StoreError(f"migration file {path.name} is not named NNN_<verb>_<object>.sql")
        number = match.group(1)
        if number in found:
            raise StoreError(
                f"migrations {found[number].name} and {path.name} share number {number}"
            )
        found[number] = Migration(path.name, path.read_text(encoding="utf-8"))
    return [found[n] for n in sorted(found)]


def _applied(conn: sa.Connection) -> dict[str, tuple[str, datetime]]:
    if conn.execute(sa.text("SELECT to_regclass('schema_migrations')")).scalar() is None:
        return {}
    rows = conn.execute(sa.text("SELECT name, checksum, applied_at FROM schema_migrations"))
    return {name: (checksum, at) for name, checksum, at in rows}


def status(engine: sa.Engine) -> list[MigrationState]:
    """Every known migration (files, then ledger rows without a file)."""
    migrations = discover()
    with translate_errors(engine), engine.connect() as conn:
        done = _applied(conn)
    states = []
    for m in migrations:
        row = done.pop(m.name, None)
        drift = "file changed since it was applied" if row and row[0] != m.checksum else None
        states.append(MigrationState(m.name, row[1] if row else None, drift))
    for name, (_, at) in sorted(done.items()):
        states.append(
            MigrationState(name, at, "applied but no such file (code older than the DB?)")
        )
    return states


def upgrade(engine: sa.Engine) -> list[str]:
    """Apply the pending migrations; return their names (empty: up to date).

    Safe to call from several processes at once and on every start.
    """
    migrations = discover()
    applied_now: list[str] = []
    with translate_errors(engine), engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        conn.commit()
        try:
            done = _applied(conn)
            conn.commit()
            for m in migrations:
                if m.name in done:
                    if done[m.name][0] != m.checksum:
                        log.warning(
                            "migration %s changed since it was applied; not re-applied", m.name
                        )
                    continue
                _apply(conn, m)
                applied_now.append(m.name)
        finally:
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            conn.commit()
    return applied_now


def _apply(conn: sa.Connection, migration: Migration) -> None:
    try:
        with conn.begin():  # the script and its ledger row commit together or not at all
            # The raw cursor runs the file as one multi-statement script, with
            # no bind-parameter parsing of its colons and percent signs.
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(migration.sql)
            finally:
                cursor.close()
            conn.execute(
                sa.text("INSERT INTO schema_migrations (name, checksum) VALUES (:name, :checksum)"),
                {"name": migration.name, "checksum": migration.checksum},
            )
    except psycopg2.Error as exc:
        if is_disconnect(exc):
            raise
        raise StoreError(f"migration {migration.name} failed: {first_line(exc)}") from None
    log.info("applied migration %s", migration.name)
