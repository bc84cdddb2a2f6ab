"""The webhook message: what needs attention, with what changed and whether it throttled."""

from __future__ import annotations

from bench.notify import format_message


def row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "label": "llama/bf16/bs8", "metric": "ttft_p50_ms", "verdict": "regression",
        "direction": "worse", "change_pct": 6.2, "baseline": 50.0, "current": 53.1,
        "changed": "", "throttled": "", "scope": None, "confirm_run_id": None, "reason": "",
    }  # fmt: skip
    return {**base, **kw}


def test_nothing_to_say_is_no_message() -> None:
    quiet = [row(verdict="suspicious"), row(verdict="improvement", direction="better"),
             row(verdict="campaign_shift", direction="better", scope="hpu/habana")]  # fmt: skip
    assert format_message(quiet, dag_id="d", run_id="r") is None


def test_a_confirmed_regression_with_what_changed_and_throttling() -> None:
    text = format_message(
        [
            row(
                changed="runtime habana-torch-plugin 1.19->1.20, image stack-1.21->stack-1.22",
                throttled="throttled (thermal)",
                confirm_run_id=17,
            ),
            row(verdict="suspicious", label="other/bf16/bs1"),
        ],
        dag_id="llm_bench_nightly",
        run_id="scheduled__2025-01-02T02:00:00+00:00",
    )
    assert text is not None
    lines = text.splitlines()
    assert (
        lines[0] == "1 regression(s) in llm_bench_nightly run scheduled__2025-01-02T02:00:00+00:00:"
    )
    assert lines[1] == (
        "- llama/bf16/bs8: ttft_p50_ms +6.2% (50 -> 53.1), confirmed by a same-night re-run; "
        "changed: runtime habana-torch-plugin 1.19->1.20, image stack-1.21->stack-1.22; "
        "throttled (thermal)"
    )
    assert "other/bf16/bs1" not in text


def test_host_anomaly_and_campaign_shift_are_one_line_each() -> None:
    text = format_message(
        [
            row(verdict="host_anomaly", scope="gaudi-07", change_pct=11.0,
                reason="all 4 configurations on gaudi-07 worse"),
            row(verdict="campaign_shift", scope="hpu/habana", change_pct=6.0,
                reason="12 of 12 hpu/habana configurations moved together",
                changed="driver 1.19.1->1.20.0"),
        ],
        dag_id="d",
        run_id="r",
    )  # fmt: skip
    assert text is not None
    assert text.splitlines() == [
        "1 host anomaly(ies), 1 campaign shift(s) in d run r:",
        "- host gaudi-07: ttft_p50_ms +11.0%: all 4 configurations on gaudi-07 worse "
        "(the node, not the code?)",
        "- campaign shift (hpu/habana): ttft_p50_ms +6.0%: 12 of 12 hpu/habana configurations "
        "moved together; changed: driver 1.19.1->1.20.0",
    ]


def test_changed_outputs_alarm_unless_the_configuration_is_nondeterministic() -> None:
    change = row(
        verdict="output_changed", metric="output", change_pct=-25.0, requests_changed=2,
        requests_compared=8, first_request=2, first_position=4, baseline_run_id=41,
        nondeterministic=False, changed="model sha256:ab12->sha256:cd34",
    )  # fmt: skip
    text = format_message([change], dag_id="d", run_id="r")
    assert text is not None
    assert text.splitlines() == [
        "1 output change(s) in d run r:",
        "- llama/bf16/bs8: generated tokens changed in 2 of 8 requests (first: request 2 at "
        "token 4; vs run 41); changed: model sha256:ab12->sha256:cd34",
    ]
    flaky = {**change, "nondeterministic": True}
    assert format_message([flaky], dag_id="d", run_id="r") is None
