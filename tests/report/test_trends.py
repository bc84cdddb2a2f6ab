"""One reader and one figure builder for the report and the Benchmarks page:
series from the results DB with verdicts, change points and SLOs, drawn in
the same style wherever they appear."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bench.report import browse
from bench.report.figures import first_nights, metric_figure, trend_figure
from bench.report.style import marker_style
from bench.report.trends import model_series
from bench.store import writer
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.regressions import RegressionRow, replace_regressions
from tests.store import store_factory as f

NIGHTS = 16
STEP = 8  # bs 2 gets 50% slower from this night on


def ttft(bs: int, night: int) -> float:
    jitter = (0.0, 0.2, -0.1, 0.15, -0.2, 0.05, 0.1, -0.05)[night % 8]
    return 10.0 * bs + jitter + (10.0 if bs == 2 and night >= STEP else 0.0)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = get_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def history(engine: sa.Engine) -> dict[str, Any]:
    """Model m: bs 1 (TTFT SLO 25 ms) and bs 2 over 16 nights, bs 2 stepping up
    on night 8 and judged a regression on night 9; a configuration that shares
    bs 1's label (longer outputs) ran twice."""
    ids = {}
    for night in range(NIGHTS):
        for bs in (1, 2):
            cfg = f.config(model="m", batch_size=bs, **({"slo_ttft_ms": 25.0} if bs == 1 else {}))
            ids[bs, night] = writer.load_result(
                engine,
                f.result(
                    cfg,
                    ttfts=[ttft(bs, night)] * 4,
                    campaign=f.nightly(night),
                    started_at=f.T0 + timedelta(days=night, minutes=bs),
                ),
            )
    longer = f.config(model="m", batch_size=1, max_new_tokens=8)
    for night in (NIGHTS - 2, NIGHTS - 1):
        writer.load_result(
            engine,
            f.result(
                longer,
                campaign=f.nightly(night),
                started_at=f.T0 + timedelta(days=night, minutes=5),
            ),
        )
    judged = ids[2, STEP + 1]
    replace_regressions(
        engine,
        [judged],
        [RegressionRow(judged, "ttft_p50_ms", 20.1, ttft(2, STEP + 1), 50.2, 1e-6, "regression")],
    )
    return {"ids": ids, "judged": judged}


def test_a_series_per_configuration_with_verdicts_changepoints_and_slos(
    engine: sa.Engine, history: dict[str, Any]
) -> None:
    series = model_series(engine, "m", ["ttft_p50_ms", "output_tokens_per_s"], last=NIGHTS)
    # sorted by label (then fingerprint): the two bs 1 configurations first
    assert [s.config for s in series] == ["m/fp32/bs1", "m/fp32/bs1", "m/fp32/bs2"]
    assert sorted(len(s.nights) for s in series[:2]) == [2, NIGHTS]
    bs1 = next(s for s in series if len(s.nights) == NIGHTS and s.config == "m/fp32/bs1")
    bs2 = series[-1]
    assert list(bs2.values["ttft_p50_ms"]) == [ttft(2, n) for n in range(NIGHTS)]
    assert list(bs2.run_ids) == [history["ids"][2, n] for n in range(NIGHTS)]
    assert list(bs2.runs) == [f.nightly(n).dag_run_id for n in range(NIGHTS)]
    assert list(bs2.nights) == sorted(bs2.nights)
    [verdict] = [m for m in bs2.markers if m.kind == "regression"]
    assert (verdict.night, verdict.metric, verdict.change_pct, verdict.p_value) == (
        bs2.nights[STEP + 1],
        "ttft_p50_ms",
        50.2,
        1e-6,
    )
    assert (verdict.baseline, verdict.current) == (20.1, ttft(2, STEP + 1))
    steps = [m for m in bs2.markers if m.kind == "changepoint" and m.metric == "ttft_p50_ms"]
    assert [m.night for m in steps] == [bs2.nights[STEP]]
    assert not [m for m in bs1.markers if m.kind == "changepoint"]
    assert dict(bs1.slos) == {"ttft": 25.0} and dict(bs2.slos) == {}
    # newest `last` runs only; an unknown model has no series
    assert {len(s.nights) for s in model_series(engine, "m", ["ttft_p50_ms"], last=3)} == {2, 3}
    assert model_series(engine, "nope", ["ttft_p50_ms"]) == []


def test_the_page_and_the_report_draw_verdicts_alike(
    engine: sa.Engine, history: dict[str, Any]
) -> None:
    series = model_series(engine, "m", ["ttft_p50_ms"], last=NIGHTS)
    page = metric_figure("ttft_p50_ms", series, "ttft_p50_ms of m").to_plotly_json()
    report = trend_figure(series[-1]).to_plotly_json()
    for fig in (page, report):
        [regression] = [t for t in fig["data"] if t["name"] == "regression"]
        assert regression["marker"] == marker_style("regression")
        [change] = [t for t in fig["data"] if t["name"] == "change point"]
        assert change["marker"] == marker_style("changepoint")
    [regression] = [t for t in page["data"] if t["name"] == "regression"]
    assert regression["y"] == [ttft(2, STEP + 1)]
    assert "m/fp32/bs2: regression +50.2%, p=1e-06" in regression["text"][0]
    lines = [t["name"] for t in page["data"] if t["mode"] == "lines+markers"]
    # two configurations share a label: told apart by their fingerprints
    assert len(lines) == 3 and lines[2] == "m/fp32/bs2"
    assert lines[0].startswith("m/fp32/bs1 (") and lines[1].startswith("m/fp32/bs1 (")


def test_slo_lines_where_the_metric_has_one(engine: sa.Engine, history: dict[str, Any]) -> None:
    series = model_series(engine, "m", ["ttft_p99_ms", "tpot_p50_ms"], last=NIGHTS)
    fig = metric_figure("ttft_p99_ms", series, "t").to_plotly_json()
    [line] = [s for s in fig["layout"]["shapes"] if s["line"].get("dash") == "dash"]
    assert (line["y0"], line["y1"], line["xref"]) == (25.0, 25.0, "x domain")  # across the chart
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["TTFT SLO 25 ms"]
    tpot = metric_figure("tpot_p50_ms", series, "t").to_plotly_json()["layout"]
    assert not [s for s in tpot.get("shapes", ()) if s["line"].get("dash") == "dash"]
    bs1 = next(s for s in series if s.slos)
    report = trend_figure(bs1).to_plotly_json()
    slo_shapes = [s for s in report["layout"]["shapes"] if s["line"].get("dash") == "dash"]
    assert [(s["y0"], s["yref"]) for s in slo_shapes] == [(25.0, "y")]  # the ttft row only


def test_first_nights_are_bars_and_a_table(engine: sa.Engine, db_url: str) -> None:
    for night in (0, 1):
        for bs in (1, 4):
            writer.load_result(
                engine,
                f.result(
                    f.config(model="new", batch_size=bs, slo_ttft_ms=12.5),
                    ttfts=[10.0 + night + bs] * 4,
                    campaign=f.nightly(night),
                    started_at=f.T0 + timedelta(days=night, minutes=bs),
                ),
            )
    view = browse.View("new", "ttft_p50_ms", 30)
    series = browse.trend(engine, view)
    assert first_nights(series)
    fig = browse.figure(view, series).to_plotly_json()
    assert [(t["type"], t["name"]) for t in fig["data"]] == [
        ("bar", "run before"),
        ("bar", "latest run"),
    ]
    assert fig["data"][1]["x"] == ["new/fp32/bs1", "new/fp32/bs4"]
    assert fig["data"][1]["y"] == [12.0, 15.0]
    assert fig["layout"]["shapes"][0]["y0"] == 12.5
    rows = browse.first_night_rows(view, series)
    assert [(r["config"], r["value"], r["run"]) for r in rows] == [
        ("new/fp32/bs1", 12.0, f.nightly(1).dag_run_id),
        ("new/fp32/bs1", 11.0, f.nightly(0).dag_run_id),
        ("new/fp32/bs4", 15.0, f.nightly(1).dag_run_id),
        ("new/fp32/bs4", 14.0, f.nightly(0).dag_run_id),
    ]
    assert browse.slo_lines(view, series) == [12.5]
    # a third night: a trend, no table
    for bs in (1, 4):
        writer.load_result(
            engine,
            f.result(
                f.config(model="new", batch_size=bs),
                campaign=f.nightly(2),
                started_at=f.T0 + timedelta(days=2, minutes=bs),
            ),
        )
    series = browse.trend(engine, view)
    assert not first_nights(series) and browse.first_night_rows(view, series) == []
    assert {t["type"] for t in browse.figure(view, series).to_plotly_json()["data"]} == {"scatter"}
