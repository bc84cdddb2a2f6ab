"""``bench fp8-measure``: INC's measure pass for an fp8 config, in its own process.

``bench run --precision fp8`` quantizes with statistics measured by this
command (it starts it itself when none are cached; the DAG runs it as a step
before the benchmark, on as many cards as the config). Run it by hand to
measure ahead of a night, or after a software upgrade.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli.run import config_from_args


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fp8-measure",
        help="measure fp8 scales (Intel Neural Compressor) for a Gaudi config",
        description="INC's measure pass for the fp8 (hpu, habana) version of the config: a "
        "bf16 model with observers runs the calibration prompts and its statistics are cached "
        "under $BENCH_HOME/quant/ (reused while the model and software stack stay the same). "
        "Nothing is benchmarked.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", metavar="JSON|FILE", help="the config as `bench run` takes it")
    p.add_argument("--model", help="hub id or local model directory")
    p.add_argument("--model-path", help="load weights from here; --model stays the name")
    p.add_argument("--max-new-tokens", type=int, help="calibration output tokens (default 128)")
    p.add_argument("--prompts", help="calibration prompt set (default: default)")
    p.add_argument("--world-size", type=int, help="cards (launch with DeepSpeed when > 1)")
    p.add_argument("--trust-remote-code", action="store_true", help="passed to transformers")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="habana option")
    p.set_defaults(func=cmd_fp8_measure)


def cmd_fp8_measure(args: argparse.Namespace) -> int:
    # always the fp8, Gaudi version of the config given (the DAG passes exactly that)
    config = config_from_args(args).replace(precision="fp8", device="hpu", backend="habana")
    from bench.backends.habana.backend import HabanaBackend
    from bench.backends.habana.launch import is_primary_rank
    from bench.runner import prepare

    plan = prepare(config)
    backend = HabanaBackend(plan.config)
    try:
        measurement = backend.measure_fp8()
    finally:
        backend.close()
    if is_primary_rank():
        print(f"fp8 measurement of {config.label}: {measurement.final}")
    return 0
