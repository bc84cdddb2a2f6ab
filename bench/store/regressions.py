"""Writing detector verdicts to the ``regression`` table, and reading them back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from bench.store.db import translate_errors


@dataclass(frozen=True)
class RegressionRow:
    run_id: int
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    p_value: float | None
    verdict: str


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
                    "INSERT INTO regression (run_id, metric, baseline, current, change_pct, p_value, verdict)"
                    " VALUES (:run_id, :metric, :baseline, :current, :change_pct, :p_value, :verdict)"
                ),
                [asdict(r) for r in rows],
            )
    return len(rows)
