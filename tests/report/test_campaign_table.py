"""The campaign table of the report task's log: every line fits the width asked for."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report.campaign import TABLE_COLUMNS, format_campaign_table


def row(label: str, status: str = "ok", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "label": label,
        "status": status,
        "error": None,
        "n_requests": 512,
        "ttft_p50_ms": 1234.5678,
        "ttft_p99_ms": 20480.25,
        "tpot_p50_ms": 23.456,
        "itl_p99_ms": 141.9,
        "output_tokens_per_s": 15234.9,
        "goodput_fraction": 0.875,
        "regressions": 2,
        # columns campaign_runs has that the table leaves out
        "model": "meta-llama/Llama-2-70b-hf",
        "peak_memory_bytes": 77 * 2**30,
        "energy_j_per_token": 0.12,
    }
    if status != "ok":
        base.update({k: None for k, _, kind in TABLE_COLUMNS if kind in ("num", "pct")})
        base.update(n_requests=None, regressions=0)
    return {**base, **kw}


ROWS = [
    row("llama-2-70b/bf16/bs64/in2048-out128@gaudi2-8x-rack-a"),
    row("llama-2-7b/fp8/bs1", goodput_fraction=None),
    row(
        "llama-3.1-8b/bf16/bs128",
        status="oom",
        error="Traceback (most recent call last):\n  File ...\n"
        "RuntimeError: [Rank:0] FATAL ERROR :: MODULE:PT_DEVMEM Allocation failed for size::"
        + "x"
        * 300,
    ),
    row("llama-2-13b/bf16/bs8", status="timeout", error=None),
]


@pytest.mark.parametrize("width", [120, 100, 90])
def test_every_line_fits(width: int) -> None:
    text = format_campaign_table(ROWS, width=width)
    assert max(len(line) for line in text.splitlines()) <= width, text


def test_what_the_table_says() -> None:
    lines = format_campaign_table(ROWS).splitlines()
    assert lines[0] == "2/4 configurations ok, 4 regression(s)"
    assert lines[1].split() == [
        "configuration", "status", "reqs", "ttft", "p50", "ttft", "p99", "tpot", "p50",
        "itl", "p99", "tok/s", "goodput", "regr",
    ]  # fmt: skip
    first = lines[2].split()
    # the long label keeps its model and its suffix, elided in the middle
    assert first[0] == "llama-2-70b/bf16/bs64…ut128@gaudi2-8x-rack-a"
    assert first[1:] == ["ok", "512", "1235", "20480", "23.46", "141.9", "15235", "88%", "2"]
    assert lines[3].split()[0] == "llama-2-7b/fp8/bs1" and lines[3].split()[-2:] == ["-", "2"]
    assert lines[4].split()[:3] == ["llama-3.1-8b/bf16/bs128", "oom", "-"]
    # errors under the table: the last line of a traceback, cut at the width
    assert lines[6] == "did not finish:"
    assert lines[7].startswith("  llama-3.1-8b/bf16/bs128 (oom): RuntimeError: [Rank:0] FATAL")
    assert lines[7].endswith("xxx…") and len(lines[7]) == 120
    assert lines[8] == "  llama-2-13b/bf16/bs8 (timeout): no error recorded"
    assert lines[-1].startswith("latencies in ms")


def test_an_empty_campaign() -> None:
    assert format_campaign_table([]) == "no runs recorded for this campaign"


def test_short_labels_are_not_padded_to_the_width() -> None:
    lines = format_campaign_table([row("tiny/fp32/bs1")]).splitlines()
    assert lines[1].startswith("configuration  status")
    assert lines[2].startswith("tiny/fp32/bs1  ok    ")
    assert max(len(line) for line in lines) < 110


def test_tries_show_only_when_a_retry_stored_a_run() -> None:
    plain = format_campaign_table([row("tiny/fp32/bs1", attempt=1), row("tiny/fp32/bs2")])
    assert "tries" not in plain
    lines = format_campaign_table(
        [row("tiny/fp32/bs1", attempt=1), row("tiny/fp32/bs2", attempt=2)]
    ).splitlines()
    assert lines[0] == "2/2 configurations ok, 4 regression(s), 1 retried"
    assert lines[1].split()[:3] == ["configuration", "status", "tries"]
    assert lines[2].split()[:4] == ["tiny/fp32/bs1", "ok", "1", "512"]
    assert lines[3].split()[:4] == ["tiny/fp32/bs2", "ok", "2", "512"]
    assert lines[-1].startswith("tries = which try of its Airflow task stored the run")


@pytest.mark.parametrize("width", [120, 100])
def test_the_tries_column_still_fits(width: int) -> None:
    rows = [*ROWS[:-1], row("llama-2-13b/bf16/bs8", status="timeout", error=None, attempt=3)]
    text = format_campaign_table(rows, width=width)
    assert "tries" in text.splitlines()[1]
    assert max(len(line) for line in text.splitlines()) <= width, text
