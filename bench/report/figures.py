"""Plotly figures of results, built from :mod:`bench.report.data` (no I/O).

The one figure builder of the project: the HTML report and the Airflow
Benchmarks page draw trends, verdicts, change points and SLOs with these
functions and the styles of :mod:`bench.report.style`.

Figures use the empty ``none`` template plus a few explicit settings, so each
serialises to a few KB instead of carrying plotly's default template (~7 KB a
figure); per-request CDFs are cut to at most :data:`CDF_POINTS` quantiles.
Every name that comes from the results DB (labels, run ids) goes through
:func:`plotly_text`: plotly renders a subset of HTML (``<b>``, ``<a href>``)
in trace names, titles and hover text, and a label is shown, not rendered.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bench.report.data import ConfigSeries, ParetoPoint, Samples
from bench.report.style import (
    COLORS,
    COLORWAY,
    GRID,
    KIND_LABELS,
    LAYOUT,
    MARKER_KINDS,
    marker_style,
    slo_family,
)
from bench.stats.types import KEY_METRICS, METRICS

CDF_POINTS = 400
#: Below this many runs in every configuration a trend is a few lone dots:
#: the page draws bars per configuration and lists the values beside them.
FIRST_NIGHTS = 3


def _style(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, colorway=list(COLORWAY), **LAYOUT)
    fig.update_xaxes(showgrid=True, gridcolor=GRID, zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor=GRID, zeroline=False)
    return fig


def plotly_text(text: str) -> str:
    """``text`` shown literally by plotly (which renders ``<b>``, ``<a>``... in names)."""
    return html.escape(text, quote=False)


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Key metrics first, in their canonical order, then the rest alphabetically."""
    names = set(names)
    key = [m.name for m in KEY_METRICS if m.name in names]
    return key + sorted(names - set(key))


def display_names(series: Sequence[ConfigSeries]) -> list[str]:
    """Each series' label; two configurations sharing a label (options differ)
    are told apart by the start of their fingerprints."""
    counts = Counter(s.config for s in series)
    return [
        s.config
        if counts[s.config] == 1 or not s.fingerprint
        else f"{s.config} ({s.fingerprint[:8]})"
        for s in series
    ]


def first_nights(series: Sequence[ConfigSeries]) -> bool:
    """Whether every configuration has fewer than :data:`FIRST_NIGHTS` runs."""
    return bool(series) and all(len(s.nights) < FIRST_NIGHTS for s in series)


def marker_label(kind: str, change_pct: float | None, p_value: float | None) -> str:
    """``regression +12.5%, p=0.001``: a marker's hover text and a table's verdict cell."""
    change = "" if change_pct is None else f" {change_pct:+.1f}%"
    pval = "" if p_value is None else f", p={p_value:.2g}"
    return f"{kind}{change}{pval}"


def _metric_markers(
    series: ConfigSeries, metric: str, name: str
) -> dict[str, list[tuple[datetime, float | None, str]]]:
    """(night, value, hover text) of each marker on ``metric``, by kind."""
    index = {night: i for i, night in enumerate(series.nights)}
    values = series.values.get(metric, ())
    by_kind: dict[str, list[tuple[datetime, float | None, str]]] = defaultdict(list)
    for mark in series.markers:
        if mark.metric == metric and mark.night in index:
            text = f"{name}: {marker_label(mark.kind, mark.change_pct, mark.p_value)}"
            by_kind[mark.kind].append((mark.night, values[index[mark.night]], text))
    return by_kind


def _kinds_in_order(kinds: Iterable[str]) -> list[str]:
    """Legend order: regression, suspicious, improvement, change point, others."""
    known = [k for k in MARKER_KINDS if k in kinds]
    return known + sorted(set(kinds) - set(known))


def _add_markers(
    fig: go.Figure,
    by_kind: dict[str, list[tuple[datetime, float | None, str]]],
    shown: set[str],
    **where: int,
) -> None:
    """One marker trace per kind, its legend entry shown once per figure. Drawn
    in reverse legend order, so where two fall on one night the worse verdict
    is on top (a change point's diamond under the night's verdict)."""
    ordered = _kinds_in_order(by_kind)
    for kind in reversed(ordered):
        points = by_kind[kind]
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="markers",
                name=KIND_LABELS.get(kind, kind),
                legendgroup=kind,
                legendrank=1000 + ordered.index(kind),
                showlegend=kind not in shown,
                marker=marker_style(kind),
                text=[p[2] for p in points],
                hovertemplate="%{text}<br>%{y:.4g} at %{x}<extra></extra>",
            ),
            **where,
        )
        shown.add(kind)
        if kind == "changepoint":
            for night, _, _ in points:
                fig.add_vline(
                    x=night,
                    line={"color": COLORS["changepoint"], "dash": "dot", "width": 1},
                    **where,
                )


def slo_values(series: Sequence[ConfigSeries], metric: str) -> list[float]:
    """The distinct SLOs (ms) the series ran under that bound ``metric``: the dashed lines."""
    family = slo_family(metric)
    if family is None:
        return []
    return sorted({s.slos[family] for s in series if family in s.slos})


def _add_slo_lines(fig: go.Figure, metric: str, values: Sequence[float], **where: int) -> None:
    family = (slo_family(metric) or "").upper()
    for value in values:
        fig.add_hline(
            y=value,
            line={"color": COLORS["slo"], "dash": "dash", "width": 1.5},
            annotation_text=f"{family} SLO {value:g} ms",
            annotation_position="top left",
            annotation_font={"color": COLORS["slo"], "size": 11},
            **where,
        )


def trend_figure(series: ConfigSeries) -> go.Figure:
    """The report's view of one configuration: one row per metric, the nightly
    values, verdict markers, change points and the SLO where one applies."""
    metrics = ordered_metrics(series.values)
    fig = make_subplots(
        rows=max(len(metrics), 1),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06 if len(metrics) < 4 else 0.03,
        subplot_titles=metrics,
    )
    name = plotly_text(series.config)
    shown: set[str] = set()
    for row, metric in enumerate(metrics, start=1):
        fig.add_trace(
            go.Scatter(
                x=list(series.nights),
                y=list(series.values[metric]),
                mode="lines+markers",
                name=metric,
                line={"color": COLORWAY[0], "width": 1.5},
                marker={"size": 4},
                showlegend=False,
                text=[plotly_text(r) for r in series.runs] or None,
                hovertemplate="%{y:.4g} at %{x}"
                + ("<br>%{text}" if series.runs else "")
                + "<extra></extra>",
            ),
            row=row,
            col=1,
        )
        _add_markers(fig, _metric_markers(series, metric, name), shown, row=row, col=1)
        _add_slo_lines(fig, metric, slo_values([series], metric), row=row, col=1)
    fig.update_layout(title={"text": name, "x": 0.01})
    return _style(fig, 80 + 170 * max(len(metrics), 1))


def metric_figure(metric: str, series: Sequence[ConfigSeries], title: str) -> go.Figure:
    """The page's view of one metric across a model's configurations: a line per
    configuration with its verdict and change-point markers; on the first
    nights (:func:`first_nights`) bars per configuration instead of lone dots.
    The SLO is a dashed line when the runs had one for this metric."""
    names = [plotly_text(n) for n in display_names(series)]
    fig = go.Figure()
    if first_nights(series):
        _first_night_bars(fig, metric, series, names)
    else:
        shown: set[str] = set()
        for s, name in zip(series, names, strict=True):
            fig.add_trace(
                go.Scatter(
                    x=list(s.nights),
                    y=list(s.values[metric]),
                    mode="lines+markers",
                    name=name,
                    marker={"size": 5},
                    text=[plotly_text(r) for r in s.runs] or None,
                    hovertemplate="%{y:.4g} at %{x}"
                    + ("<br>%{text}" if s.runs else "")
                    + f"<extra>{name}</extra>",
                )
            )
        by_kind: dict[str, list[tuple[datetime, float | None, str]]] = defaultdict(list)
        for s, name in zip(series, names, strict=True):
            for kind, points in _metric_markers(s, metric, name).items():
                by_kind[kind] += points
        _add_markers(fig, by_kind, shown)
        fig.update_xaxes(title_text="run start (UTC)", title_standoff=8)
    _add_slo_lines(fig, metric, slo_values(series, metric))
    fig.update_yaxes(title_text=metric, rangemode="tozero")
    _style(fig, 480).update_layout(
        title={"text": plotly_text(title), "x": 0.01},
        margin={"t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.22, "yanchor": "top"},
    )
    return fig


def _first_night_bars(
    fig: go.Figure, metric: str, series: Sequence[ConfigSeries], names: Sequence[str]
) -> None:
    """Bars per configuration: its latest run and, when there is one, the run before."""
    for back, label, color in (
        (1, "run before", COLORS["earlier"]),
        (0, "latest run", COLORS["latest"]),
    ):
        picked = [
            (name, s, len(s.nights) - 1 - back)
            for s, name in zip(series, names, strict=True)
            if len(s.nights) > back
        ]
        if not picked:
            continue
        fig.add_trace(
            go.Bar(
                x=[name for name, _, _ in picked],
                y=[s.values[metric][i] for _, s, i in picked],
                name=label,
                marker={"color": color},
                customdata=[s.nights[i].strftime("%Y-%m-%d %H:%M") for _, s, i in picked],
                text=[plotly_text(s.runs[i]) if s.runs else "" for _, s, i in picked],
                hovertemplate="%{y:.4g}<br>%{customdata} UTC<br>%{text}<extra>%{x}</extra>",
                textposition="none",
            )
        )
    fig.update_layout(barmode="group", bargap=0.35)
    fig.update_xaxes(type="category", showgrid=False)


def _ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    data = np.sort(np.asarray(values, dtype=np.float64))
    if data.size == 0:
        return [], []
    if data.size > CDF_POINTS:
        idx = np.linspace(0, data.size - 1, CDF_POINTS).round().astype(np.intp)
        return data[idx].tolist(), ((idx + 1) / data.size).tolist()
    return data.tolist(), (np.arange(1, data.size + 1) / data.size).tolist()


def cdf_figure(config: str, samples: Sequence[Samples]) -> go.Figure:
    """Side by side, one panel per distribution: tonight's CDF over the baseline's."""
    fig = make_subplots(
        rows=1, cols=max(len(samples), 1), subplot_titles=[f"{s.distribution}_ms" for s in samples]
    )
    for col, sample in enumerate(samples, start=1):
        for name, values, color in (
            ("baseline", sample.baseline, "#7f7f7f"),
            ("tonight", sample.tonight, "#d62728"),
        ):
            x, y = _ecdf(values)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line={"color": color, "shape": "hv"},
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="ms (log scale)", type="log", row=1, col=col)
    fig.update_yaxes(title_text="fraction of requests", row=1, col=1)
    fig.update_layout(title={"text": f"{plotly_text(config)}: per-request CDF", "x": 0.01})
    return _style(fig, 340)


def pareto_frontier(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """Points no other point beats on both throughput (higher) and TTFT p99 (lower)."""
    return [
        p
        for p in points
        if not any(
            q.output_tokens_per_s >= p.output_tokens_per_s
            and q.ttft_p99_ms <= p.ttft_p99_ms
            and (q.output_tokens_per_s, q.ttft_p99_ms) != (p.output_tokens_per_s, p.ttft_p99_ms)
            for q in points
        )
    ]


def pareto_figure(model: str, points: Sequence[ParetoPoint]) -> go.Figure:
    """Throughput against TTFT p99, one line per precision through its batch sizes."""
    fig = go.Figure()
    by_precision: dict[str, list[ParetoPoint]] = defaultdict(list)
    for p in points:
        by_precision[p.precision].append(p)
    for precision, group in sorted(by_precision.items()):
        group = sorted(group, key=lambda p: p.batch_size)
        fig.add_trace(
            go.Scatter(
                x=[p.ttft_p99_ms for p in group],
                y=[p.output_tokens_per_s for p in group],
                mode="lines+markers+text",
                text=[f"bs{p.batch_size}" for p in group],
                textposition="top center",
                name=plotly_text(precision),
            )
        )
    frontier = sorted(pareto_frontier(points), key=lambda p: p.ttft_p99_ms)
    fig.add_trace(
        go.Scatter(
            x=[p.ttft_p99_ms for p in frontier],
            y=[p.output_tokens_per_s for p in frontier],
            mode="markers",
            name="pareto frontier",
            marker={"symbol": "star", "size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 1.5}},
            hovertext=[f"{p.precision} bs{p.batch_size}" for p in frontier],
        )
    )
    fig.update_xaxes(title_text="ttft_p99_ms (lower is better)")
    fig.update_yaxes(title_text="output_tokens_per_s (higher is better)")
    fig.update_layout(
        title={"text": f"{plotly_text(model)}: throughput vs TTFT p99 by batch size", "x": 0.01}
    )
    return _style(fig, 420)


def metric_unit_better(metric: str) -> str:
    """A short hint for a table header: which way is better."""
    spec = METRICS.get(metric)
    if spec is None:
        return ""
    return "lower is better" if spec.better == "lower" else "higher is better"
