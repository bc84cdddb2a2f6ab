"""``bench trend``: run a named trend query (sql/queries/) and print its rows."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.errors import ConfigError
from bench.report.tables import FORMATS, print_rows

DEFAULT_QUERY = "metric_series"
#: CLI flag destination -> query parameter name.
_FLAGS = {
    "model": "model",
    "metric": "metric",
    "last": "last",
    "campaign": "campaign",
    "fingerprint": "fingerprint",
    "device_model": "device_model",
    "slo_ttft_p99_ms": "slo_ttft_p99_ms",
    "since": "since",
    "until": "until",
    "shape": "shape",
}


def _query_names() -> list[str]:
    """For --help; reads file names only, so building the parser never imports SQLAlchemy."""
    from bench.errors import StoreError
    from bench.store.sqlfiles import queries_dir

    try:
        return sorted(p.stem for p in queries_dir().glob("*.sql"))
    except StoreError:
        return [DEFAULT_QUERY]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trend",
        help="trend queries over the results DB (time series, latest vs baseline, best batch size, ...)",
        description="Run a named query from sql/queries/ against the results DB. Each query takes "
        "the flags its header declares; a flag it does not take is an error.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument(
        "--query",
        default=DEFAULT_QUERY,
        metavar="NAME",
        help=f"one of: {', '.join(_query_names())} (default {DEFAULT_QUERY})",
    )
    p.add_argument("--model", help="benchmark_config.model, as given to `bench run --model`")
    p.add_argument(
        "--metric",
        help="run metric (ttft_p50_ms, output_tokens_per_s, ...; default ttft_p50_ms) or, for "
        "request_percentiles, a request metric (ttft_ms, tpot_ms, e2e_ms, itl_ms)",
    )
    p.add_argument(
        "--last",
        type=int,
        metavar="N",
        help="runs (nights) per configuration: shown, or in the rolling median (default 30 for "
        "metric_series, 7 for the comparisons)",
    )
    p.add_argument(
        "--campaign",
        metavar="DAG_RUN_ID",
        help="the campaign (Airflow dag_run_id; cli__<run_uid> for bench run)",
    )
    p.add_argument("--fingerprint", help="one configuration only")
    p.add_argument(
        "--device-model",
        metavar="MODEL",
        help="metric_series: one device model only (HL-325L, the CUDA device name, the CPU "
        "model; the device_model column)",
    )
    p.add_argument(
        "--slo-ttft-p99-ms", type=float, metavar="MS", help="best_batch_size: the TTFT p99 SLO"
    )
    p.add_argument(
        "--since", metavar="TIME", help="request_percentiles: window start (ISO date/time)"
    )
    p.add_argument("--until", metavar="TIME", help="request_percentiles: window end, exclusive")
    p.add_argument(
        "--shape",
        metavar="inN-outM",
        help="one workload shape, as labels end (in128-out128; out128 for a configuration "
        "that used its prompt set as is; outds256 for a dataset's output lengths capped at 256)",
    )
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    p.set_defaults(func=cmd_trend)


def query_params(args: argparse.Namespace) -> dict[str, Any]:
    return {param: getattr(args, dest) for dest, param in _FLAGS.items() if hasattr(args, dest)}


def cmd_trend(args: argparse.Namespace) -> int:
    from bench.store.db import get_engine
    from bench.store.queries import bind_params, run_query

    name = args.query
    params = query_params(args)
    try:
        bind_params(name, **params)  # every input checked before connecting
    except ConfigError as exc:
        raise ConfigError(_as_flags(str(exc))) from None
    rows = run_query(get_engine(), name, **params)
    if not rows:
        print(f"bench: no rows: {_empty_hint(name, params)}", file=sys.stderr)
    print_rows(rows, args.format)
    return 0


def _as_flags(message: str) -> str:
    """Name parameters the way the user typed them (--slo-ttft-p99-ms)."""
    for param in _FLAGS.values():
        message = message.replace(f"parameter {param}", f"--{param.replace('_', '-')}")
    return message


def _empty_hint(name: str, params: dict[str, Any]) -> str:
    if "model" in params:
        return f"no successful run of model {params['model']!r} matches (see `bench db status`)"
    if "campaign" in params:
        return f"no campaign {params['campaign']!r} (or it has no runs)"
    return f"query {name} found nothing"
