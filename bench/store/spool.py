"""The spool: every result reaches disk before the database, and none is lost.

``$BENCH_HOME/spool/<utc time>_<run_uid>.jsonl`` is written (atomically)
before the DB is touched; loading moves it to ``spool/loaded/``. With the DB
down, the run still succeeds and says where its result waits; the next
``bench run`` or ``bench db load`` drains the backlog oldest first.

Several processes may drain one spool at once (parallel Airflow tasks on one
worker). A file is claimed by renaming it into ``spool/.claims/`` (atomic, so
exactly one process wins it), and loading is idempotent by ``run_uid`` in
any case. A claim left by a process that died is released by the next drain.
A file that cannot be parsed goes to ``spool/rejected/`` so it never blocks
the backlog.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil
import sqlalchemy as sa

from bench.core.results import RunResult, read_jsonl, write_jsonl
from bench.errors import BenchError, DatabaseUnavailable, ResultFileError, StoreError
from bench.paths import loaded_dir, spool_dir
from bench.store.writer import LoadReport, load

log = logging.getLogger(__name__)

#: A claim from another host is presumed dead after this long (shared BENCH_HOME).
FOREIGN_CLAIM_TTL_S = 3600.0
_CLAIM_SEP = ".claim-"


@dataclass(frozen=True)
class SpoolOutcome:
    """What happened to one run's result; ``message`` is one line for stderr."""

    loaded: bool
    message: str
    path: Path


@dataclass
class DrainReport:
    """One pass over the backlog."""

    loaded: list[tuple[str, LoadReport]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # kept in the spool
    rejected: list[tuple[str, str]] = field(default_factory=list)  # moved to spool/rejected

    def report_for(self, name: str) -> LoadReport | None:
        return next((r for n, r in self.loaded if n == name), None)


def shown(path: Path) -> str:
    """``path`` relative to the working directory when under it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def claims_dir() -> Path:
    return spool_dir() / ".claims"


def rejected_dir() -> Path:
    return spool_dir() / "rejected"


def spool(result: RunResult) -> Path:
    """Write ``result`` into the spool; names sort oldest first."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = spool_dir() / f"{stamp}_{result.run_uid}.jsonl"
    try:
        return write_jsonl(result, path)
    except ResultFileError as exc:  # disk full: one line, no half-written file left
        raise StoreError(f"spool: {exc}") from None


def pending() -> list[Path]:
    """Spooled files waiting to be loaded, oldest first."""
    directory = spool_dir()
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.jsonl") if p.is_file())


def _claim(path: Path) -> Path | None:
    """Atomically take ``path`` for this process; None if another one won it."""
    target = claims_dir() / f"{path.name}{_CLAIM_SEP}{socket.gethostname()}-{os.getpid()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def _unclaim(claim: Path) -> None:
    original = claim.name.rsplit(_CLAIM_SEP, 1)[0]
    os.replace(claim, spool_dir() / original)


def release_stale_claims() -> int:
    """Give back claims of processes that died mid-load; how many."""
    directory = claims_dir()
    if not directory.is_dir():
        return 0
    released = 0
    host = socket.gethostname()
    for claim in directory.iterdir():
        owner = claim.name.rsplit(_CLAIM_SEP, 1)[-1]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host == host and pid.isdigit():
            stale = not psutil.pid_exists(int(pid))
        else:
            try:
                stale = time.time() - claim.stat().st_mtime > FOREIGN_CLAIM_TTL_S
            except FileNotFoundError:
                continue
        if stale:
            try:
                _unclaim(claim)
                released += 1
            except FileNotFoundError:
                continue
    return released


def _settle(claim: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.replace(claim, directory / claim.name.rsplit(_CLAIM_SEP, 1)[0])


def drain(engine: sa.Engine) -> DrainReport:
    """Load every spooled file, oldest first.

    Raises :class:`DatabaseUnavailable` (leaving the file being loaded and
    all later ones in the spool) when the DB goes away; any other store
    error keeps that file in the spool and moves on to the next.
    """
    report = DrainReport()
    release_stale_claims()
    for path in pending():
        claim = _claim(path)
        if claim is None:
            continue  # another process has it
        try:
            result = read_jsonl(claim)
        except ResultFileError as exc:
            _settle(claim, rejected_dir())
            report.rejected.append((path.name, str(exc)))
            log.error("rejected spool file %s: %s", path.name, exc)
            continue
        try:
            loaded = load(engine, result)
        except DatabaseUnavailable:
            _unclaim(claim)
            raise
        except StoreError as exc:
            _unclaim(claim)
            report.failed.append((path.name, str(exc)))
            continue
        except BaseException:
            _unclaim(claim)
            raise
        _settle(claim, loaded_dir())
        report.loaded.append((path.name, loaded))
    return report


def spool_and_load(result: RunResult) -> SpoolOutcome:
    """Spool ``result``, then load the whole backlog into the results DB.

    Never raises for a DB problem: the result is safe on disk, the outcome
    says where, and ``bench db load`` (or the next run) finishes the job.
    """
    from bench.store.db import display_url, get_engine
    from bench.store.migrate import upgrade

    path = spool(result)
    later = f"result kept in {shown(path)}, load later with `bench db load`"
    try:
        engine = get_engine()
        upgrade(engine)
        report = drain(engine)
    except BenchError as exc:  # unreachable, rejected, or a bad BENCH_DB_URL
        return SpoolOutcome(False, f"{exc}; {later}", path)
    own = report.report_for(path.name)
    others = [r for n, r in report.loaded if n != path.name and r.changed]
    also = f"; also loaded {len(others)} older spooled result(s)" if others else ""
    if own is not None:
        message = (
            f"result stored in the results DB as run {own.run_id} ({display_url(engine.url)}){also}"
        )
        return SpoolOutcome(True, message, loaded_dir() / path.name)
    # A file moves spool/ -> claims/ -> loaded/ (or back to spool/): looked at
    # in that order, a claim that settles between the two looks is still seen.
    claimed = any(claims_dir().glob(f"{path.name}{_CLAIM_SEP}*"))
    if (loaded_dir() / path.name).exists():  # a concurrent drain loaded it
        return SpoolOutcome(
            True,
            f"result stored in the results DB ({display_url(engine.url)}){also}",
            loaded_dir() / path.name,
        )
    if claimed:
        return SpoolOutcome(False, "result is being loaded by a concurrent `bench db load`", path)
    error = next((e for n, e in report.failed if n == path.name), "not loaded")
    return SpoolOutcome(False, f"{error}; {later}", path)


__all__ = ["DrainReport", "SpoolOutcome", "drain", "pending", "spool", "spool_and_load"]
