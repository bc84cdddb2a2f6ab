"""``bench changepoints``: where each configuration's series changed level, for good."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.report.tables import FORMATS, print_rows


def register(sub: Any) -> None:
    p = sub.add_parser(
        "changepoints",
        help="retrospective change points of a model's nightly series",
        description="Find level changes in each configuration's nightly series (PELT on the log "
        "values, penalty scaled to the series' own noise) and show the first night of each new level.",
    )
    p.add_argument("--model", required=True, help="benchmark_config.model")
    p.add_argument("--metric", default="ttft_p50_ms", help="run metric (default ttft_p50_ms)")
    p.add_argument(
        "--last",
        type=int,
        default=90,
        metavar="N",
        help="newest nights per configuration (default 90)",
    )
    p.add_argument(
        "--min-effect",
        type=float,
        default=0.02,
        help="ignore level changes below this fraction (default 0.02)",
    )
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    p.set_defaults(func=cmd_changepoints)


def cmd_changepoints(args: argparse.Namespace) -> int:
    from bench.stats import find_changepoints
    from bench.store.db import get_engine
    from bench.store.queries import bind_params, run_query

    bind_params(
        "metric_series", model=args.model, metric=args.metric, last=args.last
    )  # validate first
    series: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}  # one per history
    for row in run_query(
        get_engine(), "metric_series", model=args.model, metric=args.metric, last=args.last
    ):
        key = (row["label"], row["fingerprint"], row["device_model"], row["cards"])
        series.setdefault(key, []).append(row)
    from bench.regressions import better_direction

    better = better_direction(args.metric)
    out = []
    for (label, _, device_model, cards), rows in series.items():
        for cp in find_changepoints([r["value"] for r in rows], better, min_effect=args.min_effect):
            night = rows[cp.index]
            out.append(
                {
                    "label": label,
                    "device_model": device_model,
                    "cards": cards,
                    "first_night": night["started_at"],
                    "run_id": night["run_id"],
                    "dag_run_id": night["dag_run_id"],
                    "before": cp.before,
                    "after": cp.after,
                    "change_pct": cp.change_pct,
                    "direction": cp.direction,
                    "nights": len(rows),
                }
            )
    if not series:
        print(f"bench: no successful runs of model {args.model!r}", file=sys.stderr)
    elif not out:
        print(
            f"bench: no change points in {len(series)} configuration(s) of {args.model}",
            file=sys.stderr,
        )
    print_rows(out, args.format)
    return 0
