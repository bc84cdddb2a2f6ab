"""Campaign ``thresholds:`` parsing: defaults, overrides and one-line errors."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError
from bench.stats import METRICS, Threshold, detect, parse_thresholds
from bench.stats.thresholds import DEFAULT_THRESHOLD, SUMMARY_THRESHOLD


def test_defaults_depend_on_the_kind_of_evidence() -> None:
    limits = parse_thresholds(None)
    assert set(limits) == set(METRICS)
    assert limits["ttft_p99_ms"] == DEFAULT_THRESHOLD
    assert limits["output_tokens_per_s"] == DEFAULT_THRESHOLD  # through its e2e requests
    assert limits["peak_memory_bytes"] == SUMMARY_THRESHOLD
    assert SUMMARY_THRESHOLD.z > DEFAULT_THRESHOLD.z  # no request-level test beside it


def test_default_then_metric_overrides() -> None:
    limits = parse_thresholds(
        {
            "default": {"min_effect": 0.03},
            "ttft_p99_ms": {"min_effect": 0.05, "z": 4, "p": 0.001},
            "peak_memory_bytes": 0.02,
        }
    )
    assert limits["ttft_p99_ms"] == Threshold(min_effect=0.05, z=4.0, z_confirm=2.0, p=0.001)
    assert limits["ttft_p50_ms"].min_effect == 0.03
    assert limits["output_tokens_per_s"].min_effect == 0.03
    assert limits["output_tokens_per_s"].z == DEFAULT_THRESHOLD.z  # judged through e2e requests
    assert limits["energy_j_per_token"].z == SUMMARY_THRESHOLD.z
    assert limits["peak_memory_bytes"].min_effect == 0.02
    assert parse_thresholds(limits) == limits  # parsing parsed thresholds changes nothing


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ttft_p99": {"z": 4}}, "unknown metric 'ttft_p99'"),
        ({"ttft_p99_ms": {"zz": 4}}, "thresholds.ttft_p99_ms: unknown field 'zz'"),
        ({"ttft_p99_ms": {"p": 2}}, "thresholds.ttft_p99_ms: p must be in (0.0, 1.0)"),
        ({"default": {"min_effect": -0.1}}, "min_effect must be in [0.0, 1.0)"),
        ({"ttft_p50_ms": {"z": "four"}}, "thresholds.ttft_p50_ms.z: expected a number"),
        ({"ttft_p50_ms": {"z": True}}, "expected a number"),
        ({"ttft_p50_ms": {"z": 0}}, "z must be > 0.0"),
        (["ttft_p50_ms"], "expected a mapping"),
    ],
)
def test_bad_thresholds_fail_with_one_clear_line(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_thresholds(raw)  # type: ignore[arg-type]
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_detect_validates_thresholds_before_judging() -> None:
    from bench.stats import Night

    with pytest.raises(ConfigError, match="unknown metric"):
        detect(Night(summary={}), [], thresholds={"ttft": 0.05})
    with pytest.raises(ConfigError, match="unknown metric"):
        detect(Night(summary={}), [], metrics=["ttft"])
