"""Retrospective change points: steps found at the right night, none in noise."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.stats import find_changepoints
from bench.stats.synthetic import History, simulate
from tests.stats.helpers import load_csv


def _p50(history: History) -> list[float]:
    return [float(v) for v in np.median(history.ttft, axis=1)]


@pytest.mark.parametrize(("seed", "step"), [(s, d) for s in range(6) for d in (0.05, 0.10)])
def test_single_step_found_at_the_right_night(seed: int, step: float) -> None:
    rng = np.random.default_rng(seed)
    night = int(rng.integers(10, 50))
    found = find_changepoints(_p50(simulate(rng, 60, step=step, step_night=night)), "lower")
    near = [c for c in found if abs(c.index - night) <= 1]
    assert len(near) == 1, found
    change = near[0]
    assert change.direction == "worse"
    assert change.change_pct == pytest.approx(100 * step, abs=2.5)
    assert change.after > change.before


@pytest.mark.parametrize("seed", range(12))
def test_no_change_point_in_noise(seed: int) -> None:
    """Realistic noise, slow outlier nights and stragglers included."""
    history = simulate(np.random.default_rng(500 + seed), 60)
    assert find_changepoints(_p50(history), "lower") == ()
    assert find_changepoints(list(history.throughput), "higher") == ()


def test_direction_follows_the_metric() -> None:
    rows = load_csv("step_8pct_night28.csv")
    ttft = find_changepoints([r["ttft_p50_ms"] for r in rows], "lower")
    tput = find_changepoints([r["output_tokens_per_s"] for r in rows], "higher")
    assert [c.index for c in ttft] == [28] and ttft[0].direction == "worse"
    assert [c.index for c in tput] == [28] and tput[0].direction == "worse"
    assert tput[0].change_pct < 0
    faster = find_changepoints([1 / r["ttft_p50_ms"] for r in rows], "lower")
    assert [(c.index, c.direction) for c in faster] == [(28, "better")]


def test_missing_nights_are_skipped_and_indices_kept() -> None:
    rows = load_csv("step_8pct_night28.csv")
    values: list[float | None] = [r["ttft_p50_ms"] for r in rows]
    values[5] = None
    values[12] = float("nan")
    values[20] = 0.0
    assert [c.index for c in find_changepoints(values, "lower")] == [28]


def test_min_effect_and_short_series() -> None:
    rows = load_csv("step_8pct_night28.csv")
    values = [r["ttft_p50_ms"] for r in rows]
    assert find_changepoints(values, "lower", min_effect=0.2) == ()
    assert find_changepoints(values[:5], "lower") == ()
    assert find_changepoints([], "lower") == ()
    with pytest.raises(ConfigError):
        find_changepoints(values, "lower", penalty=0)
