"""The vocabulary of the regression statistics: metrics, nights, findings.

Everything here is plain frozen data. The database (or a simulation, or a
CSV fixture) fills :class:`Night` objects; the detector returns
:class:`Finding` objects whose fields are the columns of the ``regression``
table (``run_id`` is added by the caller, see :meth:`Finding.as_row`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from bench.stats.robust import Location, log_location, usable

Better = Literal["lower", "higher"]
Direction = Literal["worse", "better"]
Verdict = Literal["regression", "suspicious", "improvement"]
VERDICTS: tuple[Verdict, ...] = ("regression", "suspicious", "improvement")
#: Every verdict the gate stores (table ``verdict``), in the order they are
#: listed: the detector's, output drift, and those about a host or a campaign.
STORED_VERDICTS: tuple[str, ...] = ("regression", "output_changed", "suspicious", "improvement",
                                    "host_anomaly", "campaign_shift")  # fmt: skip
#: What ``bench regressions`` and the Benchmarks page list by default: a run got worse.
DEFAULT_VERDICTS: tuple[str, ...] = ("regression", "output_changed")

#: Per-request distributions a night may carry (``request_result`` columns).
DISTRIBUTIONS: tuple[str, ...] = ("ttft", "tpot", "itl", "e2e")


@dataclass(frozen=True)
class MetricSpec:
    """A nightly metric the gate watches.

    ``distribution`` names the per-request values the metric summarises
    (None for run-level metrics such as throughput). ``tail`` marks a high
    percentile: judged only through its per-request values, never on its
    nightly value alone, because the p99 of 64-200 requests rests on the one
    or two slowest and swings by tens of percent whenever a straggler or two
    land in the sample (the evaluation's simulated p99 series show exactly
    that), so a gate on it would cry wolf every week. ``proxy`` names the
    per-request values a run-level metric is made of, inversely: throughput
    is output tokens over the requests' end-to-end times, so their level
    (trimmed, immune to the one straggler that moves a nightly sum by 1-2%)
    is its evidence whenever the nightly value moved the same way; a loss
    outside the requests (gaps between batches) still shows in the nightly
    value, which stays the fallback.
    """

    name: str
    better: Better
    distribution: str | None = None
    tail: bool = False
    proxy: str | None = None
    #: for a fraction that may be 0 (agreement): the value 0 is judged as this,
    #: so a fall to 0 stays visible on the gate's log scale
    zero: float | None = None

    def direction(self, signed_change: float) -> Direction:
        """``worse`` or ``better`` for a signed change of this metric."""
        up_is_worse = self.better == "lower"
        return "worse" if (signed_change > 0) == up_is_worse else "better"


#: The key metrics of the nightly gate, in report order.
KEY_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("ttft_p50_ms", "lower", "ttft"),
    MetricSpec("ttft_p99_ms", "lower", "ttft", tail=True),
    MetricSpec("tpot_p50_ms", "lower", "tpot"),
    MetricSpec("tpot_p99_ms", "lower", "tpot", tail=True),
    MetricSpec("itl_p99_ms", "lower", "itl", tail=True),
    MetricSpec("e2e_p99_ms", "lower", "e2e", tail=True),
    MetricSpec("output_tokens_per_s", "higher", proxy="e2e"),
    MetricSpec("peak_memory_bytes", "lower"),
    MetricSpec("energy_j_per_token", "lower"),
)
#: What the runs generated against the campaign's reference precision (README
#: "Outputs"): judged per configuration on the nightly value, higher is
#: better. Not key metrics: they carry no night noise a campaign shares, so
#: the campaign-level common mode has nothing to take out of them.
OUTPUT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("output_exact_match", "higher", zero=1e-3),
    MetricSpec("output_prefix_match", "higher", zero=1e-3),
)
METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    {m.name: m for m in (*KEY_METRICS, *OUTPUT_METRICS)}
)


def _frozen_arrays(requests: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, values in requests.items():
        if name not in DISTRIBUTIONS:
            raise ValueError(f"unknown per-request distribution {name!r}; known: {DISTRIBUTIONS}")
        arr = np.array(values, dtype=np.float64).ravel()
        arr.setflags(write=False)
        out[name] = arr
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class Night:
    """One ok run of a configuration, as the statistics see it.

    ``summary`` maps ``run_summary`` column names to values (None = not
    measured). ``requests`` maps a distribution name (``ttft``, ``tpot``,
    ``itl``, ``e2e``) to that run's per-request values in ms; for ``itl``
    every gap of every request. Both may be partial. Nights compare by
    identity (numpy arrays have no single-valued equality).
    """

    summary: Mapping[str, float | None]
    requests: Mapping[str, np.ndarray] = field(default_factory=dict)
    label: str = ""
    _samples: dict[str, tuple[np.ndarray, Location | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", MappingProxyType(dict(self.summary)))
        object.__setattr__(self, "requests", _frozen_arrays(self.requests))

    def sample(self, distribution: str) -> tuple[np.ndarray, Location | None]:
        """Usable per-request values of ``distribution`` and their log location.

        Computed once per night: a night sits in K baseline windows.
        """
        if distribution not in self._samples:
            raw = self.requests.get(distribution)
            values = usable(raw) if raw is not None else np.empty(0)
            self._samples[distribution] = (values, log_location(values) if values.size else None)
        return self._samples[distribution]

    def scaled(self, factors: Mapping[str, float]) -> Night:
        """This night with values multiplied by ``factors``.

        A key is a per-request distribution (``ttft``...: its requests, and
        the metrics summarising it unless they have a key of their own) or a
        metric name (its nightly value). A metric judged through a proxy
        distribution (throughput through ``e2e``) without a key of its own
        moves against it. Used to take a campaign's common shift out of a
        night (:mod:`bench.stats.campaign`). Locations already computed carry
        over, shifted by ``log(factor)``: scaling commutes with the trimmed
        mean of logs.
        """
        requests = {d: v * factors.get(d, 1.0) for d, v in self.requests.items()}
        summary = {
            m: v if v is None or m not in METRICS else float(v) * _factor(m, factors)
            for m, v in self.summary.items()
        }
        night = Night(summary=summary, requests=requests, label=self.label)
        for name, (values, loc) in self._samples.items():
            f = factors.get(name, 1.0)
            moved = None if loc is None else Location(loc.center + math.log(f), loc.se, loc.n)
            night._samples[name] = (values * f, moved)
        return night

    def value(self, metric: str) -> float | None:
        """The metric's finite positive value, else None (the gate works on logs);
        0 of a metric with a ``zero`` stand-in is that stand-in."""
        raw = self.summary.get(metric)
        if raw is None:
            return None
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            return None
        if value == 0:
            spec = METRICS.get(metric)
            return spec.zero if spec is not None else None
        return value


@dataclass(frozen=True)
class Finding:
    """A notable change of one metric in one run (one ``regression`` row).

    ``baseline`` is the median of the baseline nights' values, ``change_pct``
    the signed change of ``current`` against it in percent. ``z`` and
    ``p_value`` are the evidence the verdict rests on (``p_value`` is None when
    no per-request values took part); ``shift_pct`` is the shift of the
    per-request distribution when that was the evidence. ``reason`` says in
    one line why this verdict.
    """

    metric: str
    baseline: float
    current: float
    change_pct: float
    p_value: float | None
    z: float
    verdict: Verdict
    direction: Direction
    reason: str
    shift_pct: float | None = None

    def as_row(self, run_id: int) -> dict[str, Any]:
        """The ``regression`` table row (DESIGN.md columns)."""
        return {
            "run_id": run_id,
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "change_pct": self.change_pct,
            "p_value": self.p_value,
            "verdict": self.verdict,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Finding:
        """Rebuild a stored finding (last night's, to confirm tonight's).

        The table does not keep ``z`` or ``reason``; the direction follows from
        the metric and the sign of ``change_pct``.
        """
        metric = str(row["metric"])
        spec = METRICS.get(metric)
        if spec is None:
            raise ValueError(f"unknown metric {metric!r} in a regression row")
        verdict = str(row["verdict"])
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r} in a regression row")
        change = float(row["change_pct"])
        p = row.get("p_value")
        return cls(
            metric=metric,
            baseline=float(row["baseline"]),
            current=float(row["current"]),
            change_pct=change,
            p_value=None if p is None else float(p),
            z=math.nan,
            verdict=verdict,
            direction=spec.direction(change),
            reason=str(row.get("reason") or "stored finding"),
        )


def source(metric: str) -> str:
    """Where a key metric's evidence comes from: its distribution (or proxy), else itself."""
    spec = METRICS[metric]
    return spec.distribution or spec.proxy or spec.name


def _factor(metric: str, factors: Mapping[str, float]) -> float:
    """How a metric's nightly value scales: its own factor, else its source's."""
    if metric in factors:
        return factors[metric]
    f = factors.get(source(metric), 1.0)
    return 1.0 / f if METRICS[metric].proxy else f


def nights_values(nights: Sequence[Night], metric: str) -> np.ndarray:
    """The finite positive values of ``metric`` over ``nights`` (missing ones dropped)."""
    values = [v for v in (n.value(metric) for n in nights) if v is not None]
    return np.asarray(values, dtype=np.float64)
