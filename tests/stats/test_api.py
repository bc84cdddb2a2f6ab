"""The public names of ``bench.stats``: what the store, CLI and DAG import."""

from __future__ import annotations

import bench.stats


def test_public_names_are_pinned() -> None:
    assert sorted(bench.stats.__all__) == sorted(
        [
            "ANCHORS",
            "DEFAULT_K",
            "DEFAULT_THRESHOLD",
            "KEY_METRICS",
            "METRICS",
            "MIN_BASELINE",
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
    )
    for name in bench.stats.__all__:
        assert hasattr(bench.stats, name), name


def test_key_metrics_match_the_results_schema() -> None:
    """The gate watches run_summary columns (DESIGN.md), with the right direction."""
    better = {m.name: m.better for m in bench.stats.KEY_METRICS}
    assert better == {
        "ttft_p50_ms": "lower",
        "ttft_p99_ms": "lower",
        "tpot_p50_ms": "lower",
        "tpot_p99_ms": "lower",
        "itl_p99_ms": "lower",
        "e2e_p99_ms": "lower",
        "output_tokens_per_s": "higher",
        "peak_memory_bytes": "lower",
        "energy_j_per_token": "lower",
    }
