"""What each campaign task does, as plain Python (the DAG file wraps it).

Airflow is kept out of here on purpose: the DAG's tasks are thin wrappers
that pass in run ids and the results DB URL, so every step is testable
without a scheduler, and runnable by hand.

``benchmark`` runs ``bench run`` in a child process (its own session, so a
crash, OOM or hang takes down only the child and frees the device) and makes
sure every outcome lands in the results DB exactly once per (campaign,
config): the child stores what it measured; the parent stores what the child
could not (bad config, crash, kill, timeout). Both replace, never add.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.campaign import Campaign, load_campaign
from bench.core.config import RunConfig
from bench.core.prompts import load_prompt_set
from bench.core.results import CampaignRef, read_jsonl
from bench.errors import BenchError, ConfigError, DeviceError
from bench.orchestration.cards import cards_for, lock_dir_for
from bench.paths import bench_home
from bench.runner import Plan

Log = Callable[[str], None]
#: ``launch_command``'s shape: (config, bench args, command=...) -> argv
Launcher = Callable[..., list[str]]

#: Exit codes of ``bench run`` (bench/cli/__init__.py).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: Seconds the child gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 10.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _engine(db_url: str | None) -> Any:
    from bench.store.db import get_engine

    return get_engine(db_url)


# -- plan ----------------------------------------------------------------------------------


def changed_params(campaign: Campaign, params: Mapping[str, Any]) -> dict[str, Any]:
    """Only the trigger values that differ from the file's defaults, so an
    untouched form is a no-op rather than a re-statement of every list."""
    form = campaign.trigger_form()
    return {k: v for k, v in params.items() if k not in form or form[k]["default"] != v}


def _check_thresholds(campaign: Campaign) -> None:
    """Regression thresholds are checked here, not at DAG parse time: the
    statistics stack (numpy, scipy) stays out of the scheduler's parsing."""
    from bench.campaign import CampaignError
    from bench.errors import ConfigError
    from bench.stats import parse_thresholds

    try:
        parse_thresholds(campaign.thresholds)
    except ConfigError as exc:
        raise CampaignError(f"{campaign.source}: {exc}") from None


def plan(
    campaign_file: Path,
    params: Mapping[str, Any],
    *,
    campaign: CampaignRef,
    db_url: str | None,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Validate the trigger values, expand the matrix, create the campaign row.

    Returns one JSON-able item per configuration; raises BenchError (with a
    message naming the bad value) before anything is benchmarked.
    """
    base = load_campaign(campaign_file)
    overrides = changed_params(base, params)
    effective = base.with_overrides(overrides) if overrides else base
    _check_thresholds(effective)
    prompt_set = load_prompt_set(effective.prompts)
    items: list[dict[str, Any]] = []
    for config in effective.configs():
        run_plan = Plan(config, prompt_set)
        items.append(
            {
                "label": config.label,
                "config": config.to_dict(),
                "fingerprint": run_plan.fingerprint,
                "prompt_set": run_plan.prompt_set_json(),
                "world_size": config.world_size,
            }
        )
    from bench.store.migrate import upgrade
    from bench.store.writer import ensure_campaign

    engine = _engine(db_url)
    upgrade(engine)
    ensure_campaign(
        engine,
        campaign,
        params={
            "overrides": overrides,
            "effective": dict(params),
            "configs": [i["label"] for i in items],
            # what the gate compares every configuration's outputs with
            "reference_precision": effective.reference,
        },
        started_at=_now(),
    )
    log(f"campaign {campaign.dag_run_id}: {len(items)} configurations")
    for item in items:
        log(f"  {item['label']}  fingerprint {item['fingerprint'][:12]}")
    return items


# -- benchmark -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one configuration ended, as the DAG reports it."""

    label: str
    status: str
    error: str | None = None
    retryable: bool = False
    metrics: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        keep = (
            "ttft_p50_ms",
            "ttft_p99_ms",
            "tpot_p50_ms",
            "itl_p99_ms",
            "e2e_p99_ms",
            "output_tokens_per_s",
        )
        metrics = {k: self.metrics.get(k) for k in keep} if self.metrics else None
        return {"label": self.label, "status": self.status, "error": self.error, "metrics": metrics}


def child_args(
    config: RunConfig, campaign: CampaignRef, output: Path, role: str = "primary"
) -> list[str]:
    """``bench run`` arguments that reproduce ``config`` inside ``campaign``."""
    args = ["--config", json.dumps(config.to_dict()), "--campaign-run-id", campaign.dag_run_id]
    if campaign.dag_id:
        args += ["--dag-id", campaign.dag_id]
    if role == "confirm":
        args.append("--confirm")
    return [*args, "--trigger", campaign.trigger, "--output", str(output)]


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

    def last_error(self) -> str:
        """The child's one-line error (``bench: ...``) or its last output line."""
        for line in reversed(self.lines):
            if line.startswith("bench: "):
                return line.removeprefix("bench: ").removeprefix("error: ")
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


def benchmark(
    item: Mapping[str, Any],
    *,
    campaign: CampaignRef,
    db_url: str | None,
    timeout_s: float,
    log: Log = print,
    secrets: Mapping[str, str] | None = None,
    launch: Launcher | None = None,
) -> Outcome:
    """Run one configuration in a child process and record its outcome.

    An fp8 config first runs INC's measure pass in a child of its own
    (``bench fp8-measure``, a no-op when cached), then the benchmark in a
    fresh one, as optimum-habana's reference runs two processes; both share
    ``timeout_s``. ``secrets`` (a hub token) reach the children through their
    environment only; ``launch`` builds argv (tests give stand-in children).
    """
    from bench.backends.habana.launch import launch_command

    launch = launch or launch_command
    config = RunConfig.from_mapping(item["config"])
    role = str(item.get("role", "primary"))
    work = bench_home() / "runs" / _safe(campaign.dag_run_id)
    work.mkdir(parents=True, exist_ok=True)
    output = work / f"{_safe(config.label)}{'.confirm' if role == 'confirm' else ''}.jsonl"
    output.unlink(missing_ok=True)  # a retry must not read the previous attempt's file
    env = child_env(os.environ, db_url=db_url, secrets=secrets)
    started = _now()
    try:
        with cards_for(
            config.device, config.world_size, os.environ, lock_dir_for(bench_home())
        ) as cards:
            if cards:
                log(
                    f"{config.label}: cards {cards['HABANA_VISIBLE_MODULES']} (HABANA_VISIBLE_MODULES)"
                )
            outcome = _run_children(
                item, config, campaign, output, {**env, **cards}, timeout_s, db_url, log, launch
            )
    except (ConfigError, DeviceError) as exc:  # no card free (or a bad BENCH_HPU_MODULES)
        outcome = Outcome(config.label, "failed", str(exc), retryable=True)
        _record_failure(item, config, campaign, outcome, started, db_url, log)
    log(f"{config.label}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else ""))
    return outcome


def _run_children(
    item: Mapping[str, Any],
    config: RunConfig,
    campaign: CampaignRef,
    output: Path,
    env: Mapping[str, str],
    timeout_s: float,
    db_url: str | None,
    log: Log,
    launch: Launcher,
) -> Outcome:
    """fp8's measure child when the config is fp8, then the benchmark child."""
    started = _now()
    deadline = time.monotonic() + timeout_s
    if config.precision == "fp8":
        log(f"$ bench fp8-measure {config.label} (timeout {timeout_s:.0f} s)")
        argv = launch(config, ["--config", json.dumps(config.to_dict())], command="fp8-measure")
        rc, tail = _run_child(argv, env, timeout_s, log)
        if rc != EXIT_OK:
            outcome = _outcome(config.label, rc, output, tail, timeout_s)
            outcome = dataclasses.replace(outcome, error=f"fp8 measurement: {outcome.error}")
            _record_failure(item, config, campaign, outcome, started, db_url, log)
            return outcome
    left = max(deadline - time.monotonic(), 1.0)
    log(f"$ bench run {config.label} (timeout {left:.0f} s)")
    role = str(item.get("role", "primary"))
    argv = launch(config, child_args(config, campaign, output, role))
    rc, tail = _run_child(argv, env, left, log)
    outcome = _outcome(config.label, rc, output, tail, left)
    if outcome.status != "ok" and not _child_recorded(rc, output):
        _record_failure(item, config, campaign, outcome, started, db_url, log)
    return outcome


def child_env(
    environ: Mapping[str, str], *, db_url: str | None, secrets: Mapping[str, str] | None
) -> dict[str, str]:
    """A child's environment: ours, the results DB and any secrets (a hub
    token), which never travel on a command line or into a log."""
    env = {**environ, "PYTHONUNBUFFERED": "1", **(secrets or {})}
    if db_url:
        env["BENCH_DB_URL"] = db_url
    return env


def _run_child(
    argv: list[str], env: Mapping[str, str], timeout_s: float, log: Log
) -> tuple[int | None, _Tail]:
    """Run a child in its own session; its exit code, or None after a timeout."""
    proc = subprocess.Popen(
        argv,
        env=dict(env),
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
    return rc, tail


def _child_recorded(rc: int | None, output: Path) -> bool:
    """The child stores its own result when it got as far as measuring."""
    return rc in (EXIT_OK, EXIT_FAILED) and output.is_file()


def _outcome(label: str, rc: int | None, output: Path, tail: _Tail, timeout_s: float) -> Outcome:
    if rc is None:
        return Outcome(
            label,
            "timeout",
            f"no result after {timeout_s:.0f} s; process group killed",
            retryable=True,
        )
    if rc in (EXIT_OK, EXIT_FAILED) and output.is_file():
        result = read_jsonl(output)
        metrics = result.metrics.to_json() if result.metrics else None
        # a failed measurement may be transient; running out of memory is not
        return Outcome(
            label, result.status, result.error, retryable=result.status == "failed", metrics=metrics
        )
    if rc == EXIT_BAD_INPUT:
        return Outcome(label, "failed", tail.last_error(), retryable=False)
    if rc < 0:
        name = signal.Signals(-rc).name
        hint = " (the kernel OOM killer?)" if -rc == signal.SIGKILL else ""
        return Outcome(
            label,
            "failed",
            f"benchmark process killed by {name}{hint}; last output: {tail.last_error()}",
            retryable=True,
        )
    return Outcome(label, "failed", f"exit code {rc}: {tail.last_error()}", retryable=True)


def _record_failure(
    item: Mapping[str, Any],
    config: RunConfig,
    campaign: CampaignRef,
    outcome: Outcome,
    started: datetime,
    db_url: str | None,
    log: Log,
) -> None:
    from bench.store.writer import record_failure

    try:
        record_failure(
            _engine(db_url),
            campaign=campaign,
            config=config,
            fingerprint=item["fingerprint"],
            prompt_set=dict(item["prompt_set"]),
            status=outcome.status,
            error=outcome.error or outcome.status,
            started_at=started,
            finished_at=_now(),
            role=str(item.get("role", "primary")),
        )
    except BenchError as exc:  # the task still fails loudly; say what was not stored
        log(f"could not record the failure of {config.label} in the results DB: {exc}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# -- after the benchmarks -------------------------------------------------------------------


def detect_regressions(
    campaign: CampaignRef, *, db_url: str | None, thresholds: Mapping[str, Any], log: Log = print
) -> list[dict[str, Any]]:
    """Judge every ok run of the campaign against its history; store verdicts.

    Returns the stored rows as JSON (the task's XCom, what a notifier lists).
    """
    from bench.regressions import detect_campaign

    detection = detect_campaign(_engine(db_url), campaign.dag_run_id, thresholds=thresholds)
    rows = detection.as_json()
    counts = collections.Counter(r["verdict"] for r in rows)
    short = sum(j.baseline_nights < 5 for j in detection.judged)
    extra = ", ".join(
        f"{counts[v]} {v}"
        for v in ("output_changed", "host_anomaly", "campaign_shift")
        if counts[v]
    )
    log(
        f"{len(detection.judged)} ok run(s) judged: {counts['regression']} regression(s), "
        f"{counts['suspicious']} suspicious, {counts['improvement']} improvement(s)"
        + (f", {extra}" if extra else "")
        + (f"; {short} without enough history yet (< 5 nights)" if short else "")
    )
    for r in rows:
        change = "" if r["change_pct"] is None else f"{r['change_pct']:+7.2f}%"
        log(f"  {r['verdict']:<14} {r['label']:<32} {r['metric']:<20} {change:>8}  {r['reason']}")
        if r["changed"]:
            log(f"  {'':<14} changed: {r['changed']}")
    return rows


def suspects(
    campaign: CampaignRef, *, db_url: str | None, thresholds: Mapping[str, Any], log: Log = print
) -> list[dict[str, Any]]:
    """The configurations to re-run once tonight (``role: confirm`` items for
    :func:`benchmark`): suspicious after the campaign-level judgement."""
    from bench.regressions import confirm_candidates

    items = confirm_candidates(_engine(db_url), campaign.dag_run_id, thresholds=thresholds)
    log(
        f"{len(items)} configuration(s) to confirm tonight"
        + "".join(f"\n  {i['label']}" for i in items)
    )
    return items


def report_path(campaign: CampaignRef) -> Path:
    """Where a campaign's HTML report goes: ``$BENCH_HOME/reports/<dag_id>/<run>.html``."""
    from bench.paths import reports_dir

    return reports_dir() / _safe(campaign.dag_id or "cli") / f"{_safe(campaign.dag_run_id)}.html"


def report(campaign: CampaignRef, *, db_url: str | None, log: Log = print) -> Path:
    """Print the campaign's table, write its HTML report, stamp its end."""
    from bench.report.campaign import format_campaign_table, write_campaign_report
    from bench.store.queries import run_query
    from bench.store.writer import finish_campaign

    engine = _engine(db_url)
    rows = run_query(engine, "campaign_runs", campaign=campaign.dag_run_id)
    log(format_campaign_table(rows))
    out = report_path(campaign)
    write_campaign_report(
        engine,
        campaign.dag_run_id,
        out,
        title=f"{campaign.dag_id or 'bench'}: {campaign.dag_run_id}",
    )
    finish_campaign(engine, campaign.dag_run_id, _now())
    log(f"report: {out}")
    return out
