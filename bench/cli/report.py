"""``bench report``: one self-contained HTML report of a campaign and its history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report (trends, latest vs baseline, CDFs, Pareto)",
        description="Write one HTML file (plotly inlined: opens offline) with each configuration's "
        "trend and its regression and change-point markers, the campaign's table against its "
        "baseline, TTFT and ITL CDFs of the campaign vs the nights before, and throughput vs "
        "TTFT p99 across batch sizes.",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="FILE.html", help="where to write the report"
    )
    p.add_argument("--campaign", metavar="DAG_RUN_ID", help="the campaign (default: the newest)")
    p.add_argument("--model", help="only this model (and, without --campaign, its newest campaign)")
    p.add_argument(
        "--last", type=int, default=30, metavar="N", help="nights per trend line (default 30)"
    )
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.errors import ConfigError
    from bench.report import render_report
    from bench.report.campaign import build_report_data, resolve_campaign
    from bench.store.queries import reader_engine

    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a directory")
    engine = reader_engine()  # BENCH_READER_DB_URL when set; READ ONLY either way
    campaign = resolve_campaign(engine, args.campaign, args.model)
    data = build_report_data(engine, campaign, model=args.model, last=args.last)
    render_report(data, args.out)
    print(
        f"report of {campaign}: {len(data.series)} trend(s), {len(data.table)} table row(s), "
        f"{sum(r.verdict == 'regression' for r in data.table)} regression(s) -> {args.out}"
    )
    return 0
