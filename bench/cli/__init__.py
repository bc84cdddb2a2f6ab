"""The ``bench`` command line: a thin edge over the library.

Each subcommand lives in its own module exposing ``register(subparsers)``.
Library errors (:class:`~bench.errors.BenchError`) become one line on stderr
and exit code 2 (bad input, nothing run or written) or 1 (the benchmark ran
and failed; its failure is recorded). The codes are part of the contract
with the Airflow task that runs ``bench run`` as a child process, so they
live with it: :class:`bench.orchestration.child.Exit`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from bench.errors import BenchError, BenchmarkFailed
from bench.orchestration.child import Exit

#: Subcommand modules, in the order `bench --help` lists them.
COMMANDS: tuple[str, ...] = (
    "bench.cli.run",
    "bench.cli.db",
    "bench.cli.trend",
    "bench.cli.regressions",
    "bench.cli.compare",
    "bench.cli.changepoints",
    "bench.cli.report",
    "bench.cli.prompts",
    "bench.cli.tiny",
    "bench.cli.fp8",
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bench",
        description="Streaming LLM benchmarks: time every token, keep every night in Postgres.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (:class:`Exit`).

    Called as the program itself (``argv`` None: the ``bench`` script,
    ``python -m bench``), it ends the process once everything is written,
    without the interpreter's module-by-module teardown: with torch and
    transformers loaded that teardown alone took 1-3 s per benchmark child
    (docs/performance.md, "Orchestration"), as long as the measured work of
    a small configuration.
    """
    code = _run(argv)
    if argv is None:
        _end_process(code)
    return code


def _end_process(code: int) -> NoReturn:
    """Exit now: exit handlers run (logging flushes), streams are flushed,
    files are closed by their writers already; module teardown is skipped."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that left, a closed stream
            stream.flush()
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or Exit.OK)
    except BenchmarkFailed as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return Exit.FAILED
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # `bench trend ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
