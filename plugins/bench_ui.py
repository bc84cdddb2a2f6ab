"""The "Benchmarks" page of the Airflow UI: metric trends and the latest regressions.

A FastAPI app the api-server mounts under ``/benchmarks``, shown in the UI's
navigation bar as an external view (an iframe at ``/plugin/benchmarks``).
Server-rendered HTML with a plotly chart (plotly.js served by the app itself:
Airflow hosts often have no internet), plus the same data as JSON under
``/benchmarks/api/``.

Read-only: the named queries of ``sql/queries/`` with bound parameters, on a
connection Postgres itself keeps read-only. Every route needs an Airflow user
allowed to read DAG runs (the UI's ``_token`` cookie or a bearer JWT, checked
by Airflow's own security dependencies); a browser without a session is sent
to the login page.

Every Airflow component (scheduler, dag-processor, each task process) imports
every plugin file, so nothing heavy is imported at the top: the app (FastAPI,
Airflow's API security module, jinja2, plotly) is built on its first request,
in the api-server only. No ``from __future__ import annotations`` either: the
routes are defined inside :func:`create_app` and FastAPI must resolve their
annotations there.
"""

import functools
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin

from bench.errors import BenchError, ConfigError, DatabaseUnavailable

if TYPE_CHECKING:
    import sqlalchemy as sa
    from fastapi import FastAPI

URL_PREFIX = "/benchmarks"
UI_ROUTE = "benchmarks"
ASSETS = Path(__file__).resolve().parent / "bench_ui_assets"
DEFAULT_METRIC = "ttft_p50_ms"
DEFAULT_LAST = 30
MAX_LAST = 1000
#: Rows of the "latest regressions" table on the page.
REGRESSIONS_SHOWN = 20
VERDICTS = ("regression", "suspicious", "improvement")
EVERY_ROW = 2**63 - 1  # a LIMIT that keeps every row (Postgres bigint max)
VERDICT_STYLE = {  # plotly marker per verdict, drawn over the trend lines
    "regression": {"color": "#d62728", "symbol": "x-thin-open", "size": 16, "line": {"width": 3}},
    "suspicious": {"color": "#ff7f0e", "symbol": "diamond-open", "size": 14, "line": {"width": 2}},
    "improvement": {"color": "#2ca02c", "symbol": "circle-open", "size": 14, "line": {"width": 2}},
}


# -- what the page shows: plain functions over the results DB ------------------------------


@dataclass(frozen=True)
class View:
    """The validated query parameters of the page and of ``api/series``."""

    model: str | None  # None: the DB holds no model yet
    metric: str
    last: int


def reader_engine() -> "sa.Engine":
    """The results DB (connection ``bench_results``, else BENCH_DB_URL, else the
    embedded server), every transaction ``READ ONLY``: a bug here cannot write."""
    from bench_results import results_db_url

    from bench.store.db import get_engine

    return get_engine(results_db_url()).execution_options(postgresql_readonly=True)


def list_models(engine: "sa.Engine") -> list[dict[str, Any]]:
    from bench.store.queries import run_query

    return run_query(engine, "benchmark_models")


def parse_last(last: str | None, name: str = "last") -> int:
    """``last`` as an integer in 1..MAX_LAST; ConfigError (-> 400) otherwise."""

    if last is None or last == "":
        return DEFAULT_LAST
    try:
        number = int(last)
    except ValueError:
        raise ConfigError(f"{name} must be an integer from 1 to {MAX_LAST}, got {last!r}") from None
    if not 1 <= number <= MAX_LAST:
        raise ConfigError(f"{name} must be an integer from 1 to {MAX_LAST}, got {last!r}")
    return number


def parse_view(
    models: Sequence[dict[str, Any]], model: str | None, metric: str | None, last: str | None
) -> View:
    """Check the parameters against the allowed metrics and the DB's models.
    No model given: the one that ran most recently."""
    from bench.store.queries import RUN_METRICS

    metric = metric or DEFAULT_METRIC
    if metric not in RUN_METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of: {', '.join(RUN_METRICS)}")
    n = parse_last(last)
    names = [m["model"] for m in models]
    if model:
        if model not in names:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise ConfigError(
                f"unknown model {model!r}; models with results: {shown or 'none yet'}"
            )
        return View(model, metric, n)
    if not models:
        return View(None, metric, n)
    ran = [m for m in models if m["last_started_at"] is not None]
    newest = max(ran, key=lambda m: m["last_started_at"]) if ran else models[0]
    return View(str(newest["model"]), metric, n)


def trend(engine: "sa.Engine", view: View) -> list[dict[str, Any]]:
    """One series per configuration of ``view.model`` (its newest ``view.last``
    successful runs, oldest first); each point carries the detector's verdict
    on ``view.metric`` for that run, if any."""
    from bench.store.queries import run_query

    if view.model is None:
        return []
    rows = run_query(engine, "metric_series", model=view.model, metric=view.metric, last=view.last)
    if not rows:
        return []
    # Every run in a window started at or after the oldest point: the verdicts
    # of that span are a superset of the ones the chart needs.
    verdicts = {
        v["run_id"]: v
        for v in run_query(
            engine,
            "latest_regressions",
            verdict="",
            model=view.model,
            metric=view.metric,
            since=min(r["started_at"] for r in rows),
            last=EVERY_ROW,
        )
    }
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        entry = series.setdefault(
            (row["label"], row["fingerprint"]),
            {"label": row["label"], "fingerprint": row["fingerprint"], "points": []},
        )
        verdict = verdicts.get(row["run_id"])
        entry["points"].append(
            {
                "run_id": row["run_id"],
                "started_at": row["started_at"],
                "dag_run_id": row["dag_run_id"],
                "value": _finite(row["value"]),
                "verdict": None
                if verdict is None
                else {
                    k: verdict[k]
                    for k in ("verdict", "baseline", "current", "change_pct", "p_value")
                },
            }
        )
    return list(series.values())


def latest_regressions(
    engine: "sa.Engine",
    *,
    model: str = "",
    verdict: str = "regression",
    last: int = REGRESSIONS_SHOWN,
) -> list[dict[str, Any]]:
    """The newest detector verdicts (every model by default), newest run first."""
    from bench.store.queries import run_query

    if verdict and verdict not in VERDICTS:
        raise ConfigError(f"unknown verdict {verdict!r}; choose one of: {', '.join(VERDICTS)}")
    return run_query(engine, "latest_regressions", verdict=verdict, model=model, last=last)


def dag_run_path(dag_id: str | None, dag_run_id: str) -> str | None:
    """The Airflow UI path of a DAG run, relative to the Airflow base URL
    (None for a `bench run` from the shell, which has no DAG)."""
    if not dag_id:
        return None
    return f"dags/{quote(dag_id, safe='')}/runs/{quote(dag_run_id, safe='')}"


def figure(view: View, series: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The plotly figure (plain JSON) of a trend: a line per configuration and,
    on top, one marker trace per verdict kind."""
    labels = [s["label"] for s in series]
    data: list[dict[str, Any]] = []
    flagged: dict[str, list[tuple[datetime, float | None, str]]] = {v: [] for v in VERDICTS}
    for s in series:
        name = (
            s["label"]
            if labels.count(s["label"]) == 1
            else f"{s['label']} ({s['fingerprint'][:8]})"
        )
        points = s["points"]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": html.escape(name),
                "x": [p["started_at"].isoformat() for p in points],
                "y": [p["value"] for p in points],
                "text": [html.escape(p["dag_run_id"]) for p in points],
                "hovertemplate": "%{y:.4g}<br>%{x}<br>%{text}<extra>"
                + html.escape(name)
                + "</extra>",
            }
        )
        for p in points:
            if p["verdict"]:
                v = p["verdict"]
                change = "" if v["change_pct"] is None else f" {v['change_pct']:+.1f}%"
                pval = "" if v["p_value"] is None else f", p={v['p_value']:.3g}"
                flagged[v["verdict"]].append(
                    (
                        p["started_at"],
                        p["value"],
                        f"{html.escape(name)}: {v['verdict']}{change}{pval}",
                    )
                )
    for verdict, marks in flagged.items():
        if marks:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": verdict,
                    "x": [m[0].isoformat() for m in marks],
                    "y": [m[1] for m in marks],
                    "text": [m[2] for m in marks],
                    "hovertemplate": "%{text}<extra></extra>",
                    "marker": VERDICT_STYLE[verdict],
                }
            )
    title = (
        f"{html.escape(view.metric)} of {html.escape(view.model or '')},"
        f" newest {view.last} runs per configuration"
    )
    return {
        "data": data,
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": "run start (UTC)"}},
            "yaxis": {"title": {"text": view.metric}, "rangemode": "tozero"},
            "hovermode": "closest",
            "legend": {"orientation": "h", "y": -0.2},
            "margin": {"t": 50, "r": 20},
        },
    }


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# -- the FastAPI app -----------------------------------------------------------------------


@functools.cache
def plotly_js() -> tuple[str, bytes]:
    """(version, plotly.min.js) from the installed plotly package, read once."""
    import plotly
    from plotly.offline import get_plotlyjs

    return str(plotly.__version__), get_plotlyjs().encode()


def _status(exc: BenchError) -> int:
    if isinstance(exc, ConfigError):
        return 400  # a bad parameter
    if isinstance(exc, DatabaseUnavailable):
        return 503
    return 500


def _wants_html(request: Any) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _airflow_root(request: Any) -> str:
    """The Airflow base path (``[api] base_url``'s path), from this app's mount point."""
    return str(request.scope.get("root_path", "")).removesuffix(URL_PREFIX)


def create_app() -> "FastAPI":
    """The app behind ``/benchmarks``; every route requires read access to DAG runs."""
    import jinja2
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from bench.store.db import display_url
    from bench.store.queries import RUN_METRICS

    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ASSETS), autoescape=True, undefined=jinja2.StrictUndefined
    )
    app = FastAPI(
        title="Benchmarks",
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def error_page(status: int, message: str) -> HTMLResponse:
        body = templates.get_template("error.html").render(status=status, message=message)
        return HTMLResponse(body, status_code=status)

    @app.exception_handler(BenchError)
    async def bench_error(request: Request, exc: BenchError) -> Response:
        status = _status(exc)
        if _wants_html(request):
            return error_page(status, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            if exc.status_code == 401:  # no (or an expired) session: log in, then come back
                login = (
                    f"{_airflow_root(request)}/auth/login?next={quote(str(request.url), safe='')}"
                )
                return RedirectResponse(login, status_code=303)
            return error_page(exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    @app.get("/", response_class=HTMLResponse)
    def page(
        request: Request,
        model: str | None = None,
        metric: str | None = None,
        last: str | None = None,
    ) -> HTMLResponse:
        engine = reader_engine()
        models = list_models(engine)
        view = parse_view(models, model, metric, last)
        series = trend(engine, view)
        regressions = latest_regressions(engine)
        for r in regressions:
            r["href"] = dag_run_path(r["dag_id"], r["dag_run_id"])
        body = templates.get_template("benchmarks.html").render(
            view=view,
            models=models,
            metrics=RUN_METRICS,
            max_last=MAX_LAST,
            figure=figure(view, series) if series else None,
            regressions=regressions,
            plotly_version=plotly_js()[0],
            db=display_url(engine.url),
            app_root=request.scope.get("root_path", ""),
            airflow_root=_airflow_root(request),
        )
        return HTMLResponse(body)

    @app.get("/api/models")
    def api_models() -> dict[str, Any]:
        return {"models": list_models(reader_engine())}

    @app.get("/api/series")
    def api_series(
        model: str | None = None, metric: str | None = None, last: str | None = None
    ) -> dict[str, Any]:
        engine = reader_engine()
        view = parse_view(list_models(engine), model, metric, last)
        return {
            "model": view.model,
            "metric": view.metric,
            "last": view.last,
            "series": trend(engine, view),
        }

    @app.get("/api/regressions")
    def api_regressions(
        model: str | None = None, verdict: str | None = None, last: str | None = None
    ) -> dict[str, Any]:
        rows = latest_regressions(
            reader_engine(),
            model=model or "",
            verdict="regression" if verdict is None else verdict,
            last=parse_last(last) if last else REGRESSIONS_SHOWN,
        )
        for r in rows:
            r["href"] = dag_run_path(r["dag_id"], r["dag_run_id"])
        return {"regressions": rows}

    @app.get("/plotly-{version}.min.js")
    def plotly(version: str) -> Response:
        current, script = plotly_js()
        if version != current:
            raise StarletteHTTPException(404, f"this server has plotly {current}")
        return Response(
            script,
            media_type="text/javascript",
            headers={"Cache-Control": "private, max-age=31536000, immutable"},
        )

    @app.get("/icon.svg")
    def icon() -> Response:
        return Response(
            (ASSETS / "icon.svg").read_bytes(),
            media_type="image/svg+xml",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    return app


class LazyApp:
    """An ASGI app that builds the real one (:func:`create_app`) on its first
    request, so only the api-server pays for FastAPI and Airflow's API imports."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()  # synchronous: no other request interleaves
        await self._app(scope, receive, send)


class BenchmarksPlugin(AirflowPlugin):
    name = "bench_ui"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "Benchmarks"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Benchmarks",
            # Relative to the UI's <base href>: works under any [api] base_url.
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "icon": f"{URL_PREFIX.lstrip('/')}/icon.svg",
            "url_route": UI_ROUTE,
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
