"""The anchor rules do what the tools they stand for do."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from bench.stats import ANCHORS, bencher_t_test, conbench_z, fixed_ratio, two_consecutive

FLAT = [100.0] * 13 + [100.0]
NOISY = [
    98.0,
    102.0,
    100.0,
    99.0,
    101.0,
    100.0,
    97.0,
    103.0,
    100.0,
    100.0,
    99.0,
    101.0,
    98.0,
    102.0,
]


def test_fixed_ratio_is_five_percent_of_the_mean_either_way() -> None:
    assert fixed_ratio(FLAT, 105.5, "lower").verdict == "regression"
    assert fixed_ratio(FLAT, 104.5, "lower").verdict is None
    assert fixed_ratio(FLAT, 94.0, "lower").verdict == "improvement"
    # throughput: below 0.95 x baseline is the optimum-habana failure
    assert fixed_ratio(FLAT, 94.0, "higher").verdict == "regression"
    call = fixed_ratio(FLAT, 94.0, "higher")
    assert call.score == pytest.approx(0.06) and call.limit == 0.05


def test_conbench_z_uses_mean_and_sd_of_the_lookback() -> None:
    mean, sd = sum(NOISY) / len(NOISY), stats.tstd(NOISY)
    tonight = mean + 5.5 * sd
    call = conbench_z(NOISY, tonight, "lower")
    assert call.verdict == "regression" and call.score == pytest.approx(5.5)
    assert conbench_z(NOISY, mean + 4.5 * sd, "lower").verdict is None
    assert conbench_z(NOISY, mean - 5.5 * sd, "higher").verdict == "regression"
    assert conbench_z(FLAT, 100.0, "lower").verdict is None
    assert conbench_z(FLAT, 100.1, "lower").score == math.inf


def test_two_consecutive_needs_last_night_to_violate_too() -> None:
    assert two_consecutive(FLAT, 110.0, "lower").verdict is None  # first violation
    last_bad = [*FLAT[:-1], 110.0]
    assert two_consecutive(last_bad, 108.0, "lower").verdict == "regression"
    assert two_consecutive(last_bad, 104.0, "lower").verdict is None  # tonight within 5%
    assert two_consecutive(last_bad, 90.0, "lower").verdict is None  # opposite ways
    # the score is the smaller violation: tonight's, against a mean that includes last night
    tonight = 108.0 / (sum(last_bad) / len(last_bad)) - 1
    assert two_consecutive(last_bad, 108.0, "lower").score == pytest.approx(tonight)


def test_bencher_t_test_limit_is_the_t_quantile() -> None:
    mean, sd = sum(NOISY) / len(NOISY), stats.tstd(NOISY)
    t99 = stats.t.ppf(0.99, len(NOISY) - 1)
    assert bencher_t_test(NOISY, mean + 1.01 * t99 * sd, "lower").verdict == "regression"
    assert bencher_t_test(NOISY, mean + 0.99 * t99 * sd, "lower").verdict is None
    assert bencher_t_test(NOISY, mean - 1.01 * t99 * sd, "higher").verdict == "regression"
    assert bencher_t_test(NOISY, 1.0, "lower").limit == pytest.approx(t99)
    assert bencher_t_test([100.0], 200.0, "lower").verdict is None


def test_registry_lists_every_rule() -> None:
    assert list(ANCHORS) == ["fixed 5%", "conbench z>5", "2 consecutive", "bencher t-test"]
    for name, rule in ANCHORS.items():
        assert rule(NOISY, 100.0, "lower").rule == name
