"""The nightly gate on stored runs: the database feeds ``bench.stats``, verdicts go back.

For each successful run of a campaign and each key metric: the baseline is
the last K successful runs of the same configuration (fingerprint, hence
same device class) after the last change point of that metric's series;
per-request values of tonight and of each baseline night, last night's
verdicts (for persistence) and the campaign's thresholds go to
:func:`bench.stats.assess`. The verdicts of the campaign's runs are then
replaced as a whole, so running detection twice converges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.stats import (
    DEFAULT_K,
    KEY_METRICS,
    METRICS,
    MIN_BASELINE,
    Better,
    Finding,
    Night,
    assess,
    baseline_window,
    find_changepoints,
    parse_thresholds,
)
from bench.store.queries import run_query
from bench.store.regressions import RegressionRow, replace_regressions

#: Earlier runs read per configuration: enough for change points to see a level.
HISTORY = 60


@dataclass(frozen=True)
class Judged:
    """One run's verdicts, with where it sits in its history."""

    run_id: int
    label: str
    baseline_nights: int
    findings: tuple[Finding, ...]


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


class _Nights:
    """Loads each run's per-request values once (a night sits in many windows)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._cache: dict[int, Night] = {}

    def get(self, row: Mapping[str, Any]) -> Night:
        run_id = int(row["run_id"])
        if run_id not in self._cache:
            summary = {spec.name: row[spec.name] for spec in KEY_METRICS}
            values = request_values(self._engine, run_id)
            self._cache[run_id] = Night(summary=summary, requests=values, label=str(run_id))
        return self._cache[run_id]


def judge_run(
    engine: sa.Engine,
    run_id: int,
    *,
    thresholds: Mapping[str, Any] | None = None,
    k: int = DEFAULT_K,
    nights: _Nights | None = None,
) -> tuple[tuple[Finding, ...], int]:
    """Findings for one ok run, and the size of its largest baseline window."""
    limits = parse_thresholds(thresholds)
    nights = nights or _Nights(engine)
    rows = run_query(engine, "config_history", run_id=run_id, last=HISTORY)
    if not rows or not rows[0]["is_current"]:
        return (), 0
    current, earlier = rows[0], rows[:0:-1]  # earlier runs oldest first
    previous = (
        [
            Finding.from_row(r)
            for r in run_query(engine, "run_regressions", run_id=earlier[-1]["run_id"])
        ]
        if earlier
        else []
    )
    last = {f.metric: f for f in previous}
    findings: list[Finding] = []
    widest = 0
    for spec in KEY_METRICS:
        series = [r[spec.name] for r in earlier]
        changes = [cp.index for cp in find_changepoints(series, spec.better)]
        window = [r for r in baseline_window(earlier, k, changes) if r[spec.name] is not None]
        widest = max(widest, len(window))
        if len(window) < MIN_BASELINE or current[spec.name] is None:
            continue
        finding = assess(
            spec.name,
            nights.get(current),
            [nights.get(r) for r in window],
            previous=last.get(spec.name),
            threshold=limits[spec.name],
        )
        if finding is not None:
            findings.append(finding)
    return tuple(findings), widest


def detect_campaign(
    engine: sa.Engine,
    dag_run_id: str,
    *,
    thresholds: Mapping[str, Any] | None = None,
    k: int = DEFAULT_K,
) -> list[Judged]:
    """Judge every ok run of a campaign; store and return the verdicts."""
    parse_thresholds(thresholds)  # a bad campaign threshold fails before any query
    nights = _Nights(engine)
    judged: list[Judged] = []
    for run in run_query(engine, "campaign_runs", campaign=dag_run_id):
        if run["status"] != "ok":
            continue
        findings, window = judge_run(
            engine, int(run["run_id"]), thresholds=thresholds, k=k, nights=nights
        )
        judged.append(Judged(int(run["run_id"]), str(run["label"]), window, findings))
    replace_regressions(
        engine,
        [j.run_id for j in judged],
        [RegressionRow(**f.as_row(j.run_id)) for j in judged for f in j.findings],
    )
    return judged


def flagged(judged: Sequence[Judged]) -> list[tuple[Judged, Finding]]:
    """The findings with verdict ``regression``, in campaign order."""
    return [(j, f) for j in judged for f in j.findings if f.verdict == "regression"]
