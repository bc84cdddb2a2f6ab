"""The parent/child contract of a benchmark task, side by side: what the
child writes is what the parent reads (no model, no database)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.cli import build_parser
from bench.cli.run import config_from_args
from bench.core.config import RunConfig
from bench.core.prompts import load_prompt_set
from bench.core.results import CampaignRef, RunResult
from bench.errors import BenchmarkFailed, ConfigError, ModelLoadError
from bench.orchestration.child import (
    ChildOutcome,
    ChildRun,
    Exit,
    OutcomeWriter,
    judge,
    read_outcome,
    reporting,
    run_child,
    unplanned_fingerprint,
)
from bench.runner import Plan

CONFIG = RunConfig(model="m", model_path="/models/m", device="cpu", precision="fp32", limit=4)
CAMPAIGN = CampaignRef(dag_run_id="manual__x", dag_id="llm_bench_smoke", trigger="manual")


def test_the_argv_the_parent_builds_is_the_config_the_child_parses(tmp_path: Path) -> None:
    from bench.orchestration.child import child_argv

    config = CONFIG.replace(options={"chat_template": True}, slo_ttft_ms=500.0)
    argv = child_argv(
        config, CAMPAIGN, output=tmp_path / "o.jsonl", outcome=tmp_path / "o.json", attempt=3
    )
    assert argv[:4] == [sys.executable, "-m", "bench", "run"]
    args = build_parser().parse_args(argv[3:])
    assert config_from_args(args) == config
    assert args.attempt == 3  # the task's try number, stored with the run
    assert (args.campaign_run_id, args.dag_id, args.trigger) == (
        "manual__x",
        "llm_bench_smoke",
        "manual",
    )
    assert args.output == tmp_path / "o.jsonl" and args.outcome == tmp_path / "o.json"


def test_the_cli_exits_with_the_contract_codes() -> None:
    from bench.cli import main

    assert main(["run", "--model", "m", "--batch-size", "0", "--no-db"]) == Exit.BAD_INPUT
    with pytest.raises(SystemExit) as usage:
        main(["run", "--precision", "fp64"])
    assert usage.value.code == Exit.BAD_INPUT


def test_the_outcome_file_follows_the_run_and_is_never_half_written(tmp_path: Path) -> None:
    path = tmp_path / "outcome.json"
    ticks = iter(range(100, 200))
    writer = OutcomeWriter(path, clock=lambda: float(next(ticks)))
    assert read_outcome(path) == ChildOutcome(phase="start", phase_started={"start": 100.0})
    writer.configured(CONFIG.label)
    writer.phase("plan")
    plan = Plan(CONFIG, load_prompt_set("default"))
    writer.planned(plan)
    seen = read_outcome(path)
    assert seen is not None and seen.planned and seen.phase == "plan"
    assert seen.fingerprint == plan.fingerprint and seen.prompt_set == plan.prompt_set_json()
    assert RunConfig.from_mapping(seen.config or {}) == CONFIG
    writer.phase("load")
    writer.phase("measure")
    assert [p.name for p in tmp_path.iterdir()] == ["outcome.json"]  # no temporary left over
    done = read_outcome(path)
    assert done is not None and done.status is None
    assert done.durations(until=110.0) == {"start": 1.0, "plan": 1.0, "load": 1.0, "measure": 7.0}


def test_an_outcome_path_that_cannot_be_written_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--outcome .*/no/such/dir/o\.json: cannot write it"):
        OutcomeWriter(tmp_path / "no" / "such" / "dir" / "o.json")


def test_a_missing_or_garbled_outcome_reads_as_none(tmp_path: Path) -> None:
    assert read_outcome(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"phase": ')
    assert read_outcome(tmp_path / "bad.json") is None
    (tmp_path / "list.json").write_text("[1]")
    assert read_outcome(tmp_path / "list.json") is None


@pytest.mark.parametrize(
    ("raised", "status", "code", "error"),
    [
        (ModelLoadError("model directory /x does not exist"), "failed", Exit.BAD_INPUT,
         "model directory /x does not exist"),
        (RuntimeError("CUDA error: out of memory\ntraceback"), "oom", Exit.FAILED,
         "RuntimeError: CUDA error: out of memory"),
        (ValueError("a bug"), "failed", Exit.FAILED, "ValueError: a bug"),
        (KeyboardInterrupt(), "failed", Exit.INTERRUPTED, "interrupted"),
    ],
)  # fmt: skip
def test_an_error_leaving_bench_run_is_written_then_reraised(
    tmp_path: Path, raised: BaseException, status: str, code: Exit, error: str
) -> None:
    path = tmp_path / "outcome.json"
    with pytest.raises(type(raised)), reporting(path) as report:
        report.phase("load")
        raise raised
    seen = read_outcome(path)
    assert seen is not None
    assert (seen.status, seen.exit_code, seen.error, seen.phase) == (status, code, error, "load")
    assert not seen.recorded


def test_a_failed_measurement_keeps_its_stored_result(tmp_path: Path) -> None:
    """BenchmarkFailed comes after the child stored its failed result: the
    outcome already says so and is not overwritten."""
    path = tmp_path / "outcome.json"
    now = datetime.now(timezone.utc)
    result = RunResult(
        run_uid="u", config=CONFIG, fingerprint="f" * 64, status="failed", started_at=now,
        finished_at=now, campaign=CAMPAIGN, error="all 4 requests failed",
    )  # fmt: skip
    with pytest.raises(BenchmarkFailed), reporting(path) as report:
        report.finished(result, result_path=tmp_path / "r.jsonl", recorded=True)
        raise BenchmarkFailed("run failed: all 4 requests failed")
    seen = read_outcome(path)
    assert seen is not None and seen.phase == "done" and seen.recorded
    assert (seen.status, seen.error, seen.exit_code) == ("failed", "all 4 requests failed", 1)
    assert seen.result_path == str(tmp_path / "r.jsonl")


def test_without_outcome_path_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError), reporting(None) as report:
        report.phase("plan")
        raise ConfigError("bad")
    assert list(tmp_path.iterdir()) == []


def _outcome(**kw: object) -> ChildOutcome:
    return ChildOutcome(**{"phase": "done", **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rc", "outcome", "expected"),
    [
        (0, _outcome(status="ok", recorded=True), ("ok", None, False, True)),
        (1, _outcome(status="failed", error="all failed", recorded=True),
         ("failed", "all failed", True, True)),
        (1, _outcome(status="oom", error="OOM", recorded=True), ("oom", "OOM", False, True)),
        (1, _outcome(phase="load", status="oom", error="RuntimeError: out of memory"),
         ("oom", "RuntimeError: out of memory", False, False)),
        (1, _outcome(phase="store", status="failed", error="OSError: disk full"),
         ("failed", "OSError: disk full", True, False)),
        (2, _outcome(phase="load", status="failed", error="model directory /x does not exist"),
         ("failed", "model directory /x does not exist", False, False)),
        (2, None, ("failed", "bad input: LAST", False, False)),
        (None, _outcome(phase="measure"),
         ("timeout", "no result after 30 s while measuring; process group killed", True, False)),
        (None, None,
         ("timeout", "no result after 30 s before it started; process group killed", True, False)),
        (-signal.SIGKILL, _outcome(phase="load"),
         ("failed", "benchmark process killed by SIGKILL (the kernel OOM killer?) while loading"
          " the model; last output: LAST", True, False)),
        (-signal.SIGSEGV, _outcome(phase="measure"),
         ("failed", "benchmark process killed by SIGSEGV while measuring; last output: LAST",
          True, False)),
        (1, _outcome(phase="plan"), ("failed", "exit code 1 while planning: LAST", True, False)),
        (0, None, ("failed", "exit code 0 before it started: LAST", True, False)),
    ],
)  # fmt: skip
def test_the_parent_judges_exit_code_and_outcome(
    rc: int | None, outcome: ChildOutcome | None, expected: tuple[object, ...]
) -> None:
    verdict = judge(rc, outcome, timeout_s=30, last_output="LAST")
    assert (verdict.status, verdict.error, verdict.retryable, verdict.recorded) == expected


def test_unplanned_fingerprint_is_stable_and_never_a_planned_one() -> None:
    plan = Plan(CONFIG, load_prompt_set("default"))
    assert unplanned_fingerprint(CONFIG) == unplanned_fingerprint(
        RunConfig.from_mapping(CONFIG.to_dict())
    )
    assert unplanned_fingerprint(CONFIG) != plan.fingerprint
    assert unplanned_fingerprint(CONFIG) != unplanned_fingerprint(CONFIG.replace(batch_size=2))


def test_run_child_forwards_output_reads_the_outcome_and_times_phases(tmp_path: Path) -> None:
    outcome = tmp_path / "outcome.json"
    outcome.write_text(json.dumps({"phase": "done", "status": "ok"}))  # a previous attempt's
    script = (
        "import sys, time; from pathlib import Path\n"
        "from bench.orchestration.child import OutcomeWriter\n"
        "w = OutcomeWriter(Path(sys.argv[1])); print('hello'); w.phase('plan')\n"
        "print('half', file=sys.stderr); w.phase('measure'); time.sleep(0.2)\n"
        "raise SystemExit(3)\n"
    )
    lines: list[str] = []
    run = run_child(
        [sys.executable, "-c", script, str(outcome)],
        outcome=outcome,
        env=dict(os.environ),
        timeout_s=60,
        log=lines.append,
    )
    assert run.rc == 3 and lines == ["hello", "half"] and run.last_output == "half"
    assert run.outcome is not None and run.outcome.phase == "measure" and run.outcome.status is None
    timings = run.timings()
    assert list(timings) == ["start", "plan", "measure"]
    assert timings["measure"] >= 0.2 and timings["start"] > 0
    assert run.verdict(60).error == "exit code 3 while measuring: half"


def test_run_child_kills_the_whole_group_on_timeout(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True); time.sleep(60)\n"
    )
    lines: list[str] = []
    run = run_child(
        [sys.executable, "-c", script],
        outcome=tmp_path / "outcome.json",
        env=dict(os.environ),
        timeout_s=3,
        log=lines.append,
    )
    assert isinstance(run, ChildRun) and run.rc is None and run.outcome is None
    assert run.verdict(3).status == "timeout" and run.ended_at - run.spawned_at < 20
    with pytest.raises(ProcessLookupError):  # the grandchild went with the group
        for _ in range(50):
            os.kill(int(lines[0]), 0)
            time.sleep(0.1)
