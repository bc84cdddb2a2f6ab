"""The HTML report: trends with regression and change-point markers, the latest
campaign against its baseline, per-request CDFs and the throughput/latency
Pareto view, in one self-contained file.

The caller (the store, the ``report`` task) fills a :class:`ReportData`;
:func:`render_report` draws it. Public names are pinned by
``tests/report/test_report.py``.
"""

from bench.report.data import (
    ConfigSeries,
    Marker,
    MarkerKind,
    ParetoPoint,
    ReportData,
    Samples,
    TableRow,
)
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
