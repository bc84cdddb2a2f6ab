"""The "Benchmarks" page of the Airflow UI: metric trends, the latest regressions
and the campaigns' HTML reports.

A FastAPI app the api-server mounts under ``/benchmarks``, shown in the UI's
navigation bar as an external view (an iframe at ``/plugin/benchmarks``).
A thin shell over :mod:`bench.report`: the series, verdicts, change points,
SLOs and the figure come from :mod:`bench.report.browse` (the readers and
the figure builder of the HTML report), the report files from
:mod:`bench.report.files`; this module routes, checks access and renders.
plotly.js is served by the app itself (Airflow hosts often have no
internet); the same data is JSON under ``/benchmarks/api/``.

Read-only: named queries with bound parameters, every transaction ``READ
ONLY``, through the ``bench_reader`` login when one is configured
(``plugins/bench_results.py``). Every route needs an Airflow user allowed to
read DAG runs (the UI's ``_token`` cookie or a bearer JWT, checked by
Airflow's own security dependencies); a browser without a session is sent to
the login page. Bad parameters are 400s with a one-line reason, a missing
report a 404, an unreachable DB a 503; no error shows a traceback.

Every Airflow component (scheduler, dag-processor, each task process) imports
every plugin file, so nothing heavy is imported at the top: the app (FastAPI,
Airflow's API security module, jinja2, plotly) is built on its first request,
in the api-server only. No ``from __future__ import annotations`` either: the
routes are defined inside :func:`create_app` and FastAPI must resolve their
annotations there.
"""

import functools
import logging
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
#: Served reports run their scripts in an opaque origin: a report can draw its
#: charts but cannot read the Airflow session or call the API as the user.
REPORT_CSP = "sandbox allow-scripts; frame-ancestors 'self'"

log = logging.getLogger(__name__)


def reader_engine() -> "sa.Engine":
    """The results DB for reading (``bench_results_reader``, else
    ``BENCH_READER_DB_URL``, else the writers' DB), every transaction READ ONLY."""
    from bench_results import reader_db_url

    from bench.store.queries import reader_engine as read_only

    return read_only(reader_db_url())


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
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import (
        FileResponse,
        HTMLResponse,
        JSONResponse,
        RedirectResponse,
        Response,
    )
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from bench.paths import reports_dir
    from bench.report import browse, files
    from bench.report.page import script_json
    from bench.report.style import COLORS, badge_css
    from bench.report.text import human_bytes
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

    def error(request: Request, status: int, message: str) -> Response:
        if _wants_html(request):
            return error_page(status, message)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(BenchError)
    async def bench_error(request: Request, exc: BenchError) -> Response:
        status = _status(exc)
        if status == 500:  # a DB error that is not the user's: logged, not shown
            log.error("benchmarks page: %s", exc)
            return error(
                request, status, "the results DB refused the query; see the api-server log"
            )
        return error(request, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return error(request, 400, "malformed request parameters")

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
        shape: str | None = None,
        device_model: str | None = None,
    ) -> HTMLResponse:
        engine = reader_engine()
        models = browse.list_models(engine)
        devices = browse.list_device_models(engine)
        view = browse.parse_view(
            models, model, metric, last, shape, device_model=device_model, device_models=devices
        )
        series = browse.trend(engine, view)
        body = templates.get_template("benchmarks.html").render(
            view=view,
            models=models,
            shapes=browse.list_shapes(engine, view.model),
            metrics=RUN_METRICS,
            device_models=sorted({str(d["device_model"]) for d in devices}),
            max_last=browse.MAX_LAST,
            figure=script_json(browse.figure(view, series).to_json()) if series else None,
            first_nights=browse.first_night_rows(view, series),
            slos=browse.slo_lines(view, series),
            regressions=browse.latest_regressions(engine),
            reports=files.list_reports(reports_dir(), last=browse.REPORTS_SHOWN),
            reports_shown=browse.REPORTS_SHOWN,
            plotly_version=plotly_js()[0],
            db=display_url(engine.url),
            app_root=request.scope.get("root_path", ""),
            airflow_root=_airflow_root(request),
            badge_css=badge_css(),
            colors=COLORS,
            human_bytes=human_bytes,
        )
        return HTMLResponse(body)

    @app.get("/api/models")
    def api_models() -> dict[str, Any]:
        return {"models": browse.list_models(reader_engine())}

    @app.get("/api/series")
    def api_series(
        model: str | None = None,
        metric: str | None = None,
        last: str | None = None,
        shape: str | None = None,
        device_model: str | None = None,
    ) -> dict[str, Any]:
        engine = reader_engine()
        devices = browse.list_device_models(engine)
        view = browse.parse_view(
            browse.list_models(engine), model, metric, last, shape,
            device_model=device_model, device_models=devices,
        )  # fmt: skip
        series = browse.trend(engine, view)
        return {
            "model": view.model,
            "metric": view.metric,
            "last": view.last,
            "shape": view.shape,
            "device_model": view.device_model,
            "series": browse.series_json(view, series),
        }

    @app.get("/api/regressions")
    def api_regressions(
        model: str | None = None, verdict: str | None = None, last: str | None = None
    ) -> dict[str, Any]:
        engine = reader_engine()
        rows = browse.latest_regressions(
            engine,
            model=browse.parse_model(browse.list_models(engine), model) or "",
            verdict=browse.parse_verdict(verdict),
            last=browse.parse_last(last, default=browse.REGRESSIONS_SHOWN),
        )
        return {"regressions": rows}

    @app.get("/api/reports")
    def api_reports(request: Request, last: str | None = None) -> dict[str, Any]:
        listed = files.list_reports(reports_dir(), last=browse.parse_last(last, default=100))
        root = request.scope.get("root_path", "")
        return {
            "reports": [
                {
                    "dag_id": r.dag_id,
                    "run": r.run,
                    "modified": r.modified,
                    "size": r.size,
                    "url": f"{root}/{r.url_path}",
                }
                for r in listed
            ]
        }

    @app.get("/reports/{dag_id}/{name}")
    def report(dag_id: str, name: str) -> Response:
        path = files.find_report(reports_dir(), dag_id, name)
        if path is None:
            raise StarletteHTTPException(404, "no such report")
        return FileResponse(
            path,
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": REPORT_CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, no-cache",
            },
        )

    @app.get("/plotly-{version}.min.js")
    def plotly(version: str) -> Response:
        current, script = plotly_js()
        if version != current:
            raise StarletteHTTPException(404, "no such plotly version on this server")
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
