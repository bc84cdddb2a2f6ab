"""bench compare's statistics on fixtures: intervals that cover what they should."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.stats.compare import Statistic, bootstrap, compare, statistic_of


def runs(rng: np.random.Generator, level: float, n_runs: int = 1, n: int = 200, cv: float = 0.05,
         night_sd: float = 0.0) -> list[np.ndarray]:  # fmt: skip
    return [level * rng.lognormal(rng.normal(0, night_sd), cv, n) for _ in range(n_runs)]


def test_statistic_of_a_metric_name() -> None:
    assert statistic_of("ttft_p50_ms") == Statistic("ttft", 0.5)
    assert statistic_of("itl_p99_ms") == Statistic("itl", 0.99)
    assert statistic_of("e2e_mean_ms") == Statistic("e2e", None)
    assert statistic_of("output_tokens_per_s") == Statistic(None, 0.5)


def test_a_ten_percent_shift_is_outside_the_interval_and_no_shift_inside() -> None:
    rng = np.random.default_rng(0)
    a, b_same, b_slow = runs(rng, 100.0), runs(rng, 100.0), runs(rng, 110.0)
    med = statistic_of("ttft_p50_ms")
    slow = compare(a, b_slow, med, "lower")
    same = compare(a, b_same, med, "lower")
    assert slow is not None and same is not None
    assert slow.verdict == "slower" and slow.ci_low_pct > 0 and 5 < slow.change_pct < 15
    assert slow.ci_low_pct < slow.change_pct < slow.ci_high_pct
    assert slow.p_value is not None and slow.p_value < 1e-6
    assert same.verdict == "no change" and same.ci_low_pct < 0 < same.ci_high_pct
    faster = compare(a, b_slow, Statistic(None, 0.5), "higher")  # as if a throughput rose 10%
    assert faster is not None and faster.verdict == "faster"
    worse = compare(a, b_slow, med, "lower", speed=False)
    assert worse is not None and worse.verdict == "worse"


def test_the_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    med = statistic_of("ttft_p50_ms")
    hits = 0
    trials = 200
    for seed in range(trials):
        c = compare(runs(rng, 100.0, n=150), runs(rng, 104.0, n=150), med, "lower", seed=seed,
                    resamples=1000)  # fmt: skip
        assert c is not None
        hits += c.ci_low_pct <= 4.0 <= c.ci_high_pct
    assert 0.90 <= hits / trials <= 0.99


def test_several_runs_a_side_widen_the_interval_by_their_night_noise() -> None:
    rng = np.random.default_rng(2)
    med = statistic_of("ttft_p50_ms")
    a = runs(rng, 100.0, n_runs=7, night_sd=0.02)
    b = runs(rng, 100.0, n_runs=7, night_sd=0.02)
    two_level = compare(a, b, med, "lower")
    pooled = compare([np.concatenate(a)], [np.concatenate(b)], med, "lower")
    assert two_level is not None and pooled is not None
    width = two_level.ci_high_pct - two_level.ci_low_pct
    assert width > 1.5 * (pooled.ci_high_pct - pooled.ci_low_pct)  # nights are not requests
    assert two_level.runs_a == 7 and two_level.n_a == 7 * 200


def test_seeded() -> None:
    rng = np.random.default_rng(3)
    a, b = runs(rng, 100.0, n_runs=14, n=500), runs(rng, 101.0, n_runs=14, n=500)
    med = statistic_of("ttft_p99_ms")
    assert compare(a, b, med, "lower", seed=7) == compare(a, b, med, "lower", seed=7)
    assert compare(a, b, med, "lower", seed=7) != compare(a, b, med, "lower", seed=8)
    boots = bootstrap([np.arange(1.0, 11.0)], Statistic(None, None), np.random.default_rng(0), 500)
    assert boots.shape == (500,) and 3.0 < boots.mean() < 8.0


def test_one_run_value_a_side_has_no_interval() -> None:
    c = compare([np.array([100.0])], [np.array([90.0])], Statistic(None, 0.5), "higher")
    assert c is not None and c.verdict == "n/a" and math.isnan(c.ci_low_pct)
    assert c.change_pct == pytest.approx(-10.0)
    assert compare([np.array([])], [np.array([1.0])], Statistic(None, 0.5), "higher") is None
    with pytest.raises(ConfigError, match="resamples"):
        compare([np.ones(3)], [np.ones(3)], Statistic(None, 0.5), "higher", resamples=10)
