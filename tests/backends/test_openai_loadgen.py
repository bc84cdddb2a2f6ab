"""Arrival schedules: Poisson at the requested rate, gamma burstiness, seeding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.backends.openai.loadgen import LoadShape, arrival_offsets, expected_gap_cv
from bench.errors import ConfigError


def test_poisson_gaps_are_exponential_at_the_requested_rate() -> None:
    rate = 8.0
    offsets = arrival_offsets(2000, rate, seed=7)
    gaps = np.diff(offsets)
    assert offsets[0] == 0.0 and len(offsets) == 2000
    assert np.all(gaps >= 0)
    # Kolmogorov-Smirnov against Exp(rate): a wrong rate (or distribution) fails.
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 0.01
    assert stats.kstest(gaps, "expon", args=(0, 1 / (1.3 * rate))).pvalue < 1e-6
    assert np.mean(gaps) == pytest.approx(1 / rate, rel=0.06)
    assert len(offsets) / offsets[-1] == pytest.approx(rate, rel=0.06)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_burstiness_sets_the_coefficient_of_variation(burstiness: float) -> None:
    gaps = np.diff(arrival_offsets(4000, 5.0, burstiness=burstiness, seed=3))
    cv = np.std(gaps) / np.mean(gaps)
    assert cv == pytest.approx(expected_gap_cv(burstiness), rel=0.1)
    assert np.mean(gaps) == pytest.approx(0.2, rel=0.08)  # the rate does not depend on burstiness
    assert stats.kstest(gaps, "gamma", args=(burstiness, 0, 1 / (5.0 * burstiness))).pvalue > 0.01


def test_burstier_means_higher_cv() -> None:
    cvs = []
    for b in (0.2, 0.5, 1.0, 2.0, 8.0):
        gaps = np.diff(arrival_offsets(3000, 10.0, burstiness=b, seed=1))
        cvs.append(np.std(gaps) / np.mean(gaps))
    assert cvs == sorted(cvs, reverse=True)


def test_schedules_are_seeded() -> None:
    a = arrival_offsets(100, 3.0, seed=11)
    assert np.array_equal(a, arrival_offsets(100, 3.0, seed=11))
    assert not np.array_equal(a, arrival_offsets(100, 3.0, seed=12))
    assert len(arrival_offsets(0, 3.0)) == 0
    assert list(arrival_offsets(1, 3.0)) == [0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 0.0}, "request rate"),
        ({"rate": float("inf")}, "request rate"),
        ({"rate": 1.0, "burstiness": 0.0}, "burstiness"),
        ({"rate": 1.0, "n": -1}, "arrivals"),
    ],
)
def test_bad_schedule_input_is_a_config_error(kwargs: dict, match: str) -> None:
    n = kwargs.pop("n", 10)
    with pytest.raises(ConfigError, match=match):
        arrival_offsets(n, **kwargs)


def test_load_shape() -> None:
    closed = LoadShape(concurrency=4)
    assert not closed.open_loop and closed.in_flight_limit == 4
    assert closed.describe() == "closed loop, concurrency 4"
    with pytest.raises(ConfigError, match="closed-loop"):
        closed.schedule(3)
    shaped = LoadShape(
        request_rate=2.0, burstiness=0.5, max_concurrency=8, max_duration_s=30, seed=5
    )
    assert shaped.open_loop and shaped.in_flight_limit == 8
    assert np.array_equal(shaped.schedule(50), arrival_offsets(50, 2.0, burstiness=0.5, seed=5))
    assert shaped.describe() == (
        "open loop, 2 req/s (gamma burstiness 0.5), at most 8 in flight, issuing for at most 30 s"
    )
    assert LoadShape(request_rate=1.5).describe() == "open loop, 1.5 req/s (Poisson)"
    assert LoadShape(request_rate=1.5).in_flight_limit is None
    for bad in (
        {"concurrency": 0},
        {"max_concurrency": 0},
        {"request_rate": -1.0},
        {"max_duration_s": 0},
    ):
        with pytest.raises(ConfigError):
            LoadShape(**bad)  # type: ignore[arg-type]
