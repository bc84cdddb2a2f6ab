"""``bench compare A B``: is B faster than A, configuration by configuration?

A and B are two campaigns (dag_run_ids), or two environment selections over
a window (``--a image=stack-1.21 --b image=stack-1.22 --since 30d``), or two
selections within one campaign (``bench compare C --a target=gaudi2 --b
target=gaudi3``: the targets of a fleet campaign side by side). For
every configuration both sides ran: the metric for A and B, the change, its
95% bootstrap interval, the Mann-Whitney p value, a verdict, and what
differs between the two sides' environments. The database feeds
``bench.stats.compare`` through the named query ``compare_runs``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.report.tables import FORMATS, print_rows

_SINCE = re.compile(r"^(\d+)([dh])$")
_SELECTION = re.compile(r"^[A-Za-z_][\w.-]*=.+$")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="A against B for every configuration both ran (campaigns or environments)",
        description="Compare two campaigns (dag_run_ids) or two environment selections "
        "(--a KEY=VALUE --b KEY=VALUE over --since) configuration by configuration: the metric "
        "for A and B, the change with its 95%% bootstrap interval (request-level; run then "
        "request when a side has several runs), the Mann-Whitney p value, a verdict and the "
        "environment difference.",
    )
    p.add_argument("a", nargs="?", metavar="A", help="campaign A (dag_run_id)")
    p.add_argument("b", nargs="?", metavar="B", help="campaign B (dag_run_id)")
    sel = p.add_argument_group("environment selections (instead of A and B)")
    sel.add_argument(
        "--a",
        dest="select_a",
        metavar="KEY=VALUE",
        help="side A: runs whose environment has KEY=VALUE, e.g. image=stack-1.21, "
        "driver_version=1.19.1, packages.torch=2.6.0",
    )
    sel.add_argument(
        "--b",
        dest="select_b",
        metavar="KEY=VALUE",
        help="side B, likewise; with one campaign A and both selections, two parts of that "
        "campaign: --a target=gaudi2 --b target=gaudi3",
    )
    sel.add_argument(
        "--since",
        default="30d",
        help="selections: runs of the last Nd days / Nh hours, or since an ISO date (default 30d)",
    )
    what = p.add_argument_group("what to compare")
    what.add_argument("--metric", default="ttft_p50_ms", help="a run metric (default ttft_p50_ms)")
    what.add_argument("--model", help="one model only")
    what.add_argument(
        "--min-effect",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="smaller changes are 'no change' even when significant (default 0)",
    )
    what.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    what.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    out.add_argument("--out", type=Path, metavar="FILE.html", help="also write an HTML page")
    p.set_defaults(func=cmd_compare)


def parse_since(text: str, now: datetime | None = None) -> str:
    """``30d`` / ``12h`` / an ISO date -> an ISO timestamp."""
    from bench.errors import ConfigError

    now = now or datetime.now(timezone.utc)
    match = _SINCE.match(text.strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        return (now - (timedelta(days=n) if unit == "d" else timedelta(hours=n))).isoformat()
    try:
        return datetime.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ConfigError(f"--since: expected Nd, Nh or an ISO date, got {text!r}") from None


def _sides(args: argparse.Namespace) -> dict[str, str]:
    from bench.errors import ConfigError

    for flag in ("select_a", "select_b"):
        value = getattr(args, flag)
        if value is not None and not _SELECTION.match(value):
            raise ConfigError(f"--{flag[-1]}: expected KEY=VALUE, got {value!r}")
    a = {"campaign_a": args.a or "", "select_a": args.select_a or ""}
    b = {"campaign_b": args.b or "", "select_b": args.select_b or ""}
    if args.a and not args.b and args.select_a and args.select_b:
        b["campaign_b"] = args.a  # one campaign, two selections: its targets (or hosts) apart
    for name, side in (("A", a), ("B", b)):
        if not any(side.values()):
            raise ConfigError(
                f"side {name}: give a campaign (positional {name}), --{name.lower()} KEY=VALUE, "
                "or both"
            )
    return {**a, **b}


def compare_rows(engine: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per configuration both sides ran (the command's output)."""
    import numpy as np

    from bench.environment import environment_diff, format_changes
    from bench.errors import ConfigError
    from bench.regressions import better_direction, request_values
    from bench.stats.compare import compare, statistic_of
    from bench.store.queries import run_query

    params = _sides(args)
    runs = run_query(
        engine,
        "compare_runs",
        **params,
        since=parse_since(args.since),
        model=args.model or "",
        metric=args.metric,
    )
    by_config: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"A": [], "B": []}
    )
    for r in runs:
        by_config[(r["label"], r["fingerprint"])][r["side"]].append(r)
    both = [(key, sides) for key, sides in by_config.items() if sides["A"] and sides["B"]]
    if not runs:
        raise ConfigError("no successful runs on either side (check the campaigns or selections)")
    statistic = statistic_of(args.metric)
    better = better_direction(args.metric)
    speed = args.metric.endswith("_ms") or args.metric.endswith("_per_s")
    envs: dict[int, dict[str, Any] | None] = {}

    def env(environment_id: int | None) -> dict[str, Any] | None:
        if environment_id is None:
            return None
        if environment_id not in envs:
            found = run_query(engine, "environment", environment_id=environment_id)
            envs[environment_id] = found[0] if found else None
        return envs[environment_id]

    def values(side: list[dict[str, Any]]) -> list[Any]:
        if statistic.distribution is None:
            return [np.array([r["value"] for r in side if r["value"] is not None])]
        return [request_values(engine, int(r["run_id"]))[statistic.distribution] for r in side]

    out = []
    for (label, fingerprint), sides in sorted(both):
        result = compare(
            values(sides["A"]),
            values(sides["B"]),
            statistic,
            better,
            seed=args.seed,
            resamples=args.resamples,
            min_effect=args.min_effect,
            speed=speed,
        )
        if result is None:
            continue
        newest_b = env(sides["B"][-1]["environment_id"])
        base = [e for e in (env(r["environment_id"]) for r in sides["A"]) if e is not None]
        changed = environment_diff(newest_b, base) if newest_b is not None else {}
        row = {
            "label": label,
            "metric": args.metric,
            "a": result.value_a,
            "b": result.value_b,
            "change_pct": result.change_pct,
            "ci_low_pct": result.ci_low_pct,
            "ci_high_pct": result.ci_high_pct,
            "p_value": result.p_value,
            "verdict": result.verdict,
            "runs_a": result.runs_a,
            "runs_b": result.runs_b,
            "n_a": result.n_a,
            "n_b": result.n_b,
            "changed": format_changes(changed),
            "fingerprint": fingerprint,
        }
        row["changed_detail"] = changed
        out.append(row)
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from bench.store.db import get_engine

    rows = compare_rows(get_engine(), args)
    if not rows:
        print("bench: no configuration ran on both sides", file=sys.stderr)
    shown = []
    for r in rows:
        row = dict(r)
        detail = row.pop("changed_detail")
        if args.format == "json":
            row["changed_detail"] = detail
        elif args.format == "csv":
            row["changed_detail"] = json.dumps(detail, default=str)
        shown.append(row)
    print_rows(shown, args.format)
    if args.out is not None:
        from bench.report.compare import write_compare_page

        sides = (args.a or args.select_a, args.b or args.select_b)
        path = write_compare_page(rows, args.out, a=str(sides[0]), b=str(sides[1]))
        print(f"comparison page: {path}", file=sys.stderr)
    return 0
