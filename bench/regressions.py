"""The nightly gate on stored runs: the database feeds ``bench.stats``, verdicts go back.

For each successful run of a campaign and each key metric, the baseline is
the last K successful runs of the same history (configuration fingerprint,
device model, cards: migration 014) after the last change point of that
metric's series; a campaign-wide shift is looked for per device model.
The campaign's runs are judged together (:func:`bench.stats.campaign.judge_campaign`):
the campaign's common shift is taken out of every configuration, a
campaign-wide shift becomes one ``campaign_shift`` verdict and a bad host
one ``host_anomaly``, and a run with a same-night confirm run is judged
together with it. Every verdict row carries what changed in the
environment against its baseline's runs (:func:`bench.environment.environment_diff`).
Beside the timings, the gate judges what the runs generated
(:mod:`bench.outputs`): agreement with the campaign's reference precision is
computed first and stored in ``run_summary``, then judged per configuration
like any metric (higher is better, :data:`bench.stats.OUTPUT_METRICS`), and a
greedy run whose tokens differ from the previous run's gets an
``output_changed`` verdict. The verdicts of the campaign's runs are then
replaced as a whole, so running detection twice converges.

:func:`confirm_candidates` is the same judgement without storing, for the
DAG's ``suspects`` task: which configurations a confirm run would settle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.environment import environment_diff
from bench.outputs import drift_row, greedy, run_outputs, update_agreement
from bench.stats import (
    DEFAULT_K,
    KEY_METRICS,
    METRICS,
    MIN_BASELINE,
    OUTPUT_METRICS,
    Better,
    Finding,
    MetricSpec,
    Night,
    baseline_window,
    detect,
    find_changepoints,
    parse_thresholds,
)
from bench.stats.campaign import CampaignJudgement, GroupFinding, Subject, judge_campaign
from bench.stats.outputs import Output
from bench.store.queries import run_query
from bench.store.regressions import RegressionRow, replace_regressions

#: Earlier runs read per configuration: enough for change points to see a level.
HISTORY = 60
#: Verdicts about one run (what "last night" can confirm); the others cover many.
RUN_VERDICTS = ("regression", "suspicious", "improvement")
#: At most this share of a campaign's configurations (at least 2) get a confirm run.
CONFIRM_SHARE = 0.25


@dataclass(frozen=True)
class Judged:
    """One run's verdicts, with where it sits in its history."""

    run_id: int
    label: str
    baseline_nights: int
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_campaign` judged and stored."""

    judged: tuple[Judged, ...]
    groups: tuple[GroupFinding, ...]
    rows: tuple[RegressionRow, ...]
    labels: Mapping[int, str] = field(default_factory=dict)  # run id -> label
    telemetry: Mapping[int, Mapping[str, Any] | None] = field(default_factory=dict)

    def flagged(self) -> list[RegressionRow]:
        """Rows that alert: regressions, host anomalies, campaign shifts (worse)."""
        return [r for r in self.rows if _alerts(r)]

    def as_json(self) -> list[dict[str, Any]]:
        """Every stored row as JSON, for the DAG task's XCom and the notifier."""
        from bench.environment import format_changes
        from bench.telemetry import throttle_mark

        out = []
        for r in self.rows:
            out.append(
                {
                    "run_id": r.run_id,
                    "label": self.labels.get(r.run_id, str(r.run_id)),
                    "metric": r.metric,
                    "verdict": r.verdict,
                    "direction": r.detail.get("direction"),
                    "change_pct": None if r.change_pct is None else round(r.change_pct, 2),
                    "baseline": r.baseline,
                    "current": r.current,
                    "p_value": r.p_value,
                    "reason": r.reason,
                    "changed": format_changes(r.changed),
                    "scope": r.detail.get("scope"),
                    "confirm_run_id": r.detail.get("confirm_run_id"),
                    "throttled": throttle_mark(self.telemetry.get(r.run_id)),
                    **{k: r.detail.get(k) for k in _OUTPUT_DETAIL if r.metric == "output"},
                }
            )
        return out


#: What an ``output_changed`` verdict's JSON carries besides the common fields.
_OUTPUT_DETAIL = ("requests_changed", "requests_compared", "first_request", "first_position",
                  "baseline_run_id", "nondeterministic")  # fmt: skip


def _alerts(row: RegressionRow) -> bool:
    if row.verdict == "regression":
        return True
    if row.verdict == "output_changed":  # shown, not alarmed, once marked nondeterministic
        return not row.detail.get("nondeterministic")
    if row.verdict in ("host_anomaly", "campaign_shift"):
        return row.detail.get("direction") == "worse"
    return False


def better_direction(metric: str) -> Better:
    """``higher`` for throughput-like metrics, ``lower`` for times, memory, energy."""
    if metric in METRICS:
        return METRICS[metric].better
    return "higher" if metric.endswith("_per_s") or metric.startswith("goodput") else "lower"


def request_values(engine: sa.Engine, run_id: int) -> dict[str, np.ndarray]:
    """A run's per-request distributions in ms (successful requests): ``ttft``,
    ``tpot``, ``e2e`` one value a request, ``itl`` every gap of every request."""
    rows = run_query(engine, "run_requests", run_id=run_id)
    values = {
        name: np.array(
            [r[f"{name}_ms"] for r in rows if r[f"{name}_ms"] is not None], dtype=np.float64
        )
        for name in ("ttft", "tpot", "e2e")
    }
    gaps = [np.asarray(r["itl_ms"], dtype=np.float64) for r in rows if r["itl_ms"]]
    values["itl"] = np.concatenate(gaps) if gaps else np.empty(0)
    return values


class _Store:
    """Loads each run's values and each environment once (a night sits in many windows)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._nights: dict[int, Night] = {}
        self._envs: dict[int, dict[str, Any] | None] = {}
        self._outputs: dict[int, list[Output]] = {}

    def night(self, run_id: int, summary: Mapping[str, Any]) -> Night:
        if run_id not in self._nights:
            values = request_values(self.engine, run_id)
            self._nights[run_id] = Night(
                summary={name: summary.get(name) for name in METRICS},
                requests=values,
                label=str(run_id),
            )
        return self._nights[run_id]

    def summary_night(self, run_id: int) -> Night | None:
        """A run that is not in any configuration's history (a confirm run)."""
        rows = run_query(self.engine, "config_history", run_id=run_id, last=1)
        mine = [r for r in rows if r["is_current"]]
        return self.night(run_id, mine[0]) if mine else None

    def outputs(self, run_id: int) -> list[Output]:
        if run_id not in self._outputs:
            self._outputs[run_id] = run_outputs(self.engine, run_id)
        return self._outputs[run_id]

    def environment(self, environment_id: int | None) -> dict[str, Any] | None:
        if environment_id is None:
            return None
        if environment_id not in self._envs:
            rows = run_query(self.engine, "environment", environment_id=environment_id)
            self._envs[environment_id] = rows[0] if rows else None
        return self._envs[environment_id]


@dataclass(frozen=True)
class _Input:
    """A run as the gate reads it: its history rows and its subject."""

    run: Mapping[str, Any]
    history: Sequence[Mapping[str, Any]]  # earlier ok runs, oldest first
    subject: Subject
    current: Mapping[str, Any]  # the run's own config_history row


def _windows(
    history: Sequence[Mapping[str, Any]], k: int, specs: Sequence[MetricSpec] = KEY_METRICS
) -> dict[str, list[int]]:
    """Per metric, the indices of ``history`` in its baseline (cut at change points)."""
    out = {}
    for spec in specs:
        series = [r[spec.name] for r in history]
        changes = [cp.index for cp in find_changepoints(series, spec.better)]
        window = baseline_window(list(range(len(history))), k, changes)
        out[spec.name] = [i for i in window if history[i][spec.name] is not None]
    return out


def _previous(engine: sa.Engine, history: Sequence[Mapping[str, Any]]) -> dict[str, Finding]:
    if not history:
        return {}
    rows = run_query(engine, "run_regressions", run_id=history[-1]["run_id"])
    return {
        str(r["metric"]): Finding.from_row(r)
        for r in rows
        if r["verdict"] in RUN_VERDICTS and r["metric"] in METRICS
    }


def _inputs(store: _Store, dag_run_id: str, k: int) -> list[_Input]:
    inputs = []
    for run in run_query(store.engine, "campaign_subjects", campaign=dag_run_id):
        if run["status"] != "ok":
            continue
        rows = run_query(store.engine, "config_history", run_id=int(run["run_id"]), last=HISTORY)
        if not rows or not rows[0]["is_current"]:
            continue
        current, history = rows[0], rows[:0:-1]  # earlier runs oldest first
        confirm = None
        if run["confirm_run_id"] is not None and run["confirm_status"] == "ok":
            confirm = store.summary_night(int(run["confirm_run_id"]))
        hosts = [(store.environment(r["environment_id"]) or {}).get("host") for r in history]
        subject = Subject(
            key=int(run["run_id"]),
            label=str(run["label"]),
            group=f"{run['device']}/{run['device_model']}/{run['backend']}",
            host=run["host"],
            current=store.night(int(run["run_id"]), current),
            history=[store.night(int(r["run_id"]), r) for r in history],
            campaigns=[int(r["campaign_id"]) for r in history],
            windows=_windows(history, k),
            previous=_previous(store.engine, history),
            history_hosts=hosts,
            confirm=confirm,
            confirm_host=run["confirm_host"],
        )
        inputs.append(_Input(run, history, subject, current))
    return inputs


def _judge(
    engine: sa.Engine, dag_run_id: str, thresholds: Mapping[str, Any] | None, k: int
) -> tuple[_Store, list[_Input], CampaignJudgement]:
    parse_thresholds(thresholds)  # a bad campaign threshold fails before any query
    store = _Store(engine)
    inputs = _inputs(store, dag_run_id, k)
    judgement = judge_campaign([i.subject for i in inputs], thresholds=thresholds)
    return store, inputs, judgement


# -- what changed --------------------------------------------------------------------------------


def _changed(
    store: _Store, item: _Input, metric: str, window: Sequence[int] | None = None
) -> dict[str, Any]:
    """The environment difference between the run and the runs of its baseline for ``metric``."""
    tonight = store.environment(item.run["environment_id"])
    if tonight is None:
        return {}
    window = window or item.subject.windows.get(metric) or range(len(item.history))
    baseline = [store.environment(item.history[i]["environment_id"]) for i in window]
    return environment_diff(tonight, [b for b in baseline if b is not None])


def _common_changes(diffs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Keys that changed for every run of a group (what a shared cause would change)."""
    if not diffs or any(not d for d in diffs):
        return {}
    keys = set(diffs[0]).intersection(*diffs[1:])
    out = {}
    for key in sorted(keys):
        values = {repr(d[key]["current"]) for d in diffs}
        first = diffs[0][key]
        out[key] = {
            "baseline": first["baseline"],
            "runs": first["runs"],
            "current": first["current"] if len(values) == 1 else sorted(values),
        }
    return out


# -- rows ----------------------------------------------------------------------------------------


def _run_rows(
    store: _Store, inputs: Sequence[_Input], judgement: CampaignJudgement
) -> list[RegressionRow]:
    by_key = {i.subject.key: i for i in inputs}
    rows = []
    for j in judgement.judgements:
        item = by_key[j.key]
        for f in j.findings:
            detail: dict[str, Any] = {"direction": f.direction}
            if f.metric in j.common:
                detail["common_shift_pct"] = round(100 * math.expm1(j.common[f.metric]), 3)
            if j.confirmed:
                detail["confirm_run_id"] = item.run["confirm_run_id"]
            rows.append(
                RegressionRow(
                    run_id=int(j.key),  # type: ignore[call-overload]
                    metric=f.metric,
                    baseline=f.baseline,
                    current=f.current,
                    change_pct=f.change_pct,
                    p_value=f.p_value,
                    verdict=f.verdict,
                    changed=_changed(store, item, f.metric),
                    detail=detail,
                    reason=f.reason,
                )
            )
    return rows


def _group_rows(
    store: _Store,
    inputs: Sequence[_Input],
    judgement: CampaignJudgement,
    taken: set[tuple[int, str]],
) -> list[RegressionRow]:
    """One row per campaign shift or host anomaly, on the first run it covers
    that has no row of its own for that metric."""
    by_key = {i.subject.key: i for i in inputs}
    rows = []
    for g in judgement.groups:
        if not g.keys:
            continue
        keys = [int(k) for k in g.keys]  # type: ignore[call-overload]
        anchor = next((k for k in keys if (k, g.metric) not in taken), None)
        if anchor is None:
            continue
        taken.add((anchor, g.metric))
        covered = [by_key[k] for k in keys]
        rows.append(
            RegressionRow(
                run_id=anchor,
                metric=g.metric,
                baseline=None,
                current=None,
                change_pct=g.change_pct,
                p_value=None,
                verdict=g.verdict,
                changed=_common_changes([_changed(store, i, g.metric) for i in covered]),
                detail={
                    "scope": g.scope,
                    "direction": g.direction,
                    "runs": keys,
                    "labels": [i.subject.label for i in covered],
                    **({"z": round(g.z, 2)} if g.z is not None else {}),
                },
                reason=g.reason,
            )
        )
    return rows


# -- what the runs generated -------------------------------------------------------------------


def _output_findings(
    store: _Store, inputs: Sequence[_Input], thresholds: Mapping[str, Any] | None, k: int
) -> tuple[dict[int, list[Finding]], list[RegressionRow]]:
    """Agreement with the reference precision, judged per configuration against
    its own history (no common mode: see :data:`bench.stats.OUTPUT_METRICS`)."""
    limits = parse_thresholds(thresholds)
    findings: dict[int, list[Finding]] = {}
    rows = []
    for item in inputs:
        subject = item.subject
        for name, window in _windows(item.history, k, OUTPUT_METRICS).items():
            if len(window) < MIN_BASELINE:
                continue
            found = detect(
                subject.current,
                [subject.history[i] for i in window],
                previous=[subject.previous[name]] if name in subject.previous else [],
                thresholds=limits,
                metrics=[name],
            )
            for f in found:
                findings.setdefault(int(subject.key), []).append(f)  # type: ignore[call-overload]
                rows.append(
                    RegressionRow(
                        run_id=int(subject.key),  # type: ignore[call-overload]
                        metric=f.metric,
                        baseline=f.baseline,
                        current=f.current,
                        change_pct=f.change_pct,
                        p_value=f.p_value,
                        verdict=f.verdict,
                        changed=_changed(store, item, f.metric, window),
                        detail={"direction": f.direction},
                        reason=f.reason,
                    )
                )
    return findings, rows


def _drift_rows(store: _Store, inputs: Sequence[_Input]) -> list[RegressionRow]:
    """``output_changed`` for each greedy run whose tokens differ from its previous run's."""
    rows = []
    for item in inputs:
        if not greedy(item.run["config"] or {}):
            continue
        row = drift_row(
            store.engine,
            run=item.current,
            history=item.history,
            environment=store.environment,
            outputs=store.outputs,
        )
        if row is not None:
            rows.append(row)
    return rows


def detect_campaign(
    engine: sa.Engine,
    dag_run_id: str,
    *,
    thresholds: Mapping[str, Any] | None = None,
    k: int = DEFAULT_K,
) -> Detection:
    """Judge every ok run of a campaign; store and return the verdicts."""
    parse_thresholds(thresholds)  # a bad campaign threshold fails before anything is written
    update_agreement(engine, dag_run_id)  # tonight's agreement, before the history is read
    store, inputs, judgement = _judge(engine, dag_run_id, thresholds, k)
    rows = _run_rows(store, inputs, judgement)
    rows += _group_rows(store, inputs, judgement, {(r.run_id, r.metric) for r in rows})
    output_findings, output_rows = _output_findings(store, inputs, thresholds, k)
    rows += output_rows + _drift_rows(store, inputs)
    replace_regressions(engine, [int(i.run["run_id"]) for i in inputs], rows)
    windows = {
        i.subject.key: max((len(w) for w in i.subject.windows.values()), default=0) for i in inputs
    }
    judged = tuple(
        Judged(
            int(j.key),  # type: ignore[call-overload]
            j.label,
            windows[j.key],
            (*j.findings, *output_findings.get(int(j.key), ())),  # type: ignore[call-overload]
        )
        for j in judgement.judgements
    )
    labels = {int(i.run["run_id"]): i.subject.label for i in inputs}
    telemetry = {int(i.run["run_id"]): i.run["telemetry"] for i in inputs}
    return Detection(judged, judgement.groups, tuple(rows), labels, telemetry)


def confirm_candidates(
    engine: sa.Engine,
    dag_run_id: str,
    *,
    thresholds: Mapping[str, Any] | None = None,
    k: int = DEFAULT_K,
) -> list[dict[str, Any]]:
    """The campaign's runs a same-night confirm run would settle, most suspicious first.

    A run qualifies when it is flagged ``suspicious`` in the bad direction
    after the campaign's common shift is taken out and bad hosts are set
    aside, and has no confirm run yet. At most :data:`CONFIRM_SHARE` of the
    campaign (at least 2) are returned: a night where everything moved is a
    campaign verdict, not N re-runs. Each item is what the DAG's benchmark
    task takes (label, config, fingerprint, prompt set, world size).
    """
    _, inputs, judgement = _judge(engine, dag_run_id, thresholds, k)
    by_key = {i.subject.key: i for i in inputs}
    scored = []
    for j in judgement.judgements:
        metrics = set(j.to_confirm)
        if not metrics or by_key[j.key].run["confirm_run_id"] is not None:
            continue
        z = max(abs(f.z) for f in j.findings if f.metric in metrics)
        scored.append((-(z if math.isfinite(z) else 0.0), by_key[j.key]))
    cap = max(2, math.ceil(CONFIRM_SHARE * len(inputs)))
    items = []
    for _, item in sorted(scored, key=lambda pair: pair[0])[:cap]:
        run = item.run
        items.append(
            {
                "label": run["label"],
                "config": dict(run["config"]),
                "fingerprint": run["fingerprint"],
                "prompt_set": dict(run["prompt_set"]),
                "world_size": int(run["world_size"]),
                "target": run["target"] or None,
                "role": "confirm",
                "confirms_run_id": int(run["run_id"]),
            }
        )
    return items


def flagged(detection: Detection) -> list[tuple[Judged, Finding]]:
    """The findings with verdict ``regression``, in campaign order."""
    return [(j, f) for j in detection.judged for f in j.findings if f.verdict == "regression"]
