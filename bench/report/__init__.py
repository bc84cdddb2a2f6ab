"""The HTML report: trends with regression and change-point markers, the latest
campaign against its baseline, per-request CDFs and the throughput/latency
Pareto view, in one self-contained file.

The caller (the store, the ``report`` task) fills a :class:`ReportData`;
:func:`render_report` draws it. Public names are pinned by
``tests/report/test_report.py``. The renderer loads lazily (PEP 562): the
``bench run`` path imports ``bench.report.text`` and must not need plotly or
scipy (the ``stats`` extra), nor pay seconds to import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.report.data import (
    ConfigSeries,
    Marker,
    MarkerKind,
    ParetoPoint,
    ReportData,
    Samples,
    TableRow,
)

if TYPE_CHECKING:
    from bench.report.page import render_html, render_report

__all__ = [
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


def __getattr__(name: str) -> Any:
    if name in ("render_html", "render_report"):
        from bench.report import page

        return getattr(page, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
