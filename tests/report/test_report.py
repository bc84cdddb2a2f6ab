"""The HTML report: one self-contained file, a chart per config, markers where they belong."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

import bench.report
from bench.report import (
    ConfigSeries,
    Marker,
    ParetoPoint,
    ReportData,
    Samples,
    TableRow,
    render_report,
)
from bench.report.figures import pareto_frontier

NIGHTS = [datetime(2026, 3, 1, 2) + timedelta(days=i) for i in range(6)]


class _Page(HTMLParser):
    """Chart divs (class, attributes) and JSON scripts (id -> text) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict[str, str]] = []
        self.scripts: list[dict[str, str]] = []
        self.json: dict[str, str] = {}
        self.cells: list[dict[str, str]] = []
        self._in_json: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "div" and "chart" in a.get("class", "").split():
            self.charts.append(a)
        if tag == "td" and "metric" in a.get("class", "").split():
            self.cells.append(a)
        if tag == "script":
            self.scripts.append(a)
            if a.get("type") == "application/json":
                self._in_json = a["id"]

    def handle_data(self, data: str) -> None:
        if self._in_json:
            self.json[self._in_json] = self.json.get(self._in_json, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json = None


def _data() -> ReportData:
    series = [
        ConfigSeries(
            config="llama-2-7b/bf16/bs1",
            nights=NIGHTS,
            values={
                "ttft_p50_ms": [100, 101, 99, 112, 113, 112],
                "output_tokens_per_s": [50, 50.5, 49.8, 45, 44.9, None],
            },
            markers=[
                Marker(NIGHTS[3], "ttft_p50_ms", "suspicious", 12.0),
                Marker(NIGHTS[4], "ttft_p50_ms", "regression", 13.0),
                Marker(NIGHTS[3], "ttft_p50_ms", "changepoint", 12.5),
            ],
        ),
        ConfigSeries(
            config="mistral-7b/<fp8>/bs8",  # escaped, not injected
            nights=NIGHTS,
            values={"ttft_p50_ms": [80, 81, 79, 80, 81, 70]},
            markers=[Marker(NIGHTS[5], "ttft_p50_ms", "suspicious", -12.0)],
        ),
    ]
    table = [
        TableRow("llama-2-7b/bf16/bs1", "ttft_p50_ms", 112.0, 100.0, 12.0, "regression", 1e-9),
        TableRow("llama-2-7b/bf16/bs1", "output_tokens_per_s", 44.9, 50.0, -10.2, "regression"),
        TableRow("mistral-7b/<fp8>/bs8", "ttft_p50_ms", 70.0, 80.0, -12.5, "suspicious", 1e-5),
        TableRow("mistral-7b/<fp8>/bs8", "peak_memory_bytes", 8 * 2**30, 8 * 2**30, 0.0, None),
    ]
    samples = [
        Samples(
            "llama-2-7b/bf16/bs1",
            "ttft",
            [110.0 + i for i in range(50)],
            [99.0 + i for i in range(500)],
        ),
        Samples(
            "llama-2-7b/bf16/bs1",
            "itl",
            [20.0 + i / 10 for i in range(900)],
            [19.0 + i for i in range(50)],
        ),
    ]
    pareto = [
        ParetoPoint("llama-2-7b", "bf16", 1, 40.0, 50.0),
        ParetoPoint("llama-2-7b", "bf16", 8, 250.0, 90.0),
        ParetoPoint("llama-2-7b", "bf16", 32, 240.0, 300.0),  # dominated by bs8
        ParetoPoint("llama-2-7b", "fp8", 8, 330.0, 95.0),
        ParetoPoint("mistral-7b", "bf16", 4, 120.0, 60.0),
    ]
    return ReportData(
        "Nightly", datetime(2026, 3, 7, 6), "nightly run 7", series, table, samples, pareto
    )


@pytest.fixture
def page(tmp_path: Path) -> tuple[str, _Page]:
    out = render_report(_data(), tmp_path / "reports" / "report.html")
    text = out.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(text)
    return text, parser


def test_a_trend_chart_per_config_with_its_markers(page: tuple[str, _Page]) -> None:
    _, p = page
    trends = [c for c in p.charts if "trend-chart" in c["class"]]
    assert [c["data-config"] for c in trends] == ["llama-2-7b/bf16/bs1", "mistral-7b/<fp8>/bs8"]
    assert [c["data-regressions"] for c in trends] == ["1", "0"]
    assert [c["data-changepoints"] for c in trends] == ["1", "0"]
    fig = json.loads(p.json[trends[0]["data-figure"]])
    regression = [t for t in fig["data"] if t.get("name") == "regression"]
    assert len(regression) == 1
    assert regression[0]["x"] == ["2026-03-05T02:00:00"] and regression[0]["y"] == [113]
    assert any(s.get("type") == "line" for s in fig["layout"]["shapes"])  # the change-point rule
    lines = [t["name"] for t in fig["data"] if t.get("mode") == "lines+markers"]
    assert lines == ["ttft_p50_ms", "output_tokens_per_s"]


def test_self_contained_plotly_inlined_once(page: tuple[str, _Page]) -> None:
    text, p = page
    assert not [s for s in p.scripts if s.get("src")]
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=[\"']https?:", text)
    assert text.count("plotly.js v") == 1  # the library banner: inlined exactly once
    figures = {c["data-figure"] for c in p.charts}
    assert figures == set(p.json)  # every chart has its figure beside it
    assert len(text) < 5_300_000  # the library (~4.8 MB) plus small figures


def test_latest_table_colours_deltas_by_direction(page: tuple[str, _Page]) -> None:
    text, p = page
    verdicts = {(c["data-metric"], c["class"]) for c in p.cells}
    assert ("ttft_p50_ms", "metric verdict-regression") in verdicts
    assert ("output_tokens_per_s", "metric verdict-regression") in verdicts
    assert ("ttft_p50_ms", "metric verdict-suspicious") in verdicts
    # +12% TTFT and -10% throughput are both worse (red); -12.5% TTFT is better (green)
    assert text.count('class="delta worse"') == 2
    assert text.count('class="delta better"') == 1
    assert "8.00 GiB" in text
    assert "&lt;fp8&gt;" in text and "<fp8>" not in text.split("<script")[0]


def test_cdfs_and_pareto_views(page: tuple[str, _Page]) -> None:
    _, p = page
    cdfs = [c for c in p.charts if "cdf-chart" in c["class"]]
    assert [c["data-config"] for c in cdfs] == ["llama-2-7b/bf16/bs1"]
    fig = json.loads(p.json[cdfs[0]["data-figure"]])
    names = [t["name"] for t in fig["data"]]
    assert names == ["baseline", "tonight", "baseline", "tonight"]
    assert max(len(t["x"]) for t in fig["data"]) <= 400  # long samples cut to quantiles
    assert fig["data"][1]["y"][-1] == 1.0
    paretos = [c for c in p.charts if "pareto-chart" in c["class"]]
    assert [c["data-model"] for c in paretos] == ["llama-2-7b", "mistral-7b"]
    fig = json.loads(p.json[paretos[0]["data-figure"]])
    frontier = next(t for t in fig["data"] if t["name"] == "pareto frontier")
    assert frontier["x"] == [50.0, 90.0, 95.0]


def test_pareto_frontier_drops_dominated_points() -> None:
    pts = [p for p in _data().pareto if p.model == "llama-2-7b"]
    assert {(p.precision, p.batch_size) for p in pareto_frontier(pts)} == {
        ("bf16", 1),
        ("bf16", 8),
        ("fp8", 8),
    }


def test_empty_report_still_renders(tmp_path: Path) -> None:
    out = render_report(ReportData("Empty", datetime(2026, 1, 1)), tmp_path / "empty.html")
    text = out.read_text(encoding="utf-8")
    assert "no history yet" in text and "no runs in the latest campaign" in text
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind


def test_bad_series_is_rejected() -> None:
    with pytest.raises(ValueError, match="2 values for 6 nights"):
        ConfigSeries("c", NIGHTS, {"ttft_p50_ms": [1.0, 2.0]})


def test_public_names_are_pinned() -> None:
    assert sorted(bench.report.__all__) == [
        "ConfigSeries",
        "Marker",
        "MarkerKind",
        "ParetoPoint",
        "ReportData",
        "Samples",
        "TableRow",
        "render_html",
        "render_report",
    ]
