"""The nightly gate: is tonight's run of a configuration worse than its baseline?

Pure functions, no I/O. The caller selects the baseline (the last K ok runs of
the same config fingerprint on the same device class, trimmed at the last
change point, see :func:`baseline_window`) and last night's findings; this
module decides.

Why this shape
--------------
Nightly numbers move for two reasons: each night measures a finite sample of
requests (sampling noise, shrinking with the number of requests), and each
night runs under its own conditions - clocks, thermals, neighbours, allocator
state - that shift *all* of its requests together (night noise, which no
number of requests averages away). In practice the second is the larger.

That rules out the obvious use of the per-request values: pooling K baseline
nights into one sample of K x n requests and running a Mann-Whitney test
against tonight's n requests. Requests of one night are not independent draws
from the baseline: they share that night's conditions. The pooled test
measures tonight's distance against the sampling noise alone and calls
ordinary night-to-night wobble significant at p < 1e-10. Its p-value is
honest only for the question "did these requests come from the same night",
which is not the question.

So the gate uses two pieces of evidence and requires both:

1. **Night-level robust z.** Each night is reduced to one number; for a
   latency metric with per-request values that is the night's typical request
   (20%-trimmed mean of log values: robust to stragglers, and far less noisy
   than a p99 of 100 requests), otherwise the metric's nightly value (log).
   Tonight is compared with the baseline nights' median in units of their
   robust spread (biweight midvariance: resistant to slow outlier nights
   like the MAD, but ~87% efficient where the MAD is 37%, which matters with
   14 points). The spread *measures* night-to-night noise instead of
   assuming it. It is floored at tonight's own sampling error (14 lucky quiet
   nights must not make a wobble look huge), at 0.1% (a metric identical
   every night, like peak memory, would otherwise give an infinite z) and at
   0.3 x ``min_effect`` (on a very quiet config a z of 2 would otherwise be a
   0.5% move: far below anything that matters, yet enough to spend the
   false-alarm budget), and inflated by ``sqrt(1 + pi/2K)`` for the noise of
   the baseline median itself.
2. **Request-level test.** Tonight's requests are compared with *each*
   baseline night's requests separately (Mann-Whitney U, two-sided, scipy)
   and the median p-value is kept: "tonight differs from a typical baseline
   night", each test with the sample sizes that were really measured. It
   confirms that the shift is real at the level of requests, not an artefact
   of one summary number, and is what ``p_value`` reports.

Metrics without per-request values (throughput, memory, energy) have the
robust z alone, hence a stricter default z
(:data:`~bench.stats.thresholds.SUMMARY_THRESHOLD`). Tail metrics (p99) are
judged by the shift of their whole distribution: it sees a uniform 5%
slowdown that a 100-request p99 cannot, whose nightly value swings by tens
of percent on one or two stragglers. The cost, stated plainly: a change
confined to the slowest 1-2% of requests is not flagged; the report's p99
trend shows it. Without per-request values a tail metric is not judged.

A finding then needs, in the same direction:

* **significance**: ``|z| >= z`` (``z_confirm`` when last night was flagged)
  and ``p <= p`` where a request-level p exists;
* **minimum effect**: the relative change reaches ``min_effect`` within the
  uncertainty of its estimate, ``change >= min_effect - 2 x spread``, where a
  confirming night uses the mean change of last night and tonight (spread /
  sqrt 2). A hard cut at exactly ``min_effect`` would miss half of all
  changes of exactly that size; a change measured precisely below it (a
  significant 2% on a quiet metric) still gives no row.

Verdict: ``regression`` (``improvement`` for the good direction) when last
night was flagged in the same direction (persistence, PyTorch-dashboard
style: one slow night is usually a bad node, two are usually the code) or
when the change is overwhelming (at least ``overwhelming`` relative change,
``|z| >= 2 z`` and ``p <= p**2``); ``suspicious`` otherwise. Nothing notable:
no finding. "Last night" is the newest baseline night: the caller passes the
previous ok run's findings as ``previous`` and that run as ``baseline[-1]``.

On the simulated histories of ``benchmarks/detector_eval.py --single`` this
catches ~84% of 5% steps and ~100% of 10% steps by the second bad night at
~0.4 false regressions per 1000 config-nights. Judged with the rest of its
campaign (:mod:`bench.stats.campaign`: common shifts taken out, a same-night
confirm run) a 5% step is confirmed on its first night ~92% of the time; see
docs/performance.md for the figures against the anchor rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
from scipy import stats

from bench.errors import ConfigError
from bench.stats.robust import Location, median, median_inflation, median_sd
from bench.stats.thresholds import (
    SUMMARY_THRESHOLD,
    Threshold,
    default_threshold,
    parse_thresholds,
)
from bench.stats.types import (
    KEY_METRICS,
    METRICS,
    Direction,
    Finding,
    MetricSpec,
    Night,
    Verdict,
    nights_values,
)

#: Fewer usable baseline nights than this: no verdict (the spread is unknowable).
MIN_BASELINE = 5
#: Default baseline length (nights).
DEFAULT_K = 14
#: Relative floor of the night-level spread (log units, 0.1%).
SPREAD_FLOOR = 1e-3
#: The minimum-effect test allows this many spreads of estimation error.
EFFECT_BAND = 2.0
#: The spread is at least this fraction of min_effect (see the module docstring).
SPREAD_PER_EFFECT = 0.3

T = TypeVar("T")


@dataclass(frozen=True)
class Evidence:
    """One way of comparing tonight with the baseline, on the log scale."""

    source: str  # "requests" or "summary"
    shift: float  # log(tonight / baseline level)
    spread: float  # standard deviation of ``shift`` under no change
    p_value: float | None
    nights: int
    last_shift: float | None  # the newest baseline night's shift against the same level

    @property
    def z(self) -> float:
        return self.shift / self.spread

    def effect(self, confirming: bool) -> tuple[float, float]:
        """Relative change and its standard error: tonight's, or tonight's and
        last night's averaged when confirming a change seen last night too."""
        change = abs(math.expm1(self.shift))
        if confirming and self.last_shift is not None and self.last_shift * self.shift > 0:
            both = (change + abs(math.expm1(self.last_shift))) / 2.0
            return both, self.spread / math.sqrt(2.0)
        return change, self.spread


def baseline_window(
    history: Sequence[T], k: int = DEFAULT_K, changepoints: Iterable[int] = ()
) -> list[T]:
    """The last ``k`` entries of ``history`` (oldest first) after its last change point.

    ``changepoints`` are indices into ``history`` of the first night of a new
    level (as :func:`bench.stats.changepoints.find_changepoints` returns
    them): nights before a change measure a different system and must not
    dilute the baseline of the nights after it.
    """
    if k < 1:
        raise ConfigError(f"baseline length must be >= 1, got {k}")
    start = max((c for c in changepoints if 0 <= c <= len(history)), default=0)
    return list(history[max(start, len(history) - k) :])


def _mann_whitney_median_p(
    tonight: np.ndarray, nights: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Median two-sided p and median common-language effect (P(tonight > night) - 1/2)."""
    lengths = {a.size for a in nights}
    if len(lengths) == 1:
        res = stats.mannwhitneyu(tonight[None, :], np.vstack(nights), axis=1, method="asymptotic")
        p, u = np.asarray(res.pvalue), np.asarray(res.statistic)
        sizes = np.full(len(nights), float(next(iter(lengths))))
    else:
        pairs = [stats.mannwhitneyu(tonight, a, method="asymptotic") for a in nights]
        p = np.array([r.pvalue for r in pairs])
        u = np.array([r.statistic for r in pairs])
        sizes = np.array([a.size for a in nights], dtype=np.float64)
    effect = u / (tonight.size * sizes) - 0.5
    p = np.where(np.isfinite(p), p, 1.0)  # a degenerate test is no evidence
    return float(np.median(p)), float(np.median(effect))


def request_evidence(
    distribution: str,
    current: Night,
    baseline: Sequence[Night],
    *,
    min_z: float = 0.0,
    last: Night | None = None,
) -> Evidence | None:
    """Night-level z and request-level p from the per-request values of ``distribution``.

    None when tonight or fewer than :data:`MIN_BASELINE` baseline nights carry
    enough of those values. The rank tests (the costly part) are skipped when
    ``|z| < min_z``: such evidence cannot be notable under any threshold of
    at least ``min_z``, and its ``p_value`` is then None. ``last`` is the run
    a confirmation is judged together with (default: the newest baseline
    night; a same-night confirm run passes the campaign's run).
    """
    tonight, here = current.sample(distribution)
    if here is None:
        return None
    samples: list[np.ndarray] = []
    locations: list[Location] = []
    for night in baseline:
        values, loc = night.sample(distribution)
        if loc is not None:
            samples.append(values)
            locations.append(loc)
    if len(locations) < MIN_BASELINE:
        return None
    centers = np.array([loc.center for loc in locations])
    level, spread = median_sd(centers)
    sampling = math.sqrt(max(here.se**2, median(np.array([loc.se**2 for loc in locations]))))
    spread = max(spread, sampling, SPREAD_FLOOR) * median_inflation(len(locations))
    shift = here.center - level
    last_loc = (last or baseline[-1]).sample(distribution)[1]
    last_shift = None if last_loc is None else last_loc.center - level
    if abs(shift) < min_z * spread:
        return Evidence("requests", shift, spread, None, len(locations), last_shift)
    p, effect = _mann_whitney_median_p(tonight, samples)
    if effect != 0 and np.sign(effect) != np.sign(shift):
        p = 1.0  # the ranks disagree with the location: no consistent request-level shift
    return Evidence("requests", shift, spread, p, len(locations), last_shift)


def summary_evidence(
    metric: str, current: Night, baseline: Sequence[Night], *, last: Night | None = None
) -> Evidence | None:
    """Robust z of tonight's nightly value of ``metric`` (log scale), no p-value."""
    value = current.value(metric)
    history = nights_values(baseline, metric)
    if value is None or history.size < MIN_BASELINE:
        return None
    level, spread = median_sd(np.log(history))
    spread = max(spread, SPREAD_FLOOR) * median_inflation(history.size)
    newest = (last or baseline[-1]).value(metric)
    last_shift = None if newest is None else math.log(newest) - level
    return Evidence("summary", math.log(value) - level, spread, None, int(history.size), last_shift)


def _notable(ev: Evidence, threshold: Threshold, confirming: bool) -> bool:
    z_needed = threshold.z_confirm if confirming else threshold.z
    if abs(ev.z) < z_needed:
        return False
    if ev.p_value is not None and ev.p_value > threshold.p:
        return False
    change, se = ev.effect(confirming)
    return change >= threshold.min_effect - EFFECT_BAND * se


def _overwhelming(ev: Evidence, threshold: Threshold) -> bool:
    return (
        abs(math.expm1(ev.shift)) >= threshold.overwhelming
        and abs(ev.z) >= 2 * threshold.z
        and (ev.p_value is None or ev.p_value <= threshold.p**2)
    )


def _judge(
    spec: MetricSpec, ev: Evidence, previous: Finding | None, threshold: Threshold
) -> tuple[Verdict, Direction, str] | None:
    direction = spec.direction(ev.shift)
    confirming = previous is not None and previous.direction == direction
    if not _notable(ev, threshold, confirming):
        return None
    what = {
        "requests": f"{spec.distribution} per-request level {math.expm1(ev.shift):+.1%}",
        "proxy": f"{math.expm1(ev.shift):+.1%} from the {spec.proxy} per-request level",
    }.get(ev.source, f"nightly value {math.expm1(ev.shift):+.1%}")
    p_text = "" if ev.p_value is None else f", median p {ev.p_value:.1e}"
    evidence = f"{what} vs {ev.nights} nights (robust z {ev.z:+.1f}{p_text})"
    if confirming:
        assert previous is not None
        why = f"{evidence}; also flagged last night ({previous.verdict})"
    elif _overwhelming(ev, threshold):
        why = f"{evidence}; overwhelming on the first night"
    else:
        flagged: Verdict = "suspicious"
        return flagged, direction, f"{evidence}; first night, suspicious until it persists"
    verdict: Verdict = "regression" if direction == "worse" else "improvement"
    return verdict, direction, why


def _assess(
    spec: MetricSpec,
    current: Night,
    baseline: Sequence[Night],
    previous: Finding | None,
    threshold: Threshold,
    requests: Evidence | None,
    last: Night | None = None,
) -> Finding | None:
    value = current.value(spec.name)
    history = nights_values(baseline, spec.name)
    if value is None or history.size == 0:
        return None
    level = median(history)
    evidence = requests
    if evidence is not None and spec.proxy is not None:
        evidence = _inverse(evidence, math.log(value / level))
    if evidence is None and not spec.tail:
        evidence = summary_evidence(spec.name, current, baseline, last=last)
        if spec.proxy is not None:  # the nightly value alone: the stricter z of such metrics
            threshold = replace(
                threshold,
                z=max(threshold.z, SUMMARY_THRESHOLD.z),
                z_confirm=max(threshold.z_confirm, SUMMARY_THRESHOLD.z_confirm),
            )
    if evidence is None:
        return None
    ev = replace(evidence, spread=max(evidence.spread, SPREAD_PER_EFFECT * threshold.min_effect))
    judged = _judge(spec, ev, previous, threshold)
    if judged is None:
        return None
    verdict, direction, reason = judged
    return Finding(
        metric=spec.name,
        baseline=level,
        current=value,
        change_pct=100.0 * (value / level - 1.0),
        p_value=ev.p_value,
        z=ev.z,
        verdict=verdict,
        direction=direction,
        reason=reason,
        shift_pct=100.0 * math.expm1(ev.shift) if ev.source == "requests" else None,
    )


def _inverse(ev: Evidence, nightly: float) -> Evidence | None:
    """Evidence from a proxy's per-request values, sign reversed; None when the
    nightly value moved the other way (then the nightly value alone decides)."""
    if ev.shift * nightly >= 0:
        return None
    last = None if ev.last_shift is None else -ev.last_shift
    return replace(ev, source="proxy", shift=-ev.shift, last_shift=last)


def _evidence_source(spec: MetricSpec) -> str | None:
    return spec.distribution or spec.proxy


def _spec(metric: str) -> MetricSpec:
    spec = METRICS.get(metric)
    if spec is None:
        raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return spec


def assess(
    metric: str,
    current: Night,
    baseline: Sequence[Night],
    *,
    previous: Finding | None = None,
    threshold: Threshold | None = None,
    last: Night | None = None,
) -> Finding | None:
    """Tonight's finding for one metric, or None when nothing is notable.

    ``baseline`` holds the comparison nights, oldest first (the caller's
    selection; see :func:`baseline_window`); ``previous`` is last night's
    finding for this metric, if any (:meth:`Finding.from_row` rebuilds it
    from the table). ``last`` is the run ``previous`` was found on when it
    is not the newest baseline night: a same-night confirm run is judged
    with the campaign's run as ``previous`` and ``last``.
    """
    spec = _spec(metric)
    threshold = threshold or default_threshold(metric)
    dist = _evidence_source(spec)
    requests = (
        request_evidence(dist, current, baseline, min_z=_lowest_z(threshold), last=last)
        if dist
        else None
    )
    return _assess(spec, current, baseline, previous, threshold, requests, last)


def _lowest_z(threshold: Threshold) -> float:
    return min(threshold.z, threshold.z_confirm)


def detect(
    current: Night,
    baseline: Sequence[Night],
    *,
    previous: Iterable[Finding] = (),
    thresholds: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
) -> tuple[Finding, ...]:
    """Every key metric's finding for tonight's run (see :func:`assess`).

    ``thresholds`` is a campaign's raw ``thresholds:`` mapping or the result
    of :func:`~bench.stats.thresholds.parse_thresholds` (validated either
    way: a bad name raises :class:`~bench.errors.ConfigError`); ``metrics`` limits
    the metrics examined (default: all of :data:`KEY_METRICS`).
    """
    limits = parse_thresholds(thresholds)
    names = [m.name for m in KEY_METRICS] if metrics is None else list(metrics)
    specs = [_spec(name) for name in names]
    min_z = min((_lowest_z(limits[name]) for name in names), default=0.0)
    last = {f.metric: f for f in previous}
    per_distribution: dict[str, Evidence | None] = {}
    findings: list[Finding] = []
    for spec in specs:
        name = spec.name
        requests = None
        dist = _evidence_source(spec)
        if dist is not None:
            if dist not in per_distribution:
                per_distribution[dist] = request_evidence(dist, current, baseline, min_z=min_z)
            requests = per_distribution[dist]
        finding = _assess(spec, current, baseline, last.get(name), limits[name], requests)
        if finding is not None:
            findings.append(finding)
    return tuple(findings)
