"""The rules other tools use, as pure functions: what the detector must beat.

Each takes what our gate takes - the baseline nights' values of one metric
(oldest first), tonight's value and which way is better - and returns an
:class:`AnchorCall`. They see nightly summaries only; none of them uses
per-request values.

* :func:`fixed_ratio`    optimum-habana CI: tonight within 5% of the baseline
  (throughput >= 0.95 x baseline), baseline = mean of the window.
* :func:`conbench_z`     conbench: z-score of tonight against the lookback
  window's mean and standard deviation, regression beyond 5.
* :func:`two_consecutive` PyTorch dashboard: a 5% violation counts as a
  regression only when the previous night violated too (the previous night
  judged against the nights before it, so the rule needs no stored state).
* :func:`bencher_t_test` Bencher's t-test threshold: the limit is the window
  mean plus the one-sided 99% Student-t quantile times its standard deviation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
from scipy import stats

from bench.stats.types import Better

AnchorVerdict = Literal["regression", "improvement"]


@dataclass(frozen=True)
class AnchorCall:
    """One rule's call on tonight.

    ``score`` is how far tonight went in the bad direction, in the rule's own
    units (relative change, z, t; negative = better); the rule says
    ``regression`` when ``score > limit`` and ``improvement`` when
    ``score < -limit``. Keeping the score lets the evaluation re-threshold a
    rule, e.g. to compare recall at equal false-alarm rates.
    """

    rule: str
    verdict: AnchorVerdict | None
    score: float
    limit: float


def _mean_sd(baseline: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(baseline, dtype=np.float64)
    mean = float(values.sum()) / values.size
    if values.size < 2:
        return mean, 0.0
    return mean, math.sqrt(float(((values - mean) ** 2).sum()) / (values.size - 1))


def _worse_sign(better: Better) -> float:
    return 1.0 if better == "lower" else -1.0


def _call(rule: str, score: float, limit: float) -> AnchorCall:
    verdict: AnchorVerdict | None = None
    if score > limit:
        verdict = "regression"
    elif score < -limit:
        verdict = "improvement"
    return AnchorCall(rule, verdict, score, limit)


def _standardized(diff: float, sd: float) -> float:
    if sd > 0:
        return diff / sd
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)


def fixed_ratio(
    baseline: Sequence[float], current: float, better: Better, *, tolerance: float = 0.05
) -> AnchorCall:
    """optimum-habana style: relative change vs the baseline mean beyond ``tolerance``."""
    change = current / _mean_sd(baseline)[0] - 1.0
    return _call("fixed 5%", _worse_sign(better) * change, tolerance)


def conbench_z(
    baseline: Sequence[float], current: float, better: Better, *, threshold: float = 5.0
) -> AnchorCall:
    """conbench style: (tonight - mean) / sd of the lookback window beyond ``threshold``."""
    mean, sd = _mean_sd(baseline)
    z = _standardized(current - mean, sd)
    return _call("conbench z>5", _worse_sign(better) * z, threshold)


def two_consecutive(
    baseline: Sequence[float], current: float, better: Better, *, tolerance: float = 0.05
) -> AnchorCall:
    """PyTorch-dashboard style: a ``tolerance`` violation tonight and on the previous night.

    The score is the smaller of the two nights' relative changes when both
    point the same way (0 otherwise), so thresholding it is the rule.
    """
    tonight = fixed_ratio(baseline, current, better, tolerance=tolerance).score
    if len(baseline) < 2:
        return _call("2 consecutive", 0.0, tolerance)
    last = fixed_ratio(baseline[:-1], baseline[-1], better, tolerance=tolerance).score
    same_way = tonight * last > 0
    score = math.copysign(min(abs(tonight), abs(last)), tonight) if same_way else 0.0
    return _call("2 consecutive", score, tolerance)


def bencher_t_test(
    baseline: Sequence[float], current: float, better: Better, *, boundary: float = 0.99
) -> AnchorCall:
    """Bencher style: beyond mean +- t(``boundary``, k-1) x sd of the window."""
    if len(baseline) < 2:
        return _call("bencher t-test", 0.0, math.inf)
    mean, sd = _mean_sd(baseline)
    t = _standardized(current - mean, sd)
    return _call(
        "bencher t-test", _worse_sign(better) * t, _t_quantile(boundary, len(baseline) - 1)
    )


@functools.lru_cache(maxsize=256)
def _t_quantile(boundary: float, df: int) -> float:
    return float(stats.t.ppf(boundary, df))


Anchor = Callable[[Sequence[float], float, Better], AnchorCall]
#: Every anchor rule with its defaults, in report order.
ANCHORS: Mapping[str, Anchor] = MappingProxyType(
    {
        "fixed 5%": fixed_ratio,
        "conbench z>5": conbench_z,
        "2 consecutive": two_consecutive,
        "bencher t-test": bencher_t_test,
    }
)
