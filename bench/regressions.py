"""Regression detection for one campaign: the DB feeds the rule, verdicts go back.

Rule: each key metric of each ok run against the previous ok run of the
same configuration (fingerprint), direction-aware, flagged beyond a relative
threshold (default 10%, per metric from the campaign's ``thresholds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from bench.errors import ConfigError
from bench.store.queries import run_query
from bench.store.regressions import RegressionRow, replace_regressions

#: Metric -> +1 when higher is better, -1 when lower is better.
KEY_METRICS: dict[str, int] = {
    "ttft_p50_ms": -1,
    "ttft_p99_ms": -1,
    "tpot_p50_ms": -1,
    "tpot_p99_ms": -1,
    "itl_p99_ms": -1,
    "e2e_p99_ms": -1,
    "output_tokens_per_s": +1,
    "peak_memory_bytes": -1,
    "energy_j_per_token": -1,
}
DEFAULT_THRESHOLD = 0.10


def thresholds_for(config: Mapping[str, Any]) -> dict[str, float]:
    out = dict.fromkeys(KEY_METRICS, DEFAULT_THRESHOLD)
    for metric, value in config.items():
        if metric not in KEY_METRICS:
            raise ConfigError(
                f"thresholds: unknown metric {metric!r}; known: {', '.join(KEY_METRICS)}"
            )
        limit = value.get("min_effect") if isinstance(value, Mapping) else value
        if not isinstance(limit, int | float) or isinstance(limit, bool) or limit <= 0:
            raise ConfigError(f"thresholds.{metric}: expected a positive fraction, got {value!r}")
        out[metric] = float(limit)
    return out


def detect_campaign(
    engine: sa.Engine, dag_run_id: str, *, thresholds: Mapping[str, Any] | None = None
) -> list[RegressionRow]:
    limits = thresholds_for(thresholds or {})
    rows: list[RegressionRow] = []
    run_ids: set[int] = set()
    for metric, direction in KEY_METRICS.items():
        for row in run_query(
            engine, "campaign_vs_baseline", campaign=dag_run_id, metric=metric, last=1
        ):
            if row["status"] != "ok":
                continue
            run_ids.add(int(row["run_id"]))
            change = row["previous_change_pct"]
            if change is None:
                continue
            good = change * direction > 0
            if abs(change) / 100 >= limits[metric]:
                rows.append(
                    RegressionRow(
                        run_id=int(row["run_id"]),
                        metric=metric,
                        baseline=row["previous"],
                        current=row["current"],
                        change_pct=change,
                        p_value=None,
                        verdict="improvement" if good else "regression",
                    )
                )
    replace_regressions(engine, sorted(run_ids), rows)
    return rows
