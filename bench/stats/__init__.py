"""Regression statistics: the nightly gate, change points, anchor rules.

Pure functions over plain data (:class:`Night` in, :class:`Finding` /
:class:`ChangePoint` out); the results database only feeds them. Public
names are re-exported here and pinned by ``tests/stats/test_api.py``.
The gate, change points and anchor rules load lazily (PEP 562): checking a
campaign's thresholds (the ``plan`` task) must not pay for importing scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bench.stats.thresholds import DEFAULT_THRESHOLD, Threshold, parse_thresholds
from bench.stats.types import (
    KEY_METRICS,
    METRICS,
    OUTPUT_METRICS,
    Better,
    Direction,
    Finding,
    MetricSpec,
    Night,
    Verdict,
)

if TYPE_CHECKING:
    from bench.stats.anchors import (
        ANCHORS,
        AnchorCall,
        bencher_t_test,
        conbench_z,
        fixed_ratio,
        two_consecutive,
    )
    from bench.stats.changepoints import ChangePoint, find_changepoints
    from bench.stats.detector import DEFAULT_K, MIN_BASELINE, assess, baseline_window, detect

#: lazily loaded name -> module that defines it
_LAZY = {
    **dict.fromkeys(
        ("ANCHORS", "AnchorCall", "bencher_t_test", "conbench_z", "fixed_ratio", "two_consecutive"),
        "bench.stats.anchors",
    ),
    **dict.fromkeys(("ChangePoint", "find_changepoints"), "bench.stats.changepoints"),
    **dict.fromkeys(
        ("DEFAULT_K", "MIN_BASELINE", "assess", "baseline_window", "detect"), "bench.stats.detector"
    ),
}

__all__ = [
    "ANCHORS",
    "DEFAULT_K",
    "DEFAULT_THRESHOLD",
    "KEY_METRICS",
    "METRICS",
    "MIN_BASELINE",
    "OUTPUT_METRICS",
    "AnchorCall",
    "Better",
    "ChangePoint",
    "Direction",
    "Finding",
    "MetricSpec",
    "Night",
    "Threshold",
    "Verdict",
    "assess",
    "baseline_window",
    "bencher_t_test",
    "conbench_z",
    "detect",
    "find_changepoints",
    "fixed_ratio",
    "parse_thresholds",
    "two_consecutive",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
