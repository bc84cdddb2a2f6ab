"""One self-contained HTML file from :class:`~bench.report.data.ReportData`.

plotly.js is inlined once in the head (the report must open on an air-gapped
machine, and a CDN link would also leak who reads it); every chart is a
``<div class="chart ...">`` with stable data attributes, its figure JSON in a
``<script type="application/json">`` beside it, and one loop at the end draws
them all. Tests and the browser test find charts by those classes.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go

from bench.report.data import ParetoPoint, ReportData, Samples, TableRow
from bench.report.figures import (
    cdf_figure,
    metric_unit_better,
    ordered_metrics,
    pareto_figure,
    trend_figure,
)
from bench.report.style import COLORS, badge_css
from bench.stats.types import METRICS

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin-bottom:4px}h2{margin-top:36px;border-bottom:1px solid #ddd}
.meta{color:#666}nav a{margin-right:16px}
table.latest{border-collapse:collapse;font-size:13px}
table.latest th,table.latest td{border:1px solid #ddd;padding:4px 8px;text-align:right}
table.latest th{background:#f6f6f6}table.latest td.config{text-align:left;font-family:monospace}
.delta{display:block;font-size:11px}
.chart{margin:12px 0}.note{color:#666;font-style:italic}
table.changes td{text-align:left;vertical-align:top}ul.changed{margin:0;padding-left:16px}
table.drift td{text-align:left;vertical-align:top}.output-diff pre{margin:2px 0;white-space:pre-wrap;max-width:640px}
.output-diff del{background:#fdd;text-decoration:none}.output-diff ins{background:#dfd;text-decoration:none}
""" + badge_css()

_RENDER = """
document.querySelectorAll("div.chart").forEach(function (el) {
  var fig = JSON.parse(document.getElementById(el.dataset.figure).textContent);
  Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
"""


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def script_json(text: str) -> str:
    """JSON text safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` (which
    JSON holds only inside strings) become ``\\u`` escapes, so no label can close
    the element or open a comment; the parsed value is unchanged."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _format(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.endswith("_bytes"):
        return f"{value / 2**30:.2f} GiB"
    return f"{value:.4g}"


def _delta_style(metric: str, change_pct: float) -> tuple[str, str]:
    """CSS class and background for a change: red when worse, green when better."""
    spec = METRICS.get(metric)
    if spec is None or change_pct == 0:
        return "delta", ""
    worse = spec.direction(change_pct) == "worse"
    alpha = min(abs(change_pct) / 20.0, 1.0) * 0.55 + 0.05
    rgb = _rgb(COLORS["regression" if worse else "improvement"])
    return f"delta {'worse' if worse else 'better'}", f"background:rgba({rgb},{alpha:.2f})"


def _rgb(color: str) -> str:
    """``#d62728`` -> ``214,39,40`` (for an rgba() background)."""
    return ",".join(str(int(color[i : i + 2], 16)) for i in (1, 3, 5))


def _cell(row: TableRow) -> str:
    parts = [html.escape(_format(row.metric, row.current))]
    style = ""
    if row.change_pct is not None:
        css, style = _delta_style(row.metric, row.change_pct)
        base = _format(row.metric, row.baseline)
        parts.append(
            f'<span class="{css}" title="baseline {html.escape(base)}">{row.change_pct:+.1f}%</span>'
        )
    if row.verdict:
        title = "" if row.p_value is None else f' title="p = {row.p_value:.1e}"'
        parts.append(f'<span class="badge {row.verdict}"{title}>{row.verdict}</span>')
    verdict = f" verdict-{row.verdict}" if row.verdict else ""
    style_attr = f' style="{style}"' if style else ""
    return f'<td class="metric{verdict}" data-metric="{html.escape(row.metric)}"{style_attr}>{"".join(parts)}</td>'


def _table(rows: Sequence[TableRow], tries: Mapping[str, int]) -> str:
    """Configurations x metrics; a "tries" column only when a retry stored a run."""
    if not rows:
        return '<p class="note">no runs in the latest campaign</p>'
    metrics = ordered_metrics({r.metric for r in rows})
    by_config: dict[str, dict[str, TableRow]] = defaultdict(dict)
    for r in rows:
        by_config[r.config][r.metric] = r
    head = "".join(f'<th title="{metric_unit_better(m)}">{html.escape(m)}</th>' for m in metrics)
    if tries:
        head = '<th title="the try of its task that stored the run">tries</th>' + head
    body = []
    for config in sorted(by_config):
        cells = "".join(
            _cell(by_config[config][m]) if m in by_config[config] else "<td>-</td>" for m in metrics
        )
        if tries:
            cells = f'<td class="tries">{tries.get(config, 1)}</td>' + cells
        body.append(
            f'<tr data-config="{html.escape(config)}"><td class="config">{html.escape(config)}</td>{cells}</tr>'
        )
    return (
        f'<table class="latest"><thead><tr><th>config</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


class _Charts:
    """Collects chart divs and their figure JSON under stable, unique ids."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: go.Figure, css: str, **attrs: str | int) -> str:
        self.count += 1
        fid = f"fig-{self.count}"
        data = "".join(
            f' data-{k.replace("_", "-")}="{html.escape(str(v))}"' for k, v in attrs.items()
        )
        payload = script_json(fig.to_json())
        return (
            f'<div class="chart {css}" id="chart-{self.count}" data-figure="{fid}"{data}></div>\n'
            f'<script type="application/json" id="{fid}">{payload}</script>'
        )


def _section(anchor: str, title: str, body: Sequence[str], empty: str) -> str:
    content = "\n".join(body) if body else f'<p class="note">{empty}</p>'
    return f'<section id="{anchor}"><h2>{title}</h2>\n{content}\n</section>'


def render_html(data: ReportData) -> str:
    """The report page as a string (see :func:`render_report`)."""
    charts = _Charts()
    trends = []
    for s in data.series:
        counts: dict[str, int] = defaultdict(int)
        for m in s.markers:
            counts[m.kind] += 1
        trends.append(
            charts.div(
                trend_figure(s),
                "trend-chart",
                config=s.config,
                regressions=counts["regression"],
                changepoints=counts["changepoint"],
            )
        )
    by_config: dict[str, list[Samples]] = defaultdict(list)
    for sample in data.samples:
        by_config[sample.config].append(sample)
    cdfs = [
        charts.div(cdf_figure(config, group), "cdf-chart", config=config)
        for config, group in sorted(by_config.items())
    ]
    by_model: dict[str, list[ParetoPoint]] = defaultdict(list)
    for point in data.pareto:
        by_model[point.model].append(point)
    paretos = [
        charts.div(pareto_figure(model, points), "pareto-chart", model=model)
        for model, points in sorted(by_model.items())
    ]
    meta = f"generated {data.generated_at:%Y-%m-%d %H:%M}"
    if data.campaign:
        meta = f"campaign {html.escape(data.campaign)} · {meta}"
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    from bench.report.changes import changes_section  # attribution: what changed, telemetry
    from bench.report.outputs import outputs_section
    from bench.report.targets import targets_table  # fleets: the same configs per node pool

    sections = [
        _section("latest", "Latest campaign vs baseline", [_table(data.table, data.tries)], ""),
        *(
            [_section("targets", "Targets side by side", [targets_table(data.targets)], "")]
            if data.targets
            else []
        ),
        _section("changes", "What changed", [changes_section(data.verdicts)], ""),
        _section("trends", "Trends", trends, "no history yet"),
        _section(
            "cdfs", "Per-request distributions: tonight vs baseline", cdfs, "no per-request samples"
        ),
        _section("pareto", "Throughput vs TTFT p99 across batch sizes", paretos, "no points"),
    ]
    if data.outputs is not None:
        sections.append(_section("outputs", "Outputs", [outputs_section(data.outputs)], ""))
    title = html.escape(data.title)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style>\n"
        f"<script>{_plotly_js()}</script>\n</head><body>\n"
        f'<header><h1>{title}</h1><p class="meta">{meta}</p>{notes}</header>\n'
        '<nav><a href="#latest">latest</a><a href="#changes">what changed</a><a href="#trends">trends</a>'
        '<a href="#cdfs">distributions</a><a href="#pareto">pareto</a>'
        + ('<a href="#outputs">outputs</a>' if data.outputs is not None else "")
        + "</nav>\n"
        + "\n".join(sections)
        + f"\n<script>{_RENDER}</script>\n</body></html>\n"
    )


def render_report(data: ReportData, out: Path) -> Path:
    """Write the report to ``out`` (atomically: a reader never sees half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(data)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a report is for sharing
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
