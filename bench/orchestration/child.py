"""The process boundary of a benchmark task: what the parent (the Airflow
task, :mod:`bench.orchestration.tasks`) and its child (``bench run``)
promise each other. Both sides read this module; neither guesses.

* **argv**: :func:`child_argv` renders a configuration, its campaign and
  the task's try number (``--attempt``) as ``bench run`` arguments (through the DeepSpeed launcher for multi-card
  configurations); the child parses them with the ordinary CLI.
* **exit codes**: :class:`Exit`. 0 measured and ok; 1 failed: measured
  and stored by the child (status ``failed``/``oom``), or a crash whose
  error and phase the outcome file names; 2 bad input (nothing measured).
  Death by a signal leaves only the phase the child had reached.
* **the outcome file** (``--outcome FILE``): a small JSON object the child
  rewrites at every phase (temporary name + rename, so the parent never
  reads half of it): the phase it is in and when each began, then the plan
  (label, fingerprint, prompt set) as soon as it exists, then the status,
  error, result path and whether the result reached the spool. The parent
  reads this instead of parsing the child's output.

The child plans, not the parent: token-exact prompts need the model's
tokenizer, which may exist only on the worker that benchmarks; the ``plan``
task (possibly on a light worker) validates and expands the matrix only.
A child that dies before its plan exists (killed or hung while starting,
or unable to build its prompts) left no fingerprint: the parent records that failure
under :func:`unplanned_fingerprint`, a key derived from the configuration
alone that no planned run ever has, so the failure is visible in its
campaign and never silently missing, and never pollutes a real history.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.core.hashing import canonical_json, sha256_hex

if TYPE_CHECKING:
    from bench.core.config import RunConfig
    from bench.core.results import CampaignRef, RunResult
    from bench.runner import Plan

Log = Callable[[str], None]
#: ``launch_command``'s shape: (config, ``bench`` args, command=...) -> argv.
Launcher = Callable[..., list[str]]

#: Seconds the child gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 10.0
#: Phases of a run, in order (``done``: finished, until the process exits);
#: the outcome file names the last one begun.
PHASES = ("start", "plan", "load", "warmup", "measure", "store", "done")
#: Run metrics the task returns (its XCom) and logs.
KEY_METRICS = (
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "itl_p99_ms",
    "e2e_p99_ms",
    "output_tokens_per_s",
)


class Exit(IntEnum):
    """Exit codes of ``bench`` (every subcommand) and of a benchmark child."""

    OK = 0
    #: The benchmark ran and failed; its result (status, error) is stored.
    FAILED = 1
    #: Bad input or setup: one line on stderr, nothing measured or stored.
    BAD_INPUT = 2
    INTERRUPTED = 130


# -- argv -----------------------------------------------------------------------------------


def child_argv(
    config: RunConfig,
    campaign: CampaignRef,
    *,
    output: Path,
    outcome: Path,
    confirm: bool = False,
    attempt: int = 1,
    launch: Launcher | None = None,
) -> list[str]:
    """argv of the child that benchmarks ``config`` inside ``campaign``
    (``confirm``: a same-night re-run of its run; ``attempt``: which try of
    its task this is, stored with the run; ``launch`` defaults to the
    launcher the config needs)."""
    from bench.backends.habana.launch import launch_command

    args = ["--config", json.dumps(config.to_dict()), "--campaign-run-id", campaign.dag_run_id]
    if campaign.dag_id:
        args += ["--dag-id", campaign.dag_id]
    if confirm:
        args.append("--confirm")
    args += ["--trigger", campaign.trigger, "--attempt", str(attempt)]
    args += ["--output", str(output), "--outcome", str(outcome)]
    return (launch or launch_command)(config, args)


def unplanned_fingerprint(config: RunConfig) -> str:
    """History key of a run that died before its plan existed.

    A real fingerprint hashes the built prompt set, which only the child
    knows; this one hashes the configuration under a marker, so it is the
    same every night for the same configuration and never equals a real one.
    """
    return sha256_hex(canonical_json({"unplanned": config.to_dict()}))


# -- the outcome file -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildOutcome:
    """What the child reported: the outcome file's contents."""

    phase: str
    #: Wall-clock (epoch seconds) start of each phase begun, in order.
    phase_started: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    #: The plan: the history key, its prompt set, the config as planned (device resolved).
    fingerprint: str | None = None
    prompt_set: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    #: ``ok`` | ``failed`` | ``oom`` once the child finished or gave up.
    status: str | None = None
    error: str | None = None
    #: The child's exit code for this outcome (:class:`Exit`).
    exit_code: int | None = None
    result_path: str | None = None
    #: The result is in the spool: it reaches the results DB (now or later).
    recorded: bool = False
    metrics: dict[str, Any] | None = None

    @property
    def planned(self) -> bool:
        return self.fingerprint is not None

    def durations(self, *, until: float | None = None) -> dict[str, float]:
        """Seconds spent in each phase; the last one (``done``: finished to
        exit) runs to ``until`` when given."""
        starts = list(self.phase_started.items())
        out = {name: ended - begun for (name, begun), (_, ended) in itertools.pairwise(starts)}
        if starts and until is not None:
            out[starts[-1][0]] = until - starts[-1][1]
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChildOutcome:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def read_outcome(path: Path) -> ChildOutcome | None:
    """The child's last report; None when it never wrote one (or wrote garbage)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ChildOutcome.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


class OutcomeWriter:
    """The child's side: rewrites the outcome file at every step.

    Also the runner's observer (:class:`bench.runner.RunObserver`): the
    runner calls :meth:`phase` and :meth:`planned`.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self.state = ChildOutcome(phase="start", phase_started={"start": clock()})
        try:
            self._write()
        except OSError as exc:
            from bench.errors import ConfigError

            raise ConfigError(f"--outcome {path}: cannot write it ({exc.strerror})") from None

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.state.to_json()), encoding="utf-8")
            os.replace(tmp, self.path)  # atomic: the parent reads the old or the new file
        except OSError:  # a full disk: keep the last complete file, no half-written one
            tmp.unlink(missing_ok=True)
            raise

    def _update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        self._write()

    def configured(self, label: str) -> None:
        self._update(label=label)

    def phase(self, name: str) -> None:
        self._update(phase=name, phase_started={**self.state.phase_started, name: self._clock()})

    def planned(self, plan: Plan) -> None:
        self._update(
            label=plan.config.label,
            fingerprint=plan.fingerprint,
            prompt_set=plan.prompt_set_json(),
            config=plan.config.to_dict(),
        )

    def finished(self, result: RunResult, *, result_path: Path | None, recorded: bool) -> None:
        metrics = result.metrics.to_json() if result.metrics is not None else None
        self._update(
            phase="done",
            phase_started={**self.state.phase_started, "done": self._clock()},
            status=result.status,
            error=result.error,
            exit_code=int(Exit.OK if result.ok else Exit.FAILED),
            result_path=str(result_path) if result_path is not None else None,
            recorded=recorded,
            metrics=metrics,
        )

    def gave_up(self, status: str, error: str, exit_code: Exit) -> None:
        """The child stops without a stored result (bad input, a crash)."""
        if self.state.status is None:
            self._update(status=status, error=error, exit_code=int(exit_code))


class Reporter(Protocol):
    """What ``bench run`` tells its watcher (:class:`OutcomeWriter`, or nobody)."""

    def configured(self, label: str) -> None: ...

    def phase(self, name: str) -> None: ...

    def planned(self, plan: Plan) -> None: ...

    def finished(self, result: RunResult, *, result_path: Path | None, recorded: bool) -> None: ...


class _Silent:
    """The reporter of a run nobody watches (``bench run`` without ``--outcome``)."""

    def configured(self, label: str) -> None:
        pass

    def phase(self, name: str) -> None:
        pass

    def planned(self, plan: Plan) -> None:
        pass

    def finished(self, result: RunResult, *, result_path: Path | None, recorded: bool) -> None:
        pass


@contextlib.contextmanager
def reporting(path: Path | None) -> Iterator[Reporter]:
    """The child's reporter for ``bench run``; an error leaving the block is
    written to the outcome file (then re-raised for the CLI to print)."""
    if path is None:
        yield _Silent()
        return
    writer = OutcomeWriter(path)
    from bench.errors import BenchError, BenchmarkFailed

    try:
        yield writer
    except BenchmarkFailed:
        raise  # the result, failed, is already reported and stored
    except BenchError as exc:
        writer.gave_up("failed", str(exc), Exit.BAD_INPUT)
        raise
    except KeyboardInterrupt:
        writer.gave_up("failed", "interrupted", Exit.INTERRUPTED)
        raise
    except Exception as exc:  # a crash: the CLI prints the traceback, the parent the line
        from bench.runner import classify_failure, one_line

        writer.gave_up(classify_failure(exc), one_line(exc), Exit.FAILED)
        raise


# -- the parent's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """How a child ended, from its exit code and outcome file."""

    status: str
    error: str | None
    #: Worth another attempt: a transient failure, not bad input or OOM.
    retryable: bool
    #: The child stored its result itself; the parent must not add one.
    recorded: bool


def judge(
    rc: int | None, outcome: ChildOutcome | None, *, timeout_s: float, last_output: str
) -> Verdict:
    """The status of a finished (``rc``) or killed-on-timeout (``rc`` None) child."""
    where = _where(outcome)
    if rc is None:
        return Verdict(
            "timeout",
            f"no result after {timeout_s:.0f} s{where}; process group killed",
            True,
            False,
        )
    if rc < 0:
        name = signal.Signals(-rc).name
        hint = " (the kernel OOM killer?)" if -rc == signal.SIGKILL else ""
        error = f"benchmark process killed by {name}{hint}{where}; last output: {last_output}"
        return Verdict("failed", error, True, False)
    if rc == Exit.BAD_INPUT:  # deterministic: another attempt would fail the same way
        error = outcome.error if outcome and outcome.error else f"bad input: {last_output}"
        return Verdict("failed", error, False, False)
    if rc in (Exit.OK, Exit.FAILED) and outcome is not None and outcome.status is not None:
        # a failed measurement or a crash may be transient; running out of memory is not
        return Verdict(outcome.status, outcome.error, outcome.status == "failed", outcome.recorded)
    return Verdict("failed", f"exit code {rc}{where}: {last_output}", True, False)


#: How a phase reads in an error message ("killed ... while loading the model").
_DURING = {
    "start": " during start-up",
    "plan": " while planning",
    "load": " while loading the model",
    "warmup": " during warmup",
    "measure": " while measuring",
    "store": " while storing the result",
    "done": " after finishing",
}


def _where(outcome: ChildOutcome | None) -> str:
    return " before it started" if outcome is None else _DURING.get(outcome.phase, "")


class _Tail:
    """Forwards a child's output line by line and keeps the last lines."""

    def __init__(self, stream: Any, log: Log, keep: int = 40) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._thread = threading.Thread(target=self._pump, args=(stream, log), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any, log: Log) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            self.lines.append(line)
            log(line)

    def join(self) -> None:
        self._thread.join(timeout=5)

    def last(self) -> str:
        return next((line for line in reversed(self.lines) if line.strip()), "no output")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class ChildRun:
    """A child that has ended, as the parent saw it."""

    rc: int | None  # None: killed on timeout
    outcome: ChildOutcome | None
    last_output: str
    spawned_at: float
    ended_at: float

    def verdict(self, timeout_s: float) -> Verdict:
        return judge(self.rc, self.outcome, timeout_s=timeout_s, last_output=self.last_output)

    def timings(self) -> dict[str, float]:
        """Seconds per phase, ``start`` counted from the spawn (interpreter start-up)."""
        if self.outcome is None:
            return {"start": self.ended_at - self.spawned_at}
        spans = self.outcome.durations(until=self.ended_at)
        first = next(iter(self.outcome.phase_started.values()), self.ended_at)
        spans["start"] = spans.get("start", 0.0) + first - self.spawned_at
        return spans


def run_child(
    argv: list[str], *, outcome: Path | None, env: Mapping[str, str], timeout_s: float, log: Log
) -> ChildRun:
    """Run the child in its own session (a crash, OOM or hang takes down only
    it and frees the device) and wait for it, killing it at ``timeout_s``.
    ``outcome``: the child's outcome file (None for a child that writes none)."""
    if outcome is not None:
        outcome.unlink(missing_ok=True)  # a retry must not read the previous attempt's file
    spawned = time.time()
    proc = subprocess.Popen(
        argv,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    tail = _Tail(proc.stdout, log)
    try:
        rc: int | None = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        rc = None
    finally:  # an Airflow timeout or kill of this task must not orphan the child
        if proc.poll() is None:
            _kill_group(proc)
        tail.join()
    report = read_outcome(outcome) if outcome is not None else None
    return ChildRun(rc, report, tail.last(), spawned, time.time())
