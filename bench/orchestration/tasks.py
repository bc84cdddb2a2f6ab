"""What each campaign task does, as plain Python (the DAG file wraps it).

Airflow is kept out of here on purpose: the DAG's tasks are thin wrappers
that pass in run ids, the results DB URL and a ``log`` function, so every
step is testable without a scheduler, and runnable by hand. Everything a
task logs is what its Airflow task log shows: the configuration, the
child's progress and result table, the verdicts, the campaign table and
the report's URL.

``plan`` validates and expands the matrix only; each ``benchmark`` runs
``bench run`` in a child process that plans (prompts, fingerprint),
measures and stores its own result (the contract: :mod:`.child`). The
parent stores what the child could not (bad config, crash, kill, timeout),
so every outcome lands in the results DB exactly once per (campaign,
config). Both replace, never add.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.campaign import Campaign, load_campaign
from bench.core.config import RANDOM_PROMPTS, RunConfig
from bench.core.prompts import load_prompt_set
from bench.core.results import CampaignRef
from bench.errors import BenchError, CampaignError, ConfigError, DeviceError
from bench.orchestration.cards import cards_for, lock_dir_for
from bench.orchestration.child import (
    KEY_METRICS,
    ChildOutcome,
    ChildRun,
    Exit,
    Launcher,
    child_argv,
    run_child,
    unplanned_fingerprint,
)
from bench.paths import bench_home

Log = Callable[[str], None]

#: What ``detect_regressions`` and ``report`` say when no configuration ran.
NOTHING_RAN = "nothing ran"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _engine(db_url: str | None) -> Any:
    from bench.store.db import get_engine

    return get_engine(db_url)


def drain_spool(engine: Any, log: Log) -> None:
    """Load what the benchmarks of this worker left in the spool.

    A benchmark that finished while the results DB was down spooled its
    result and succeeded; the tasks after the benchmarks drain before they
    read, so a restarted database ends the night with every result in it.
    With the DB still down this raises :class:`DatabaseUnavailable` and the
    task is retried (``dags/llm_bench.py``).
    """
    from bench.store.spool import drain

    drained = drain(engine)
    if drained.loaded:
        log(f"loaded {len(drained.loaded)} spooled result(s) into the results DB")
    for name, error in drained.failed + drained.rejected:
        log(f"spooled result {name} not loaded: {error}")


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


def _check_targets(base: Campaign, effective: Campaign) -> None:
    """A trigger may pick some of the campaign's targets, not invent one: the
    DAG has a task (queue, pool) per target of the file, fixed when it parsed."""
    known = list(base.targets)
    for target in effective.targets:
        if target not in known:
            raise CampaignError(
                f"{base.source}: target {target['name']!r} as given is not one of the "
                f"campaign's targets ({', '.join(t['name'] for t in known) or 'none'}); a "
                "trigger may choose among them, a new one needs the campaign file"
            )


def plan(
    campaign_file: Path,
    params: Mapping[str, Any],
    *,
    campaign: CampaignRef,
    db_url: str | None,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Validate the trigger values, expand the matrix, create the campaign row.

    Returns one JSON-able item per configuration (label, config, world
    size, target: the DAG routes it to that target's queue and pool); raises BenchError (with a message naming the bad value) before
    anything is benchmarked. The prompts and fingerprint of a configuration
    are built by its benchmark child, on the worker that has the model.
    """
    base = load_campaign(campaign_file)
    overrides = changed_params(base, params)
    effective = base.with_overrides(overrides) if overrides else base
    _check_targets(base, effective)
    _check_thresholds(effective)
    if effective.prompts != RANDOM_PROMPTS:  # exists and parses; the children build the requests
        load_prompt_set(effective.prompts)
    configs = effective.configs()
    _check_shapes(configs)
    items = [
        {"label": c.label, "config": c.to_dict(), "world_size": c.world_size, "target": c.target}
        for c in configs
    ]
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
        log(f"  {item['label']}")
    return items


def _check_shapes(configs: list[RunConfig]) -> None:
    """A shape the model's context cannot hold fails the plan, naming the
    configuration, when this worker sees the model's ``config.json`` (a
    local directory); otherwise its child refuses it before loading weights."""
    from bench.backends.inprocess import local_context_length

    contexts: dict[str, int | None] = {}
    for config in configs:
        if config.input_tokens is None:
            continue
        path = config.load_path
        if path not in contexts:
            contexts[path] = local_context_length(Path(path).expanduser())
        context = contexts[path]
        if context is not None and config.input_tokens + config.max_new_tokens > context:
            raise ConfigError(
                f"{config.label}: input {config.input_tokens} + output {config.max_new_tokens} "
                f"tokens exceed the context of {config.model} ({context} tokens)"
            )


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
        metrics = {k: self.metrics.get(k) for k in KEY_METRICS} if self.metrics else None
        return {"label": self.label, "status": self.status, "error": self.error, "metrics": metrics}


def describe(config: RunConfig) -> str:
    """One line naming what a configuration runs (the first line of its task log)."""
    load = (
        f"concurrency {config.concurrency}"
        if config.concurrency is not None
        else f"{config.request_rate:g} req/s"
        if config.request_rate is not None
        else f"batch {config.batch_size}"
    )
    parts = [
        f"model {config.model}" + (f" ({config.model_path})" if config.model_path else ""),
        config.precision,
        load,
        f"{config.max_new_tokens} new tokens",
        f"{config.limit if config.limit is not None else 'all'} requests"
        f" after {config.warmup} warmup",
        f"prompts {config.prompts}",
        f"{config.backend} on {config.device}"
        + (f" x{config.world_size}" if config.world_size > 1 else ""),
    ]
    if config.options:
        parts.append("options " + ", ".join(f"{k}={v}" for k, v in config.options.items()))
    return ", ".join(parts)


def benchmark(
    item: Mapping[str, Any],
    *,
    campaign: CampaignRef,
    db_url: str | None,
    timeout_s: float,
    log: Log = print,
    attempt: int = 1,
    secrets: Mapping[str, str] | None = None,
    launch: Launcher | None = None,
) -> Outcome:
    """Run one configuration in a child process and record its outcome.

    An fp8 config first runs INC's measure pass in a child of its own
    (``bench fp8-measure``, a no-op when cached), then the benchmark in a
    fresh one, as optimum-habana's reference runs two processes; both share
    ``timeout_s``. ``secrets`` (a hub token) reach the children through their
    environment only; ``attempt`` (the task's try number) is stored with the
    run, whoever stores it; ``launch`` builds the child's argv from (config,
    ``bench`` args); tests give stand-in children.
    """
    config = RunConfig.from_mapping(item["config"])
    work = bench_home() / "runs" / _safe(campaign.dag_run_id)
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(os.environ, db_url=db_url, secrets=secrets)
    log(f"{config.label}: {describe(config)}")
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
                item,
                config,
                campaign,
                work,
                {**env, **cards},
                timeout_s,
                db_url,
                log,
                launch,
                attempt,
            )
    except (ConfigError, DeviceError) as exc:  # no card free (or a bad BENCH_HPU_MODULES)
        outcome = Outcome(config.label, "failed", str(exc), retryable=True)
        _record_failure(item, config, campaign, outcome, started, db_url, log, attempt)
    log(f"{config.label}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else ""))
    return outcome


def _run_children(
    item: Mapping[str, Any],
    config: RunConfig,
    campaign: CampaignRef,
    work: Path,
    env: Mapping[str, str],
    timeout_s: float,
    db_url: str | None,
    log: Log,
    launch: Launcher | None,
    attempt: int,
) -> Outcome:
    """fp8's measure child when the config is fp8, then the benchmark child;
    what they could not store, the parent stores."""
    started = _now()
    deadline, left = time.monotonic() + timeout_s, timeout_s
    if config.precision == "fp8":
        from bench.backends.habana.launch import launch_command

        log(f"$ bench fp8-measure {config.label} (timeout {timeout_s:.0f} s)")
        argv = (launch or launch_command)(
            config, ["--config", json.dumps(config.to_dict())], command="fp8-measure"
        )
        measured = run_child(argv, outcome=None, env=env, timeout_s=timeout_s, log=log)
        if measured.rc != Exit.OK:
            verdict = measured.verdict(timeout_s)
            error = verdict.error
            if measured.rc == Exit.BAD_INPUT:  # its one line, as the CLI printed it
                error = measured.last_output.removeprefix("bench: ").removeprefix("error: ")
            outcome = Outcome(
                config.label, "failed", f"fp8 measurement: {error}", verdict.retryable
            )
            _record_failure(item, config, campaign, outcome, started, db_url, log, attempt)
            return outcome
        left = max(deadline - time.monotonic(), 1.0)  # the two children share the timeout
    role = str(item.get("role", "primary"))
    stem = _safe(config.label) + (".confirm" if role == "confirm" else "")
    output, outcome_file = work / f"{stem}.jsonl", work / f"{stem}.outcome.json"
    output.unlink(missing_ok=True)  # a retry must not read the previous attempt's file
    log(f"$ bench run {config.label} (timeout {left:.0f} s)")
    argv = child_argv(
        config, campaign, output=output, outcome=outcome_file, confirm=role == "confirm",
        attempt=attempt, launch=launch,
    )  # fmt: skip
    child = run_child(argv, outcome=outcome_file, env=env, timeout_s=left, log=log)
    verdict = child.verdict(left)
    outcome = Outcome(
        config.label,
        verdict.status,
        verdict.error,
        verdict.retryable,
        metrics=child.outcome.metrics if child.outcome and verdict.recorded else None,
    )
    if outcome.status != "ok" and not verdict.recorded:
        _record_failure(
            item, config, campaign, outcome, started, db_url, log, attempt, child.outcome
        )
    log(f"{config.label}: {format_timings(child)}")
    return outcome


def child_env(
    environ: Mapping[str, str], *, db_url: str | None, secrets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A child's environment: ours, the results DB and any secrets (a hub
    token), which never travel on a command line or into a log."""
    env = {**environ, **(secrets or {})}
    if db_url:
        env["BENCH_DB_URL"] = db_url
    return env


#: How the child's phases read in a task log.
PHASE_NAMES = {"start": "start-up", "done": "exit"}


def format_timings(child: ChildRun) -> str:
    """Where the child's seconds went, phase by phase."""
    total = child.ended_at - child.spawned_at
    return f"{total:.1f} s in the child: " + ", ".join(
        f"{PHASE_NAMES.get(k, k)} {v:.1f} s" for k, v in child.timings().items()
    )


def _record_failure(
    item: Mapping[str, Any],
    config: RunConfig,
    campaign: CampaignRef,
    outcome: Outcome,
    started: datetime,
    db_url: str | None,
    log: Log,
    attempt: int,
    report: ChildOutcome | None = None,
) -> None:
    """Store a run the child could not store: under its plan's fingerprint
    when the child got that far (``report``), else under the unplanned key."""
    from bench.store.writer import record_failure

    if report is not None and report.planned and report.fingerprint:
        fingerprint, prompt_set = report.fingerprint, dict(report.prompt_set or {})
        config = RunConfig.from_mapping(report.config) if report.config else config
    else:
        fingerprint, prompt_set = unplanned_fingerprint(config), {"name": config.prompts}
    try:
        record_failure(
            _engine(db_url),
            campaign=campaign,
            config=config,
            fingerprint=fingerprint,
            prompt_set=prompt_set,
            status=outcome.status,
            error=outcome.error or outcome.status,
            started_at=started,
            finished_at=_now(),
            role=str(item.get("role", "primary")),
            attempt=attempt,
        )
    except BenchError as exc:  # the task still fails loudly; say what was not stored
        log(f"could not record the failure of {item['label']} in the results DB: {exc}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# -- after the benchmarks -------------------------------------------------------------------


def detect_regressions(
    campaign: CampaignRef,
    *,
    db_url: str | None,
    thresholds: Mapping[str, Any],
    planned: Sequence[Any] | None = (),
    log: Log = print,
) -> list[dict[str, Any]]:
    """Judge every ok run of the campaign against its history; store verdicts.

    Returns the findings as JSON (the task's XCom, what a notifier lists).
    ``planned`` is the plan task's result: None or empty when it failed, and
    then nothing ran and there is nothing to judge.
    """
    if not planned:
        log(f"{NOTHING_RAN}: the plan task produced no configuration, so there is nothing to judge")
        return []
    from bench.regressions import detect_campaign

    engine = _engine(db_url)
    drain_spool(engine, log)
    detection = detect_campaign(engine, campaign.dag_run_id, thresholds=thresholds)
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

    engine = _engine(db_url)
    drain_spool(engine, log)
    items = confirm_candidates(engine, campaign.dag_run_id, thresholds=thresholds)
    log(
        f"{len(items)} configuration(s) to confirm tonight"
        + "".join(f"\n  {i['label']}" for i in items)
    )
    return items


def report_path(campaign: CampaignRef) -> Path:
    """Where a campaign's HTML report goes: ``$BENCH_HOME/reports/<dag_id>/<run>.html``."""
    from bench.paths import reports_dir

    return reports_dir() / _safe(campaign.dag_id or "cli") / f"{_safe(campaign.dag_run_id)}.html"


def report_url(base_url: str, campaign: CampaignRef) -> str:
    """Where the Airflow UI serves the report (the Benchmarks page, behind its login)."""
    path = report_path(campaign)
    return f"{base_url.rstrip('/')}/benchmarks/reports/{path.parent.name}/{path.name}"


#: Width the campaign table is kept to in a task log.
LOG_WIDTH = 120


def report(
    campaign: CampaignRef,
    *,
    db_url: str | None,
    planned: Sequence[Any] | None = (),
    base_url: str | None = None,
    log: Log = print,
) -> Path | None:
    """Log the campaign's table, write its HTML report, stamp its end.

    Returns the report's path; None when nothing ran (no plan, or no run
    recorded), which is not an error of this task: the plan's log says why.
    """
    if not planned:
        log(f"{NOTHING_RAN}: the plan task produced no configuration; no report")
        return None
    from bench.report.campaign import format_campaign_table, write_campaign_report
    from bench.store.queries import run_query
    from bench.store.writer import finish_campaign

    engine = _engine(db_url)
    drain_spool(engine, log)
    rows = run_query(engine, "campaign_runs", campaign=campaign.dag_run_id)
    if not rows:
        log(f"{NOTHING_RAN}: no configuration of campaign {campaign.dag_run_id} was recorded")
        finish_campaign(engine, campaign.dag_run_id, _now())
        return None
    log(format_campaign_table(rows, width=LOG_WIDTH))
    out = report_path(campaign)
    write_campaign_report(
        engine,
        campaign.dag_run_id,
        out,
        title=f"{campaign.dag_id or 'bench'}: {campaign.dag_run_id}",
    )
    finish_campaign(engine, campaign.dag_run_id, _now())
    log(f"report: {report_url(base_url, campaign) if base_url else out}")
    if base_url:
        log(f"report file: {out}")
    return out


def failed_configurations(
    campaign: CampaignRef, *, db_url: str | None, planned: Sequence[Any] | None
) -> str:
    """Why the campaign is red, in one line: which configurations failed
    (status and error), which never got recorded, or that none ran."""
    if not planned:
        return "no configuration ran: the plan task failed (its log says why)"
    from bench.store.queries import run_query

    labels = [str(item["label"]) for item in planned]
    try:
        rows = run_query(_engine(db_url), "campaign_runs", campaign=campaign.dag_run_id)
    except BenchError as exc:
        return f"could not read the campaign's runs to name the failed configurations: {exc}"
    recorded = {str(r["label"]): r for r in rows}
    bad = [
        f"{r['label']} ({r['status']}: {_short(r['error'])})" for r in rows if r["status"] != "ok"
    ]
    missing = [label for label in labels if label not in recorded]
    parts = []
    if bad:
        parts.append(f"{len(bad)} of {len(labels)} configuration(s) failed: " + "; ".join(bad))
    if missing:
        parts.append(f"{len(missing)} not recorded: " + ", ".join(missing))
    return ". ".join(parts) or (
        f"all {len(labels)} configuration(s) ran ok; a later task (regressions or report) failed"
    )


def _short(text: str | None, limit: int = 160) -> str:
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else "no error text"
    return line if len(line) <= limit else line[: limit - 3] + "..."
