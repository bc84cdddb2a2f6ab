"""``bench regressions``: the nightly gate's verdicts; ``--detect`` runs it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.report.tables import FORMATS, print_rows

#: bench.stats.types.STORED_VERDICTS, plus "all" (kept here: --help must not import the gate).
VERDICTS = ("regression", "output_changed", "suspicious", "improvement", "host_anomaly",
            "campaign_shift", "all")  # fmt: skip
#: bench.stats.types.DEFAULT_VERDICTS: a run got worse (slower, or other tokens).
DEFAULT_VERDICTS = ("regression", "output_changed")
#: Columns of the table; json and csv add the full environment difference and detail.
COLUMNS = ("started_at", "label", "metric", "verdict", "baseline", "current", "change_pct",
           "p_value", "changed", "telemetry", "dag_run_id")  # fmt: skip


def register(sub: Any) -> None:
    p = sub.add_parser(
        "regressions",
        help="regressions found by the nightly gate (newest first)",
        description="List the gate's verdicts from the results DB, each with what changed in the "
        "environment against its baseline and whether the run throttled, or (--detect) judge a "
        "campaign's runs against their history and store the verdicts, as the DAG's "
        "detect_regressions task does.",
    )
    p.add_argument(
        "--campaign",
        metavar="DAG_RUN_ID",
        help="one campaign (default: all; required with --detect)",
    )
    p.add_argument("--model", help="one model (benchmark_config.model)")
    p.add_argument(
        "--verdict",
        choices=VERDICTS,
        action="append",
        help="which verdicts, repeatable (default: regression and output_changed; all: every one)",
    )
    p.add_argument("--last", type=int, default=50, metavar="N", help="rows at most (default 50)")
    p.add_argument(
        "--detect", action="store_true", help="judge the campaign's runs now and store the verdicts"
    )
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    p.set_defaults(func=cmd_regressions)


def verdict_row(r: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One printed row: the short "changed" column in a table, the whole difference
    (and the verdict's detail and reason) added in JSON and CSV (as JSON text)."""
    import json

    from bench.environment import format_changes
    from bench.telemetry import throttle_mark

    detail = r.get("detail") or {}
    label = r["label"]
    if r["verdict"] in ("host_anomaly", "campaign_shift") and detail.get("scope"):
        label = f"{detail['scope']} ({len(detail.get('runs', []))} runs)"
    row = {k: r.get(k) for k in COLUMNS}
    row["label"] = label
    row["changed"] = format_changes(r.get("changed") or {})
    row["telemetry"] = throttle_mark(r.get("telemetry"))
    if fmt != "table":
        encode = (lambda v: json.dumps(v, default=str)) if fmt == "csv" else (lambda v: v)
        row["changed_detail"] = encode(r.get("changed") or {})
        row["detail"] = encode(detail)
        row["reason"] = r.get("reason")
    return row


def cmd_regressions(args: argparse.Namespace) -> int:
    from bench.errors import ConfigError
    from bench.store.db import get_engine
    from bench.store.queries import run_query

    engine = get_engine()
    if args.detect:
        if not args.campaign:
            raise ConfigError("--detect needs --campaign DAG_RUN_ID")
        from bench.regressions import detect_campaign

        detection = detect_campaign(engine, args.campaign)
        print(f"judged {len(detection.judged)} ok run(s) of {args.campaign}", file=sys.stderr)
    verdicts = args.verdict or DEFAULT_VERDICTS
    rows = run_query(
        engine,
        "latest_regressions",
        verdict="" if "all" in verdicts else ",".join(verdicts),
        campaign=args.campaign or "",
        model=args.model or "",
        last=args.last,
    )
    if not rows:
        what = "verdicts" if "all" in verdicts else " or ".join(v + "s" for v in verdicts)
        print(f"bench: no {what} found", file=sys.stderr)
    print_rows([verdict_row(r, args.format) for r in rows], args.format)
    return 0
