"""One look for results wherever they are drawn: the HTML report and the Airflow page.

A verdict has one colour and one marker everywhere (chart markers, table
badges, the legend), so "red triangle" means the same thing in a report
file, on the Benchmarks page and in the docs. Kinds this module does not know
(verdicts a newer detector stores) fall back to a neutral style instead of
failing a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bench.stats.types import VERDICTS

#: Marker kinds, in legend order: the detector's verdicts, then change points.
MARKER_KINDS: tuple[str, ...] = (*VERDICTS, "changepoint")

COLORS: Mapping[str, str] = MappingProxyType(
    {
        "regression": "#d62728",
        "suspicious": "#ff7f0e",
        "improvement": "#2ca02c",
        "changepoint": "#6a3d9a",
        "output_changed": "#c51b8a",  # other tokens: not a number that moved
        "other": "#7f7f7f",  # a kind this version does not know
        "slo": "#8c564b",
        "latest": "#1f77b4",  # first-night bars: the latest run ...
        "earlier": "#aec7e8",  # ... and the one before, lighter
    }
)

#: Colours of the configurations' lines: blues, teals, purples and greys, none
#: that reads as a verdict's red, orange or green.
COLORWAY: tuple[str, ...] = (
    "#1f77b4", "#17becf", "#9467bd", "#7f7f7f", "#393b79",
    "#e377c2", "#bcbd22", "#5254a3", "#6baed6", "#636363",
)  # fmt: skip

MARKER_STYLE: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "regression": {"color": COLORS["regression"], "symbol": "triangle-up", "size": 12},
        "suspicious": {"color": COLORS["suspicious"], "symbol": "circle-open", "size": 11,
                       "line": {"width": 2}},
        "improvement": {"color": COLORS["improvement"], "symbol": "triangle-down", "size": 12},
        "changepoint": {"color": COLORS["changepoint"], "symbol": "diamond-open", "size": 13,
                        "line": {"width": 2}},
    }
)  # fmt: skip
#: What a legend calls a kind (its stored name otherwise).
KIND_LABELS: Mapping[str, str] = MappingProxyType({"changepoint": "change point"})
_OTHER_MARKER: Mapping[str, Any] = {"color": COLORS["other"], "symbol": "square-open", "size": 11}

#: The run-config field holding each metric family's SLO (ms): a ttft_* chart
#: draws ``slo_ttft_ms``, a tpot_* chart ``slo_tpot_ms``.
SLO_FIELDS: Mapping[str, str] = MappingProxyType({"ttft": "slo_ttft_ms", "tpot": "slo_tpot_ms"})

#: Plotly layout shared by every figure: the empty ``none`` template keeps a
#: figure's JSON to a few KB (plotly's default template adds ~7 KB each).
LAYOUT: Mapping[str, Any] = MappingProxyType(
    {
        "template": "none",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.12},
    }
)
GRID = "#eee"


def marker_style(kind: str) -> dict[str, Any]:
    """The plotly marker of a verdict or change point (a copy: plotly may mutate it)."""
    style = MARKER_STYLE.get(kind, _OTHER_MARKER)
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in style.items()}


def slo_family(metric: str) -> str | None:
    """``ttft`` for ``ttft_p99_ms``, ``tpot`` for ``tpot_p50_ms``; None for a metric no SLO bounds."""
    family = metric.split("_", 1)[0]
    return family if family in SLO_FIELDS and metric.endswith("_ms") else None


def badge_css() -> str:
    """CSS of the verdict badges (``<span class="badge regression">``) in tables."""
    rules = [
        ".badge{display:inline-block;border-radius:3px;padding:0 4px;font-size:.75em;"
        f"color:#fff;margin-left:4px;background:{COLORS['other']}}}"
    ]
    rules += [
        f".badge.{kind}{{background:{COLORS[kind]}}}" for kind in (*MARKER_KINDS, "output_changed")
    ]
    return "\n".join(rules)
