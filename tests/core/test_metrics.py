"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core.metrics import distribution, is_good, request_result, summarize
from bench.core.records import RequestRecord, RequestResult


def record(
    t_send: float, times: list[float], n_out: int | None = None, **kw: object
) -> RequestRecord:
    return RequestRecord(
        request_index=0,
        prompt_sha="s",
        input_tokens=10,
        output_tokens=len(times) if n_out is None else n_out,
        t_send=t_send,
        token_times=tuple(times),
        **kw,  # type: ignore[arg-type]
    )


def test_request_metrics_by_hand() -> None:
    r = request_result(record(1.000, [1.100, 1.120, 1.150, 1.160]))
    assert r.ttft_ms == pytest.approx(100.0)
    assert r.e2e_ms == pytest.approx(160.0)
    assert r.tpot_ms == pytest.approx(60.0 / 3)
    assert r.itl_ms == pytest.approx((20.0, 30.0, 10.0))
    assert r.e2e_ms == pytest.approx(r.ttft_ms + sum(r.itl_ms))


def test_single_token_output_has_no_tpot_and_no_itl() -> None:
    r = request_result(record(0.0, [0.05]))
    assert r.ttft_ms == pytest.approx(50.0) and r.e2e_ms == pytest.approx(50.0)
    assert r.tpot_ms is None and r.itl_ms == ()


def test_chunked_stream_uses_token_count_for_tpot() -> None:
    # 2 chunks carrying 5 tokens: TPOT spreads the gap over 4 token intervals, ITL is per chunk
    r = request_result(record(0.0, [0.1, 0.2], n_out=5))
    assert r.tpot_ms == pytest.approx(25.0) and r.itl_ms == pytest.approx((100.0,))


def test_failed_request_without_tokens() -> None:
    r = request_result(record(0.0, [], success=False, error="HTTP 500"))
    assert (r.ttft_ms, r.tpot_ms, r.e2e_ms, r.success) == (None, None, None, False)


def test_run_summary_by_hand_including_eos_stopped_and_failed() -> None:
    results = [
        request_result(record(0.0, [0.010, 0.020, 0.030, 0.040])),  # 4 tokens
        request_result(record(0.0, [0.020, 0.040])),  # stopped at EOS after 2
        request_result(record(0.0, [0.030])),  # one token
        request_result(record(0.0, [0.005], success=False, error="boom")),  # excluded from timings
    ]
    m = summarize(results, duration_s=2.0)
    assert (m.n_requests, m.n_failed) == (4, 1)
    assert m.output_tokens_total == 7 and m.input_tokens_total == 30
    assert m.output_tokens_per_s == pytest.approx(3.5)
    assert m.requests_per_s == pytest.approx(1.5)
    assert m.ttft_mean_ms == pytest.approx(20.0)
    assert m.ttft_p50_ms == pytest.approx(20.0)
    assert m.ttft_p90_ms == pytest.approx(28.0)  # linear: 20 + 0.8 * (30 - 20)
    assert m.tpot_p50_ms == pytest.approx(15.0)  # tpot values: 10, 20 (1-token request has none)
    assert m.itl_p99_ms == pytest.approx(np.percentile([10, 10, 10, 20], 99))
    assert m.e2e_p50_ms == pytest.approx(40.0)  # e2e values: 40, 40, 30
    assert m.energy_j_per_token is None and m.goodput_requests_per_s is None


def test_goodput_against_slos() -> None:
    results = [
        request_result(record(0.0, [0.010, 0.020])),  # ttft 10, tpot 10 -> good
        request_result(record(0.0, [0.050, 0.060])),  # ttft 50 -> bad
        request_result(record(0.0, [0.010, 0.050])),  # tpot 40 -> bad
        request_result(record(0.0, [0.010])),  # single token: tpot cannot violate -> good
    ]
    m = summarize(results, duration_s=4.0, slo_ttft_ms=20, slo_tpot_ms=30)
    assert m.goodput_requests_per_s == pytest.approx(0.5)
    assert m.goodput_fraction == pytest.approx(0.5)
    assert not is_good(RequestResult(0, "s", 1, 0, None, None, None, success=False), None, None)


def test_energy_per_token_and_empty_samples() -> None:
    m = summarize([request_result(record(0.0, [0.1, 0.2]))], duration_s=1.0, energy_j=3.0)
    assert m.energy_j_per_token == pytest.approx(1.5)
    assert distribution([], "x") == dict.fromkeys(
        ["x_mean_ms", "x_p50_ms", "x_p90_ms", "x_p95_ms", "x_p99_ms"]
    )
    zero = summarize([], duration_s=0.0)
    assert zero.output_tokens_per_s is None and zero.n_requests == 0
    assert not any(isinstance(v, float) and math.isnan(v) for v in zero.to_json().values())
