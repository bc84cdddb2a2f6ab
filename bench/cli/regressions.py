"""``bench regressions``: the nightly gate's verdicts; ``--detect`` runs it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.report.tables import FORMATS, print_rows

VERDICTS = ("regression", "suspicious", "improvement", "all")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "regressions",
        help="regressions found by the nightly gate (newest first)",
        description="List the gate's verdicts from the results DB, or (--detect) judge a campaign's "
        "runs against their history and store the verdicts, as the DAG's detect_regressions task does.",
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
        default="regression",
        help="which verdicts (default regression)",
    )
    p.add_argument("--last", type=int, default=50, metavar="N", help="rows at most (default 50)")
    p.add_argument(
        "--detect", action="store_true", help="judge the campaign's runs now and store the verdicts"
    )
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    p.set_defaults(func=cmd_regressions)


def cmd_regressions(args: argparse.Namespace) -> int:
    from bench.errors import ConfigError
    from bench.store.db import get_engine
    from bench.store.queries import run_query

    engine = get_engine()
    if args.detect:
        if not args.campaign:
            raise ConfigError("--detect needs --campaign DAG_RUN_ID")
        from bench.regressions import detect_campaign

        judged = detect_campaign(engine, args.campaign)
        print(f"judged {len(judged)} ok run(s) of {args.campaign}", file=sys.stderr)
    rows = run_query(
        engine,
        "latest_regressions",
        verdict="" if args.verdict == "all" else args.verdict,
        campaign=args.campaign or "",
        model=args.model or "",
        last=args.last,
    )
    if not rows:
        print(
            f"bench: no {'verdicts' if args.verdict == 'all' else args.verdict + 's'} found",
            file=sys.stderr,
        )
    print_rows(
        [{k: r[k] for k in ("started_at", "label", "metric", "verdict", "baseline", "current", "change_pct",
                            "p_value", "dag_run_id")} for r in rows],
        args.format,
    )  # fmt: skip
    return 0
