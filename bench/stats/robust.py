"""Small robust estimators the detector and the change-point search share.

All work on the log scale: performance changes are multiplicative (a 5%
slowdown is 5% whether TTFT is 20 ms or 2 s) and latency noise is close to
lognormal, so differences of logs are relative changes with symmetric noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: MAD x this = standard deviation for normal data.
MAD_TO_SD = 1.4826
#: Biweight tuning constant (in MADs), the usual choice.
BIWEIGHT_C = 9.0
#: Fraction trimmed from each end for a night's location.
TRIM = 0.2
#: Fewer requests than this in a night: no request-level evidence from it.
MIN_REQUESTS = 8
#: Per-night cap on values entering the rank test (ITL has tokens x requests gaps).
MAX_SAMPLES = 2048


def median(values: np.ndarray) -> float:
    """Median of a small 1-D array (np.median's overhead dominates at n = 14)."""
    ordered = np.sort(values)
    mid = ordered.size // 2
    return float(ordered[mid] if ordered.size % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0)


def median_sd(values: np.ndarray) -> tuple[float, float]:
    """Median and a robust standard deviation (biweight midvariance).

    With 14 baseline nights the plain MAD wastes most of the data (37%
    efficiency on normal noise), so the spread it reports swings by ~30% from
    one window to the next and the z-scores built on it have heavy tails. The
    biweight keeps MAD's resistance to a few slow outlier nights (they get
    zero weight beyond 9 MADs) at ~87% efficiency. 0 when half the values tie.
    """
    med = median(values)
    mad = median(np.abs(values - med))
    if mad == 0:
        return med, 0.0
    u = (values - med) / (BIWEIGHT_C * mad)
    inside = np.abs(u) < 1.0
    d, u2 = (values - med)[inside], u[inside] ** 2
    num = math.sqrt(values.size * float(np.sum(d**2 * (1.0 - u2) ** 4)))
    den = abs(float(np.sum((1.0 - u2) * (1.0 - 5.0 * u2))))
    return med, num / den if den > 0 else MAD_TO_SD * mad


def median_inflation(k: int) -> float:
    """sd(x - median of k baseline values) / sd(x): the baseline's own noise.

    The median of k normal values has variance ~ pi/2 * sigma^2 / k, so
    comparing one new value against it adds that on top of the value's own.
    """
    return math.sqrt(1.0 + math.pi / (2.0 * max(k, 1)))


def thin(values: np.ndarray, max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """At most ``max_samples`` values at evenly spaced ranks (deterministic).

    ITL gaps of one request are correlated, so tens of thousands of them do
    not carry tens of thousands of independent observations; an even quantile
    subsample keeps the shape and keeps the rank test's sample size honest.
    """
    if values.size <= max_samples:
        return values
    ordered = np.sort(values)
    idx = np.linspace(0, ordered.size - 1, max_samples).round().astype(np.intp)
    return ordered[idx]


@dataclass(frozen=True)
class Location:
    """A night's typical per-request value on the log scale, and its standard error."""

    center: float
    se: float
    n: int


def usable(values: np.ndarray) -> np.ndarray:
    """Finite positive values, thinned; an empty array when too few remain."""
    x = values[np.isfinite(values) & (values > 0)]
    if x.size < MIN_REQUESTS:
        return x[:0]
    return thin(x)


def log_location(values: np.ndarray) -> Location | None:
    """20%-trimmed mean of log values with its Tukey-McLaughlin standard error.

    Trimming keeps stragglers (a request hit by a GC pause) from moving the
    night's level, at ~94% of the efficiency of a plain mean on clean data;
    the standard error uses the winsorized variance, as usual for trimmed means.
    """
    x = usable(values)
    n = x.size
    if n == 0:
        return None
    y = np.sort(np.log(x))
    g = math.floor(TRIM * n)
    center = float(y[g : n - g].mean())
    winsorized = np.clip(y, y[g], y[n - g - 1])
    sd_w = float(np.std(winsorized, ddof=1))
    se = sd_w / ((1.0 - 2.0 * g / n) * math.sqrt(n))
    return Location(center=center, se=se, n=n)
