"""Shared by the stats tests: CSV fixtures and running the gate night after night."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.stats import Finding, Night, detect

DATA = Path(__file__).resolve().parent.parent / "data" / "stats"
K = 14


def load_csv(name: str) -> list[dict[str, float]]:
    """Rows of a fixture under tests/data/stats ('#' lines are provenance comments)."""
    with (DATA / name).open(encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(lines)]


def run_nightly(
    nights: Sequence[Night],
    *,
    first: int = K,
    metrics: Sequence[str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
) -> dict[int, dict[str, Finding]]:
    """The gate as the DAG runs it: each night against the K before, last night's findings fed back."""
    out: dict[int, dict[str, Finding]] = {}
    previous: tuple[Finding, ...] = ()
    for t in range(first, len(nights)):
        window = nights[max(0, t - K) : t]
        found = detect(nights[t], window, previous=previous, metrics=metrics, thresholds=thresholds)
        out[t] = {f.metric: f for f in found}
        previous = found
    return out
