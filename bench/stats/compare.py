"""A against B for one configuration: medians, a bootstrap CI of their ratio, a rank test.

``bench compare`` asks "is B faster than A?" for every configuration both
ran: two campaigns, or two sets of runs picked by their environment (an
image, a driver) over a window. Each side is a list of runs, each run the
per-request values of the metric's distribution (or, for a run-level metric
such as throughput, one value per run).

The confidence interval is a percentile bootstrap of
``statistic(B) / statistic(A)``, with the two sides resampled independently.
With one run a side it resamples requests: the interval then covers the
sampling noise of those requests, not the night-to-night noise no single
run can show (``docs/regressions.md``: a night shifts all of its requests
together). With several runs a side it resamples runs and then requests
within each chosen run (a two-level bootstrap), so a side's night-to-night
spread widens the interval as it should. Everything is vectorised: a
``(resamples, runs, requests)`` index array per side, one quantile call.
The Mann-Whitney U test over the pooled requests is reported beside it as
the usual rank test; the verdict rests on the interval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from bench.errors import ConfigError
from bench.stats.types import Better

#: Bootstrap resamples per comparison (the CI's percentiles are stable to ~0.1% at 2000).
RESAMPLES = 2000
CONFIDENCE = 0.95
#: Requests drawn per chosen run in the two-level bootstrap, at most: with several runs
#: the night-to-night spread dominates, and fewer draws only widen the interval a little.
MAX_PER_RUN = 128

CompareVerdict = Literal["faster", "slower", "better", "worse", "no change", "n/a"]
_REQUEST_METRIC = re.compile(r"^(ttft|tpot|itl|e2e)_(?:p(\d{1,2})|(mean))_ms$")


@dataclass(frozen=True)
class Statistic:
    """How a metric summarises values: ``quantile`` in (0, 1), or the mean (None)."""

    distribution: str | None  # per-request values (ttft...), None for a run-level metric
    quantile: float | None

    def of(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        if self.quantile is None:
            return np.asarray(np.mean(values, axis=axis))
        return np.asarray(np.quantile(values, self.quantile, axis=axis))


def statistic_of(metric: str) -> Statistic:
    """``ttft_p50_ms`` -> the median of per-request TTFTs; ``output_tokens_per_s``
    -> the median of the runs' values."""
    match = _REQUEST_METRIC.match(metric)
    if match is None:
        return Statistic(None, 0.5)
    dist, pct, mean = match.groups()
    return Statistic(dist, None if mean else int(pct) / 100.0)


@dataclass(frozen=True)
class Comparison:
    """One configuration's metric, A against B."""

    value_a: float
    value_b: float
    change_pct: float  # 100 * (B / A - 1)
    ci_low_pct: float  # the 95% interval of the same, from the bootstrap
    ci_high_pct: float
    p_value: float | None  # Mann-Whitney U, two-sided, pooled values
    verdict: CompareVerdict
    n_a: int  # values (requests, or runs) on each side
    n_b: int
    runs_a: int
    runs_b: int


def _clean(runs: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for run in runs:
        values = np.asarray(run, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size:
            out.append(values)
    return out


def bootstrap(
    runs: Sequence[np.ndarray], statistic: Statistic, rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """``resamples`` bootstrap replicates of ``statistic`` over one side's runs.

    One run: resample its values. Several: resample runs, then draw up to
    :data:`MAX_PER_RUN` values within each chosen run (each run weighs the
    same, as each night does).
    """
    if len(runs) == 1:
        values = runs[0]
        idx = rng.integers(0, values.size, (resamples, values.size))
        return statistic.of(values[idx], axis=1)
    sizes = np.array([r.size for r in runs])
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    pooled = np.concatenate(runs)
    per_run = int(min(MAX_PER_RUN, max(1, round(float(np.mean(sizes))))))
    chosen = rng.integers(0, len(runs), (resamples, len(runs)))
    within = np.floor(rng.random((resamples, len(runs), per_run)) * sizes[chosen][..., None])
    flat = (offsets[chosen][..., None] + within.astype(np.intp)).reshape(resamples, -1)
    return statistic.of(pooled[flat], axis=1)


def compare(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    statistic: Statistic,
    better: Better,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    min_effect: float = 0.0,
    speed: bool = True,
) -> Comparison | None:
    """A against B: ``a`` and ``b`` are runs (arrays of values), oldest first.

    The verdict is ``faster``/``slower`` (``better``/``worse`` when ``speed``
    is False: memory, energy) when the interval excludes no change and the
    change is at least ``min_effect``; ``no change`` otherwise; ``n/a`` (no
    interval) when a side has a single value: a run-level metric such as
    throughput needs two runs a side (pass each side's run values as one
    array). None when a side has no values.
    """
    if resamples < 100:
        raise ConfigError(f"resamples must be >= 100, got {resamples}")
    runs_a, runs_b = _clean(a), _clean(b)
    if not runs_a or not runs_b:
        return None
    pooled_a, pooled_b = np.concatenate(runs_a), np.concatenate(runs_b)
    value_a, value_b = float(statistic.of(pooled_a)), float(statistic.of(pooled_b))
    if value_a <= 0 or value_b <= 0:
        return None
    change = value_b / value_a - 1.0
    if pooled_a.size < 2 or pooled_b.size < 2:
        return Comparison(
            value_a, value_b, 100.0 * change, math.nan, math.nan, None, "n/a",
            int(pooled_a.size), int(pooled_b.size), len(runs_a), len(runs_b),
        )  # fmt: skip
    rng = np.random.default_rng(seed)
    ratio = bootstrap(runs_b, statistic, rng, resamples) / bootstrap(
        runs_a, statistic, rng, resamples
    )
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(ratio, (tail, 1.0 - tail))
    p: float | None = None
    if pooled_a.size >= 2 and pooled_b.size >= 2 and not np.array_equal(pooled_a, pooled_b):
        p = float(stats.mannwhitneyu(pooled_a, pooled_b, method="asymptotic").pvalue)
        p = p if math.isfinite(p) else None
    verdict: CompareVerdict = "no change"
    if (low > 1.0 or high < 1.0) and abs(change) >= min_effect:
        worse = (change > 0) == (better == "lower")
        verdict = ("slower" if worse else "faster") if speed else ("worse" if worse else "better")
    return Comparison(
        value_a=value_a,
        value_b=value_b,
        change_pct=100.0 * change,
        ci_low_pct=100.0 * (float(low) - 1.0),
        ci_high_pct=100.0 * (float(high) - 1.0),
        p_value=p,
        verdict=verdict,
        n_a=int(pooled_a.size),
        n_b=int(pooled_b.size),
        runs_a=len(runs_a),
        runs_b=len(runs_b),
    )


__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "Comparison",
    "Statistic",
    "bootstrap",
    "compare",
    "statistic_of",
]
