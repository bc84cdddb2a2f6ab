"""Regression statistics: the nightly gate, change points, anchor rules.

Pure functions over plain data (:class:`Night` in, :class:`Finding` /
:class:`ChangePoint` out); the results database only feeds them. Public
names are re-exported here and pinned by ``tests/stats/test_api.py``.
"""

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
