"""The nightly gate on synthetic histories with known steps (deterministic seeds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.stats import Finding, Night, assess, baseline_window, detect
from bench.stats.synthetic import NoiseModel, simulate
from tests.stats.helpers import K, load_csv, run_nightly

LATENCY = ["ttft_p50_ms", "ttft_p99_ms"]
#: Realistic noise without slow outlier nights: what "pure noise" means in these tests.
CALM = NoiseModel(outlier_night_rate=0.0)
QUIET = NoiseModel(
    request_cv=(0.02, 0.02), night_sd=(0.002, 0.002), requests=(200, 200), outlier_night_rate=0.0
)


@pytest.mark.parametrize("seed", range(8))
def test_ten_percent_ttft_step_is_suspicious_then_regression(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nights = simulate(rng, 22, step=0.10, step_night=20, model=CALM).nights()
    found = run_nightly(nights, first=18, metrics=["ttft_p50_ms"])
    assert found[18] == {} and found[19] == {}
    first, second = found[20]["ttft_p50_ms"], found[21]["ttft_p50_ms"]
    assert (first.verdict, first.direction) == ("suspicious", "worse")
    assert (second.verdict, second.direction) == ("regression", "worse")
    assert 7.0 < second.shift_pct < 13.0  # type: ignore[operator]
    assert second.p_value is not None and second.p_value < 1e-3
    assert "also flagged last night" in second.reason


def test_pure_noise_gives_no_regression() -> None:
    regressions = 0
    nights_judged = 0
    for seed in range(40):
        nights = simulate(np.random.default_rng(1000 + seed), 60, model=CALM).nights()
        for findings in run_nightly(nights).values():
            nights_judged += 1
            regressions += sum(f.verdict != "suspicious" for f in findings.values())
    assert nights_judged == 40 * (60 - K)
    assert regressions == 0


def test_overwhelming_change_is_a_regression_on_the_first_night() -> None:
    nights = simulate(np.random.default_rng(3), 21, step=1.0, step_night=20, model=CALM).nights()
    finding = assess("ttft_p50_ms", nights[20], nights[6:20])
    assert finding is not None and finding.verdict == "regression"
    assert "overwhelming" in finding.reason


def test_direction_awareness() -> None:
    """Slower requests: TTFT regression and throughput regression; faster: both improvements."""
    slower = simulate(np.random.default_rng(5), 22, step=0.15, step_night=20, model=CALM).nights()
    faster = simulate(np.random.default_rng(5), 22, step=-0.15, step_night=20, model=CALM).nights()
    metrics = ["ttft_p50_ms", "output_tokens_per_s"]
    worse = run_nightly(slower, first=20, metrics=metrics)[21]
    better = run_nightly(faster, first=20, metrics=metrics)[21]
    assert worse["ttft_p50_ms"].verdict == "regression" and worse["ttft_p50_ms"].change_pct > 0
    assert worse["output_tokens_per_s"].verdict == "regression"
    assert worse["output_tokens_per_s"].change_pct < 0  # throughput drop = regression
    assert better["ttft_p50_ms"].verdict == "improvement" and better["ttft_p50_ms"].change_pct < 0
    assert better["output_tokens_per_s"].verdict == "improvement"
    assert better["output_tokens_per_s"].change_pct > 0  # throughput rise = improvement
    # throughput is judged through the end-to-end times it is made of: a request-level p
    assert better["output_tokens_per_s"].p_value is not None
    assert "from the e2e per-request level" in better["output_tokens_per_s"].reason


def test_significant_change_below_min_effect_is_not_a_regression() -> None:
    nights = simulate(np.random.default_rng(9), 22, step=0.02, step_night=20, model=QUIET).nights()
    # the 2% shift is overwhelmingly significant at the request level ...
    from scipy.stats import mannwhitneyu

    p = mannwhitneyu(nights[21].requests["ttft"], nights[19].requests["ttft"]).pvalue
    assert p < 1e-6
    # ... but smaller than the 5% that matters: no row at all
    found = run_nightly(nights, first=20, metrics=LATENCY)
    assert found[20] == {} and found[21] == {}
    # with min_effect lowered to 1% the same data is a regression by the second night
    lowered = run_nightly(
        nights, first=20, metrics=["ttft_p50_ms"], thresholds={"default": {"min_effect": 0.01}}
    )
    assert lowered[21]["ttft_p50_ms"].verdict == "regression"


def test_persistence_requires_the_same_direction() -> None:
    nights = simulate(np.random.default_rng(4), 21, step=0.12, step_night=20, model=CALM).nights()
    tonight = assess("ttft_p50_ms", nights[20], nights[6:20])
    assert tonight is not None and tonight.verdict == "suspicious"
    opposite = dataclasses.replace(tonight, change_pct=-tonight.change_pct, direction="better")
    assert (
        assess("ttft_p50_ms", nights[20], nights[6:20], previous=opposite).verdict == "suspicious"
    )  # type: ignore[union-attr]
    stored = Finding.from_row(tonight.as_row(run_id=41))  # what the DB gives back
    assert assess("ttft_p50_ms", nights[20], nights[6:20], previous=stored).verdict == "regression"  # type: ignore[union-attr]


def test_summary_only_nights_use_the_robust_z() -> None:
    """No per-request values (e.g. loaded from summaries): the nightly values decide alone."""
    rows = load_csv("step_8pct_night28.csv")
    nights = [Night(summary={k: v for k, v in r.items() if k != "night"}) for r in rows]
    found = run_nightly(nights, metrics=["ttft_p50_ms", "output_tokens_per_s"])
    flagged = {
        t
        for t, f in found.items()
        if f.get("ttft_p50_ms", None) and f["ttft_p50_ms"].verdict == "regression"
    }
    assert flagged and min(flagged) in (28, 29)
    assert all(f.p_value is None for per_night in found.values() for f in per_night.values())
    noise = [
        Night(summary={k: v for k, v in r.items() if k != "night"})
        for r in load_csv("noise_only.csv")
    ]
    assert not any(
        f.verdict == "regression" for n in run_nightly(noise).values() for f in n.values()
    )
    # a p99 of ~100 requests swings with one straggler: never gated on its nightly value alone
    assert all("ttft_p99_ms" not in n for n in run_nightly(noise).values())


def test_missing_values_and_short_baselines_give_no_finding() -> None:
    nights = simulate(np.random.default_rng(2), 20, step=0.3, step_night=19, model=CALM).nights()
    no_energy = detect(
        nights[19], nights[5:19], metrics=["energy_j_per_token", "peak_memory_bytes"]
    )
    assert no_energy == ()
    assert detect(nights[19], nights[15:19]) == ()  # 4 nights: too few to know the spread


def test_identical_nightly_values_do_not_divide_by_zero() -> None:
    """Peak memory is often byte-identical every night: a 1% change is nothing, 10% is a row."""
    base = [Night(summary={"peak_memory_bytes": 8e9}) for _ in range(K)]
    assert assess("peak_memory_bytes", Night(summary={"peak_memory_bytes": 8.08e9}), base) is None
    grown = assess("peak_memory_bytes", Night(summary={"peak_memory_bytes": 8.8e9}), base)
    assert (
        grown is not None
        and grown.verdict == "suspicious"
        and grown.change_pct == pytest.approx(10.0)
    )


def test_results_are_deterministic_and_nights_immutable() -> None:
    h1 = simulate(np.random.default_rng(77), 30, step=0.1, step_night=25)
    h2 = simulate(np.random.default_rng(77), 30, step=0.1, step_night=25)
    assert run_nightly(h1.nights()) == run_nightly(h2.nights())
    night = h1.night(3)
    with pytest.raises(ValueError):
        night.requests["ttft"][0] = 1.0
    with pytest.raises(TypeError):
        night.summary["ttft_p50_ms"] = 1.0  # type: ignore[index]


def test_unknown_distribution_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown per-request distribution"):
        Night(summary={}, requests={"latency": [1.0]})


def test_finding_row_round_trip() -> None:
    f = Finding("output_tokens_per_s", 100.0, 90.0, -10.0, None, -4.2, "regression", "worse", "r")
    row = f.as_row(run_id=7)
    assert row == {
        "run_id": 7,
        "metric": "output_tokens_per_s",
        "baseline": 100.0,
        "current": 90.0,
        "change_pct": -10.0,
        "p_value": None,
        "verdict": "regression",
    }
    back = Finding.from_row(row)
    assert (back.metric, back.verdict, back.direction) == (
        "output_tokens_per_s",
        "regression",
        "worse",
    )
    with pytest.raises(ValueError, match="unknown metric"):
        Finding.from_row({**row, "metric": "nope"})


def test_baseline_window() -> None:
    history = list(range(30))
    assert baseline_window(history, 14) == list(range(16, 30))
    assert baseline_window(history, 14, changepoints=[10, 22]) == list(range(22, 30))
    assert baseline_window(history, 14, changepoints=[5]) == list(range(16, 30))
    assert baseline_window(history[:5], 14) == list(range(5))
    from bench.errors import ConfigError

    with pytest.raises(ConfigError):
        baseline_window(history, 0)
