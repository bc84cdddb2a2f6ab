"""What the Airflow Benchmarks page shows, as plain functions over the results DB.

The plugin (``plugins/bench_ui.py``) is a thin shell: it routes requests,
checks Airflow's auth and renders a template; choosing the view from the
query parameters, reading the series and verdicts, drawing the figure and
shaping the JSON all happen here, with the same readers
(:mod:`bench.report.trends`) and the same figure builder
(:mod:`bench.report.figures`) as the HTML report.

Query parameters are untrusted: each is checked against a closed set (the
metrics, the verdicts, the models the DB holds) or parsed as a bounded
integer before any SQL runs, and an error message quotes at most
:data:`SHOWN_CHARS` of it. Values reach SQL only as bound parameters of the
named queries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import plotly.graph_objects as go
import sqlalchemy as sa

from bench.errors import ConfigError
from bench.report.data import ConfigSeries, Marker
from bench.report.figures import (
    display_names,
    first_nights,
    marker_label,
    metric_figure,
    slo_values,
)
from bench.report.trends import model_series
from bench.stats.types import DEFAULT_VERDICTS, STORED_VERDICTS
from bench.store.queries import RUN_METRICS, run_query

DEFAULT_METRIC = "ttft_p50_ms"
DEFAULT_LAST = 30
MAX_LAST = 1000
#: Rows of the "latest regressions" table on the page.
REGRESSIONS_SHOWN = 20
#: Reports listed on the page (the JSON API lists up to MAX_LAST).
REPORTS_SHOWN = 10
#: Longest piece of a bad parameter quoted back in an error message.
SHOWN_CHARS = 60


@dataclass(frozen=True)
class View:
    """The validated query parameters of the page and of ``api/series``."""

    model: str | None  # None: the DB holds no model yet
    metric: str
    last: int
    #: one workload shape (``in128-out128``); None: every configuration
    shape: str | None = None
    device_model: str = ""  # '': every device model, each its own series


#: A workload shape as labels end in it (``.../bs8/in128-out128``, or
#: ``.../outds256`` for a dataset's output lengths capped at 256, then perhaps
#: ``@target``) and as the ``shape`` parameter names it.
_SHAPE = re.compile(r"in\d+-out\d+|outds\d+")
_LABEL_SHAPE = re.compile(r"/(in\d+-out\d+|outds\d+)(?=@|$)")


def shape_of(label: str) -> str | None:
    """The shape a configuration label ends in; None for a configuration
    that used its prompt set as is."""
    found = _LABEL_SHAPE.search(label)
    return found.group(1) if found else None


def parse_shape(shape: str | None) -> str | None:
    if not shape:
        return None
    if not _SHAPE.fullmatch(shape):
        raise ConfigError(f"shape {shown(shape)}: expected inN-outM (e.g. in128-out128) or outdsN")
    return shape


def list_shapes(engine: sa.Engine, model: str | None) -> list[str]:
    """The shapes the model's configurations were measured at (the page's filter)."""
    if model is None:
        return []
    found = {r["shape"] for r in run_query(engine, "latest_per_config", model=model)}
    shapes = [s for s in found if _SHAPE.fullmatch(s or "")]
    # exact shapes by their lengths, then the dataset's (outdsN) by their caps
    return sorted(
        shapes, key=lambda s: (s.startswith("outds"), tuple(int(n) for n in re.findall(r"\d+", s)))
    )


def shown(value: str) -> str:
    """A parameter as an error message quotes it: repr, cut to SHOWN_CHARS."""
    return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "...")


def parse_last(last: str | None, default: int = DEFAULT_LAST, name: str = "last") -> int:
    """``last`` as an integer in 1..MAX_LAST (ASCII digits only); ConfigError otherwise."""
    if last is None or last == "":
        return default
    if not (last.isascii() and last.isdigit() and 1 <= int(last) <= MAX_LAST):
        raise ConfigError(f"{name} must be an integer from 1 to {MAX_LAST}, got {shown(last)}")
    return int(last)


def parse_metric(metric: str | None) -> str:
    metric = metric or DEFAULT_METRIC
    if metric not in RUN_METRICS:
        raise ConfigError(
            f"unknown metric {shown(metric)}; choose one of: {', '.join(RUN_METRICS)}"
        )
    return metric


def parse_verdict(verdict: str | None) -> str:
    """Verdicts to filter on, comma-separated: by default what made a run worse
    (``regression,output_changed``); ``''`` for every one."""
    if verdict is None:
        return ",".join(DEFAULT_VERDICTS)
    for name in filter(None, verdict.split(",")):
        if name not in STORED_VERDICTS:
            raise ConfigError(
                f"unknown verdict {shown(name)}; choose one of: {', '.join(STORED_VERDICTS)}"
            )
    return verdict


def parse_model(models: Sequence[dict[str, Any]], model: str | None) -> str | None:
    """A model the DB holds (``''`` or None: no filter); ConfigError naming the choices."""
    if not model:
        return None
    names = [str(m["model"]) for m in models]
    if model not in names:
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ConfigError(
            f"unknown model {shown(model)}; models with results: {listed or 'none yet'}"
        )
    return model


def list_models(engine: sa.Engine) -> list[dict[str, Any]]:
    return run_query(engine, "benchmark_models")


def parse_view(
    models: Sequence[dict[str, Any]],
    model: str | None,
    metric: str | None,
    last: str | None,
    shape: str | None = None,
    device_model: str | None = None,
    device_models: Sequence[dict[str, Any]] = (),
) -> View:
    """Check the parameters against the metrics and the DB's models (and the
    device models it holds: ``device_models`` rows). No model given: the one
    that ran most recently."""
    chosen = parse_model(models, model)
    metric, n, shape = parse_metric(metric), parse_last(last), parse_shape(shape)
    device = parse_device_model(device_models, device_model)
    if chosen or not models:
        return View(chosen, metric, n, shape, device)
    ran = [m for m in models if m["last_started_at"] is not None]
    newest = max(ran, key=lambda m: m["last_started_at"]) if ran else models[0]
    return View(str(newest["model"]), metric, n, shape, device)


def list_device_models(engine: sa.Engine) -> list[dict[str, Any]]:
    """The device models the DB's histories ran on (``device_models``), one row per
    model x device model x cards."""
    return run_query(engine, "device_models")


def parse_device_model(device_models: Sequence[dict[str, Any]], device_model: str | None) -> str:
    """A device model the DB holds (``''`` or None: every one); ConfigError naming the choices."""
    if not device_model:
        return ""
    names = sorted({str(d["device_model"]) for d in device_models})
    if device_model not in names:
        raise ConfigError(
            f"unknown device model {shown(device_model)}; device models with results: "
            f"{', '.join(names) or 'none yet'}"
        )
    return device_model


def trend(engine: sa.Engine, view: View) -> list[ConfigSeries]:
    """Each configuration of the view's model (of the view's shape, when it
    names one): its newest ``last`` ok runs with the verdicts and change
    points on the view's metric (the report's reader)."""
    if view.model is None:
        return []
    series = model_series(
        engine, view.model, [view.metric], last=view.last, device_model=view.device_model
    )
    if view.shape is None:
        return series
    return [s for s in series if shape_of(s.config) == view.shape]


def figure(view: View, series: Sequence[ConfigSeries]) -> go.Figure:
    if first_nights(series):
        title = f"{view.metric} of {view.model}: first runs"
    else:
        runs = "run" if view.last == 1 else f"{view.last} runs"
        title = f"{view.metric} of {view.model}, newest {runs} per configuration"
    return metric_figure(view.metric, series, title)


def first_night_rows(view: View, series: Sequence[ConfigSeries]) -> list[dict[str, Any]]:
    """The values as a table, newest run first per configuration, each with its
    change against the run before: what the page shows beside the chart while
    the history is too short for a trend."""
    if not first_nights(series):
        return []
    rows = []
    for s, name in zip(series, display_names(series), strict=True):
        verdicts = _verdicts(s, view.metric)
        values = [_finite(v) for v in s.values[view.metric]]
        for i in reversed(range(len(s.nights))):
            mark = verdicts.get(s.nights[i])
            rows.append(
                {
                    "config": name,
                    "started_at": s.nights[i],
                    "run": s.runs[i] if s.runs else "",
                    "value": values[i],
                    "change_pct": _change_pct(values[i], values[i - 1]) if i else None,
                    "verdict": mark.kind if mark else None,
                    "verdict_text": marker_label(mark.kind, mark.change_pct, mark.p_value)
                    if mark
                    else "",
                }
            )
    return rows


def slo_lines(view: View, series: Sequence[ConfigSeries]) -> list[float]:
    """The SLO values drawn on this view's chart (none for a metric no SLO bounds)."""
    return slo_values(series, view.metric)


def series_json(view: View, series: Sequence[ConfigSeries]) -> list[dict[str, Any]]:
    """``api/series``: per configuration, its points with the verdict (and change
    point) on the view's metric."""
    out = []
    for s in series:
        verdicts = _verdicts(s, view.metric)
        changes = {
            m.night: m for m in s.markers if m.metric == view.metric and m.kind == "changepoint"
        }
        points = []
        for i, night in enumerate(s.nights):
            mark, change = verdicts.get(night), changes.get(night)
            points.append(
                {
                    "run_id": s.run_ids[i] if s.run_ids else None,
                    "started_at": night,
                    "dag_run_id": s.runs[i] if s.runs else None,
                    "value": _finite(s.values[view.metric][i]),
                    "verdict": None
                    if mark is None
                    else {
                        "verdict": mark.kind,
                        "baseline": mark.baseline,
                        "current": mark.current,
                        "change_pct": mark.change_pct,
                        "p_value": mark.p_value,
                    },
                    "changepoint": None if change is None else {"change_pct": change.change_pct},
                }
            )
        out.append(
            {
                "label": s.config,
                "fingerprint": s.fingerprint,
                "device_model": s.device_model,
                "cards": s.cards,
                "slos": dict(s.slos),
                "points": points,
            }
        )
    return out


def latest_regressions(
    engine: sa.Engine,
    *,
    model: str = "",
    verdict: str = ",".join(DEFAULT_VERDICTS),
    last: int = REGRESSIONS_SHOWN,
) -> list[dict[str, Any]]:
    """The newest detector verdicts (every model by default), newest run first,
    each with the Airflow UI path of its DAG run (``href``)."""
    rows = run_query(engine, "latest_regressions", verdict=verdict, model=model, last=last)
    for r in rows:
        r["href"] = dag_run_path(r["dag_id"], r["dag_run_id"])
    return rows


def dag_run_path(dag_id: str | None, dag_run_id: str) -> str | None:
    """The Airflow UI path of a DAG run, relative to the Airflow base URL
    (None for a `bench run` from the shell, which has no DAG)."""
    if not dag_id:
        return None
    return f"dags/{quote(dag_id, safe='')}/runs/{quote(dag_run_id, safe='')}"


def _verdicts(series: ConfigSeries, metric: str) -> dict[Any, Marker]:
    return {m.night: m for m in series.markers if m.metric == metric and m.kind != "changepoint"}


def _change_pct(value: float | None, before: float | None) -> float | None:
    if value is None or not before:
        return None
    return 100.0 * (value - before) / before


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
