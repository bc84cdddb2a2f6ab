"""Writing detector verdicts to the ``regression`` table, and reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from bench.store.db import translate_errors


@dataclass(frozen=True)
class RegressionRow:
    """One ``regression`` row: a verdict on one metric of one run (or, for
    ``host_anomaly`` and ``campaign_shift``, on the runs ``detail`` lists,
    attached to the first of them)."""

    run_id: int
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    p_value: float | None
    verdict: str
    #: What changed against the baseline's runs (bench.environment.environment_diff).
    changed: Mapping[str, Any] = field(default_factory=dict)
    #: Scope and evidence: the confirm run, the host or group and the runs covered.
    detail: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "change_pct": self.change_pct,
            "p_value": self.p_value,
            "verdict": self.verdict,
            "changed": json.dumps(self.changed, default=str),
            "detail": json.dumps(self.detail, default=str),
            "reason": self.reason,
        }


def replace_regressions(
    engine: sa.Engine, run_ids: Sequence[int], rows: Iterable[RegressionRow]
) -> int:
    """Make ``rows`` the verdicts of ``run_ids`` (earlier verdicts of those runs
    go): re-running detection for a campaign converges, never accumulates."""
    rows = list(rows)
    with translate_errors(engine), engine.begin() as conn:
        if run_ids:
            conn.execute(
                sa.text("DELETE FROM regression WHERE run_id = ANY(:ids)"), {"ids": list(run_ids)}
            )
        if rows:
            conn.execute(
                sa.text(
                    "INSERT INTO regression (run_id, metric, baseline, current, change_pct,"
                    " p_value, verdict, changed, detail, reason)"
                    " VALUES (:run_id, :metric, :baseline, :current, :change_pct, :p_value,"
                    " :verdict, CAST(:changed AS jsonb), CAST(:detail AS jsonb), :reason)"
                ),
                [r.params() for r in rows],
            )
    return len(rows)
