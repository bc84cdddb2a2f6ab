"""``bench db upgrade | status | load [FILE.jsonl ...]``: the results database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.errors import ResultFileError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "db",
        help="results database: upgrade the schema, show status, load result files",
        description="The results DB is BENCH_DB_URL, or an embedded Postgres under $BENCH_HOME/pgdata.",
    )
    actions = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = actions.add_parser(
        "upgrade", help="apply pending sql/migrations (safe to run concurrently)"
    )
    up.set_defaults(func=cmd_upgrade)
    st = actions.add_parser("status", help="server, migrations, row counts and the spool backlog")
    st.set_defaults(func=cmd_status)
    ld = actions.add_parser(
        "load",
        help="load result files; with none, drain the spool ($BENCH_HOME/spool)",
        description="Load result JSONL files into the results DB. Loading is idempotent: a file "
        "already loaded changes nothing, a newer attempt of the same campaign and config replaces "
        "the older one. Without FILE, load every spooled result, oldest first.",
    )
    ld.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE.jsonl",
        help="result files (default: the spool)",
    )
    ld.set_defaults(func=cmd_load)


def _engine() -> Any:
    from bench.store.db import get_engine

    return get_engine()


def cmd_upgrade(args: argparse.Namespace) -> int:
    from bench.store.db import display_url
    from bench.store.migrate import discover, upgrade

    engine = _engine()
    applied = upgrade(engine)
    print(f"results DB: {display_url(engine.url)}")
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print(f"schema up to date ({len(discover())} migrations)")
    return 0


#: Exact counts, except request rows past a million: the planner's estimate
#: (a count(*) over years of nights would make `status` slow).
_COUNTS = """
SELECT (SELECT count(*) FROM campaign) AS campaigns,
       (SELECT count(*) FROM benchmark_config) AS configs,
       (SELECT count(*) FROM run WHERE status = 'ok') AS ok_runs,
       (SELECT count(*) FROM run WHERE status <> 'ok') AS failed_runs,
       (SELECT CASE WHEN reltuples < 1e6 THEN (SELECT count(*) FROM request_result) ELSE reltuples::bigint END
        FROM pg_class WHERE oid = 'request_result'::regclass) AS request_rows
"""


def cmd_status(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from bench.store import spool
    from bench.store.db import display_url, translate_errors
    from bench.store.migrate import status

    engine = _engine()
    states = status(engine)
    print(f"results DB: {display_url(engine.url)}")
    with translate_errors(engine), engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar()
        print(f"server:     PostgreSQL {version}")
        if states and all(s.applied for s in states):
            counts = conn.execute(sa.text(_COUNTS)).mappings().one()
            print(
                f"contents:   {counts['campaigns']} campaigns, {counts['configs']} configs, "
                f"{counts['ok_runs']} ok runs, {counts['failed_runs']} failed runs, "
                f"{counts['request_rows']} request rows"
            )
    print("migrations:")
    for s in states:
        when = f"applied {s.applied_at:%Y-%m-%d %H:%M:%S %Z}" if s.applied_at else "PENDING"
        drift = f"  ({s.drift})" if s.drift else ""
        print(f"  {s.name:<40} {when}{drift}")
    pending = [s for s in states if not s.applied]
    if pending:
        print(f"{len(pending)} pending: run `bench db upgrade`")
    backlog = spool.pending()
    rejected = sorted(spool.rejected_dir().glob("*.jsonl")) if spool.rejected_dir().is_dir() else []
    print(
        f"spool:      {len(backlog)} result(s) waiting in {spool.shown(spool.spool_dir())}", end=""
    )
    print(f", {len(rejected)} rejected" if rejected else "")
    return 0


def _describe(name: str, report: Any) -> str:
    from bench.store import writer

    if report.action == writer.INSERTED:
        return f"loaded {name}: run {report.run_id} ({report.n_requests} requests)"
    if report.action == writer.REPLACED:
        return f"loaded {name}: run {report.run_id} ({report.n_requests} requests), replacing an earlier attempt"
    if report.action == writer.UNCHANGED:
        return f"{name}: already loaded as run {report.run_id}, nothing changed"
    return f"{name}: an attempt that started later (run {report.run_id}) holds its campaign and config; not loaded"


def cmd_load(args: argparse.Namespace) -> int:
    from bench.core.results import read_jsonl
    from bench.store import spool, writer
    from bench.store.migrate import upgrade

    # Parse every file before touching the DB: a bad file changes nothing.
    results = []
    for path in args.files:
        if not path.is_file():
            raise ResultFileError(f"no such result file: {path}")
        results.append((path, read_jsonl(path)))
    engine = _engine()
    upgrade(engine)
    if results:
        reports = [(str(path), writer.load(engine, result)) for path, result in results]
        failures: list[tuple[str, str]] = []
    else:
        drained = spool.drain(engine)
        reports = drained.loaded
        failures = drained.failed + [
            (n, f"rejected (moved to spool/rejected): {e}") for n, e in drained.rejected
        ]
        if not reports and not failures:
            print("spool is empty: nothing to load")
            return 0
    for name, report in reports:
        print(_describe(name, report))
    for name, error in failures:
        print(f"bench: {name} NOT loaded: {error}", file=sys.stderr)
    changed = sum(r.changed for _, r in reports)
    print(f"{changed} loaded, {len(reports) - changed} unchanged, {len(failures)} failed")
    return 1 if failures else 0
