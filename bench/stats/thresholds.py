"""Per-metric thresholds of the nightly gate, from a campaign's ``thresholds:``.

::

    thresholds:
      default:      {min_effect: 0.05}                   # every key metric
      ttft_p99_ms:  {min_effect: 0.05, z: 4, p: 0.001}   # one metric
      peak_memory_bytes: 0.02                            # shorthand for min_effect

Unknown metric or field names and out-of-range values raise a
:class:`~bench.errors.ConfigError` naming the offending key, so a typo in a
campaign file fails before any model loads instead of silently keeping the
defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bench.errors import ConfigError
from bench.stats.types import METRICS


def _check(name: str, value: float, low: float, high: float, *, low_ok: bool = False) -> None:
    if not ((low <= value if low_ok else low < value) and value < high):
        opening = "[" if low_ok else "("
        bound = f"> {low}" if high == math.inf else f"in {opening}{low}, {high})"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class Threshold:
    """When a change of one metric is worth a row.

    * ``min_effect``  smallest relative change that matters (0.05 = 5%)
    * ``z``           robust z a first night must reach to be flagged
    * ``z_confirm``   robust z that confirms a change flagged the night before
    * ``p``           largest request-level p-value that counts as significant
    * ``overwhelming`` relative change that is a regression on its first night
      (with z >= 2 x ``z`` and p <= ``p`` squared); 0.5 = 50% worse

    The defaults differ by the kind of evidence: with per-request values the
    request-level test stands beside the z, so the z may be lower
    (:data:`DEFAULT_THRESHOLD`); a metric with only its nightly value
    (throughput, memory, energy) rests on the z alone (:data:`SUMMARY_THRESHOLD`).
    Both were chosen on the evaluation's simulated histories with a seed other
    than the one reported (``benchmarks/detector_eval.py``).
    """

    min_effect: float = 0.05
    z: float = 2.0
    z_confirm: float = 2.0
    p: float = 0.001
    overwhelming: float = 0.5

    def __post_init__(self) -> None:
        _check("min_effect", self.min_effect, 0.0, 1.0, low_ok=True)
        _check("z", self.z, 0.0, math.inf)
        _check("z_confirm", self.z_confirm, 0.0, math.inf)
        _check("p", self.p, 0.0, 1.0)
        _check("overwhelming", self.overwhelming, 0.0, math.inf)


#: Metrics judged on per-request values (TTFT, TPOT, ITL, E2E; throughput through E2E).
DEFAULT_THRESHOLD = Threshold()
#: Metrics with only a nightly value (memory, energy).
SUMMARY_THRESHOLD = Threshold(z=2.5, z_confirm=2.5)
_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Threshold))


def default_threshold(metric: str) -> Threshold:
    """The built-in threshold of a key metric (by the kind of evidence it has)."""
    spec = METRICS.get(metric)
    if spec is None:
        raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return DEFAULT_THRESHOLD if spec.distribution or spec.proxy else SUMMARY_THRESHOLD


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"thresholds.{where}: expected a number, got {value!r}")
    return float(value)


def _merge(where: str, base: Threshold, raw: Any) -> Threshold:
    if isinstance(raw, Threshold):
        return raw
    if not isinstance(raw, Mapping):
        raw = {"min_effect": raw}
    changes: dict[str, float] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise ConfigError(
                f"thresholds.{where}: unknown field {key!r}; known: {', '.join(_FIELDS)}"
            )
        changes[key] = _number(f"{where}.{key}", value)
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"thresholds.{where}: {exc}") from None


def parse_thresholds(raw: Mapping[str, Any] | None) -> Mapping[str, Threshold]:
    """Every key metric's :class:`Threshold`: built-in, then ``default``, then its own entry.

    ``raw`` is a campaign's ``thresholds:`` mapping: metric name (or
    ``default``) -> a mapping of :class:`Threshold` fields, a bare number
    meaning ``min_effect``, or a :class:`Threshold` (so parsing a parsed
    mapping returns it unchanged).
    """
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"thresholds: expected a mapping of metric -> settings, got {raw!r}")
    unknown = [str(k) for k in raw if k != "default" and k not in METRICS]
    if unknown:
        raise ConfigError(
            f"thresholds: unknown metric {unknown[0]!r}; known: default, {', '.join(METRICS)}"
        )
    out: dict[str, Threshold] = {}
    for name in METRICS:
        threshold = default_threshold(name)
        if "default" in raw:
            threshold = _merge("default", threshold, raw["default"])
        if name in raw:
            threshold = _merge(name, threshold, raw[name])
        out[name] = threshold
    return MappingProxyType(out)
