"""Plotly figures of a report, built from :mod:`bench.report.data` (no I/O).

Figures use the empty ``none`` template plus a few explicit settings, so each
serialises to a few KB instead of carrying plotly's default template (~7 KB a
figure); per-request CDFs are cut to at most :data:`CDF_POINTS` quantiles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bench.report.data import ConfigSeries, MarkerKind, ParetoPoint, Samples
from bench.stats.types import KEY_METRICS, METRICS

CDF_POINTS = 400
MARKER_STYLE: dict[MarkerKind, dict[str, Any]] = {
    "regression": {"color": "#d62728", "symbol": "triangle-up", "size": 11},
    "suspicious": {"color": "#ff7f0e", "symbol": "circle-open", "size": 10},
    "improvement": {"color": "#2ca02c", "symbol": "triangle-down", "size": 11},
    "changepoint": {"color": "#6a3d9a", "symbol": "diamond-open", "size": 12},
}
_LAYOUT: dict[str, Any] = {
    "template": "none",
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "hovermode": "closest",
    "legend": {"orientation": "h", "y": -0.08},
}


def _style(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, **_LAYOUT)
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Key metrics first, in their canonical order, then the rest alphabetically."""
    names = set(names)
    key = [m.name for m in KEY_METRICS if m.name in names]
    return key + sorted(names - set(key))


def trend_figure(series: ConfigSeries) -> go.Figure:
    """One row per metric: the nightly values, verdict markers and change points."""
    metrics = ordered_metrics(series.values)
    fig = make_subplots(
        rows=max(len(metrics), 1),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06 if len(metrics) < 4 else 0.03,
        subplot_titles=metrics,
    )
    index = {night: i for i, night in enumerate(series.nights)}
    shown: set[str] = set()
    for row, metric in enumerate(metrics, start=1):
        values = series.values[metric]
        fig.add_trace(
            go.Scatter(
                x=list(series.nights),
                y=list(values),
                mode="lines+markers",
                name=metric,
                line={"color": "#1f77b4", "width": 1.5},
                marker={"size": 4},
                showlegend=False,
            ),
            row=row,
            col=1,
        )
        by_kind: dict[MarkerKind, list[tuple[Any, float | None, float | None]]] = defaultdict(list)
        for mark in series.markers:
            if mark.metric == metric and mark.night in index:
                by_kind[mark.kind].append((mark.night, values[index[mark.night]], mark.change_pct))
        for kind, points in by_kind.items():
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="markers",
                    name=kind,
                    legendgroup=kind,
                    showlegend=kind not in shown,
                    marker=MARKER_STYLE[kind],
                    customdata=[p[2] for p in points],
                    hovertemplate=f"{kind} %{{x}}<br>%{{y}} (%{{customdata:+.1f}}%)<extra></extra>",
                ),
                row=row,
                col=1,
            )
            shown.add(kind)
            if kind == "changepoint":
                for night, _, _ in points:
                    fig.add_vline(
                        x=night,
                        row=row,
                        col=1,
                        line={"color": "#6a3d9a", "dash": "dot", "width": 1},
                    )
    fig.update_layout(title={"text": series.config, "x": 0.01})
    return _style(fig, 80 + 170 * max(len(metrics), 1))


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
    fig.update_layout(title={"text": f"{config}: per-request CDF", "x": 0.01})
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
                name=precision,
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
    fig.update_layout(title={"text": f"{model}: throughput vs TTFT p99 by batch size", "x": 0.01})
    return _style(fig, 420)


def metric_unit_better(metric: str) -> str:
    """A short hint for a table header: which way is better."""
    spec = METRICS.get(metric)
    if spec is None:
        return ""
    return "lower is better" if spec.better == "lower" else "higher is better"
