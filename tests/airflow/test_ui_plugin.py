"""The "Benchmarks" UI plugin: loaded by Airflow, mounted by Airflow's own app
behind Airflow's auth, serving the right numbers for a synthetic history.

The fast tests build the api-server's FastAPI app in-process (the same
``create_app`` the api-server runs, plugins mounted by Airflow's
``init_plugins``, the simple auth manager issuing real JWTs) and drive it
with a TestClient. The browser test drives headless Chromium against a real
``airflow api-server``: log in on Airflow's login page, open the page in the
UI, wait for the chart, save a screenshot.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench.core.results import RunResult
from bench.orchestration.airflow_env import (
    ADMIN_USER,
    admin_password,
    airflow_bin,
    airflow_environ,
    migrate,
)
from bench.orchestration.tasks import report_path
from bench.report import browse
from bench.report.campaign import write_campaign_report
from bench.store import writer
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.regressions import RegressionRow, replace_regressions
from tests.airflow.chromium import chromium
from tests.airflow.cluster import Cluster
from tests.conftest import REPO, require_tool
from tests.procs import free_port
from tests.store import store_factory as f

UI_ROUTE = "benchmarks"
NIGHTS = 6
#: The file the report task writes for the last night (bench.orchestration.tasks.report_path).
REPORT = report_path(f.nightly(NIGHTS - 1)).name
BATCH_SIZES = (1, 2)
PASSWORD = "bench-ui-test"


def ttft(bs: int, night: int) -> float:
    """Every request of (bs, night) has this TTFT; night 5 of bs 2 jumps."""
    return 10.0 * bs + night + (25.0 if (bs, night) == (2, NIGHTS - 1) else 0.0)


def night_result(bs: int, night: int, model: str = "llama-x") -> RunResult:
    return f.result(
        f.config(model=model, batch_size=bs),
        reqs=f.requests([ttft(bs, night)] * 4),
        campaign=f.nightly(night),
        started_at=f.T0 + timedelta(days=night, minutes=bs),
    )


@pytest.fixture
def history(db_url: str) -> dict[str, Any]:
    """Model llama-x: bs 1 and 2 over 6 nights, a regression verdict on bs 2's
    last night and an improvement on bs 1's night 2; model "older" ran once,
    a day before, from the shell (no DAG)."""
    engine = get_engine(db_url)
    upgrade(engine)
    ids = {
        (bs, n): writer.load_result(engine, night_result(bs, n))
        for bs in BATCH_SIZES
        for n in range(NIGHTS)
    }
    shell_run = writer.load_result(
        engine, f.result(f.config(model="older"), started_at=f.T0 - timedelta(days=1))
    )
    regressed, improved = ids[2, NIGHTS - 1], ids[1, 2]
    replace_regressions(
        engine,
        [regressed, improved, shell_run],
        [
            RegressionRow(
                regressed, "ttft_p50_ms", 24.0, ttft(2, NIGHTS - 1), 125.0, 0.001, "regression"
            ),
            RegressionRow(regressed, "e2e_p99_ms", 30.0, 56.0, 86.7, 0.002, "regression"),
            RegressionRow(improved, "ttft_p50_ms", 12.5, 12.0, -4.0, 0.01, "improvement"),
            RegressionRow(shell_run, "ttft_p50_ms", 9.0, 11.0, 22.2, 0.03, "regression"),
        ],
    )
    return {"ids": ids, "regressed": regressed, "improved": improved, "shell_run": shell_run}


@pytest.fixture
def reports(bench_home: Path) -> Path:
    """Two nights' reports where the report task writes them, and a secret
    beside the reports folder that no URL may reach."""
    for night in (NIGHTS - 2, NIGHTS - 1):
        path = report_path(f.nightly(night))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<!DOCTYPE html><title>report of night {night}</title>")
        os.utime(path, (1_800_000_000 + night, 1_800_000_000 + night))
    (bench_home / "secret.html").write_text("db password")
    (path.parent / "linked.html").symlink_to(bench_home / "secret.html")
    return path.parent.parent


@pytest.fixture
def first_night(db_url: str) -> None:
    """Model "fresh": two configurations, one night, a TTFT SLO of 30 ms."""
    engine = get_engine(db_url)
    upgrade(engine)
    for bs in (1, 8):
        writer.load_result(
            engine,
            f.result(
                f.config(model="fresh", batch_size=bs, slo_ttft_ms=30.0),
                reqs=f.requests([5.0 * bs] * 4),
                campaign=f.nightly(0, dag_id="llm_bench_smoke"),
                started_at=f.T0 + timedelta(minutes=bs),
            ),
        )


@pytest.fixture(scope="module")
def airflow_app(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow's api-server app (core API, plugins, simple auth manager), in-process.

    Token checks read the metadata DB (revoked tokens): the session's throwaway
    one (tests/conftest.py) gets the migrated schema first."""
    from airflow import settings

    metadata_db = Path(sa.make_url(str(settings.SQL_ALCHEMY_CONN)).database or "")
    assert metadata_db.parent == Path(os.environ["AIRFLOW_HOME"]), metadata_db
    shutil.copy(migrated_sqlite, metadata_db)
    if settings.engine is not None:
        settings.engine.dispose()  # no connection keeps reading the file it replaced
    home = tmp_path_factory.mktemp("ui-airflow")
    (home / "passwords.json").write_text(json.dumps({"viewer": PASSWORD}))
    with pytest.MonkeyPatch.context() as mp:
        # the least role there is: reading DAG runs is all the page needs
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "viewer:viewer")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(home / "passwords.json"))
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "bench-ui-test-" + "s" * 64)
        from airflow.api_fastapi.app import create_app, purge_cached_app

        yield create_app(apps="core")
        purge_cached_app()


@pytest.fixture
def client(airflow_app: Any) -> TestClient:
    return TestClient(airflow_app, follow_redirects=False)


def login(client: TestClient) -> dict[str, str]:
    response = client.post("/auth/token", json={"username": "viewer", "password": PASSWORD})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# -- loading -------------------------------------------------------------------------------


def test_airflow_loads_the_plugin_and_lists_its_view() -> None:
    from airflow import plugins_manager

    [info] = [p for p in plugins_manager.get_plugin_info() if p["name"] == "bench_ui"]
    assert info["fastapi_apps"] == [
        {"app": "bench_ui.LazyApp", "url_prefix": "/benchmarks", "name": "Benchmarks"}
    ]
    [view] = info["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == (
        "Benchmarks",
        "benchmarks/",
        "benchmarks",
        "nav",
    )
    assert not [e for e in plugins_manager._get_plugins()[1] if "bench_ui" in e]


@pytest.mark.slow
def test_airflow_plugins_cli_shows_it() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "plugins", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    [info] = [p for p in json.loads(out[out.index("[") :]) if p["name"] == "bench_ui"]
    assert info["external_views"][0]["url_route"] == "benchmarks"


def test_importing_the_plugin_stays_light() -> None:
    """Tasks and the scheduler import every plugin file: the FastAPI app and
    Airflow's API security module load on the first request only."""
    code = (
        "import sys; sys.path.insert(0, 'plugins'); import bench_ui; "
        "heavy = [m for m in ('fastapi', 'airflow.api_fastapi.core_api.security', 'plotly') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


# -- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/benchmarks/",
        "/benchmarks/api/series",
        "/benchmarks/api/models",
        "/benchmarks/api/regressions",
        "/benchmarks/api/reports",
        f"/benchmarks/reports/llm_bench_nightly/{REPORT}",
        "/benchmarks/icon.svg",
    ],
)
def test_without_a_session_nothing_is_served(
    client: TestClient, history: dict, reports: Path, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert "llama-x" not in response.text and "report of" not in response.text
    forged = client.get(path, headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 403
    client.cookies.set("_token", "not.a.jwt")
    assert client.get(path).status_code == 403
    client.cookies.clear()


def test_a_browser_without_a_session_is_sent_to_the_login_page(
    client: TestClient, history: dict
) -> None:
    response = client.get("/benchmarks/?metric=e2e_p99_ms", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/auth/login?next=http%3A%2F%2Ftestserver%2Fbenchmarks%2F%3Fmetric%3De2e_p99_ms"
    )
    login_page = client.get(response.headers["location"])  # the simple auth manager's form
    assert login_page.status_code == 200 and "<html" in login_page.text


def test_the_ui_session_cookie_is_accepted(client: TestClient, history: dict) -> None:
    token = login(client)["Authorization"].split()[1]
    client.cookies.set("_token", token)
    assert client.get("/benchmarks/api/models").status_code == 200
    client.cookies.clear()


# -- data ----------------------------------------------------------------------------------


def test_series_are_the_trend_of_each_configuration_with_verdicts(
    client: TestClient, history: dict
) -> None:
    auth = login(client)
    body = client.get(
        "/benchmarks/api/series?model=llama-x&metric=ttft_p50_ms&last=4", headers=auth
    ).json()
    assert (body["model"], body["metric"], body["last"]) == ("llama-x", "ttft_p50_ms", 4)
    assert [s["label"] for s in body["series"]] == ["llama-x/fp32/bs1", "llama-x/fp32/bs2"]
    for bs, s in zip(BATCH_SIZES, body["series"], strict=True):
        nights = range(NIGHTS - 4, NIGHTS)
        assert [p["value"] for p in s["points"]] == [ttft(bs, n) for n in nights]
        assert [p["run_id"] for p in s["points"]] == [history["ids"][bs, n] for n in nights]
        assert [p["dag_run_id"] for p in s["points"]] == [f.nightly(n).dag_run_id for n in nights]
    flagged = {
        p["run_id"]: p["verdict"] for s in body["series"] for p in s["points"] if p["verdict"]
    }
    assert flagged == {
        history["regressed"]: {
            "verdict": "regression",
            "baseline": 24.0,
            "current": 50.0,
            "change_pct": 125.0,
            "p_value": 0.001,
        },
        history["improved"]: {
            "verdict": "improvement",
            "baseline": 12.5,
            "current": 12.0,
            "change_pct": -4.0,
            "p_value": 0.01,
        },
    }
    # the other metric's verdicts stay on their metric
    e2e = client.get("/benchmarks/api/series?model=llama-x&metric=e2e_p99_ms", headers=auth).json()
    assert [p["run_id"] for s in e2e["series"] for p in s["points"] if p["verdict"]] == [
        history["regressed"]
    ]
    assert sum(len(s["points"]) for s in e2e["series"]) == 2 * NIGHTS


def test_defaults_pick_the_model_that_ran_last(client: TestClient, history: dict) -> None:
    auth = login(client)
    body = client.get("/benchmarks/api/series", headers=auth).json()
    assert (body["model"], body["metric"], body["last"]) == ("llama-x", "ttft_p50_ms", 30)
    models = client.get("/benchmarks/api/models", headers=auth).json()["models"]
    assert [(m["model"], m["n_configs"]) for m in models] == [("llama-x", 2), ("older", 1)]


def test_latest_regressions_newest_first_with_dag_run_links(
    client: TestClient, history: dict
) -> None:
    auth = login(client)
    rows = client.get("/benchmarks/api/regressions", headers=auth).json()["regressions"]
    assert [(r["run_id"], r["metric"]) for r in rows] == [
        (history["regressed"], "e2e_p99_ms"),
        (history["regressed"], "ttft_p50_ms"),
        (history["shell_run"], "ttft_p50_ms"),
    ]
    run_id = f.nightly(NIGHTS - 1).dag_run_id
    assert (
        rows[0]["href"]
        == f"dags/llm_bench_nightly/runs/{run_id.replace(':', '%3A').replace('+', '%2B')}"
    )
    assert rows[2]["href"] is None and rows[2]["dag_id"] is None  # `bench run` from the shell
    every = client.get(
        "/benchmarks/api/regressions?verdict=&model=llama-x&last=2", headers=auth
    ).json()
    assert [r["metric"] for r in every["regressions"]] == ["e2e_p99_ms", "ttft_p50_ms"]


def test_the_page_renders_chart_selectors_and_table(client: TestClient, history: dict) -> None:
    auth = login(client)
    page = client.get("/benchmarks/?model=llama-x&metric=ttft_p50_ms&last=5", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert re.search(r'<option value="llama-x"\s+selected>', html)
    assert re.search(r'<option value="ttft_p50_ms"\s+selected>', html)
    assert 'value="5"' in html
    figure = json.loads(re.search(r"const figure = (.*);\n", html).group(1))  # type: ignore[union-attr]
    names = [t["name"] for t in figure["data"]]
    # markers drawn worst last (on top); the legend lists them worst first
    assert names == ["llama-x/fp32/bs1", "llama-x/fp32/bs2", "improvement", "regression"]
    assert figure["data"][1]["y"] == [ttft(2, n) for n in range(NIGHTS - 5, NIGHTS)]
    [regression] = [d for d in figure["data"] if d["name"] == "regression"]
    assert regression["y"] == [ttft(2, NIGHTS - 1)]
    assert "+125.0%" in regression["text"][0]
    script = re.search(r'<script src="(/benchmarks/plotly-[\d.]+\.min\.js)">', html).group(1)  # type: ignore[union-attr]
    js = client.get(script, headers=auth)
    assert (
        js.status_code == 200 and "plotly" in js.text[:2000].lower() and len(js.content) > 1_000_000
    )
    assert "immutable" in js.headers["cache-control"]
    assert '<a class="airflow-link" href="/dags/llm_bench_nightly/runs/scheduled__' in html
    assert html.count("<tr>") == 1 + 3  # header + the three regressions


def test_an_empty_results_db_says_so(client: TestClient, db_url: str) -> None:
    upgrade(get_engine(db_url))
    auth = login(client)
    page = client.get("/benchmarks/", headers=auth)
    assert page.status_code == 200 and "No benchmark results yet" in page.text
    assert client.get("/benchmarks/api/series", headers=auth).json()["series"] == []


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("metric=ttft", "unknown metric 'ttft'; choose one of: n_requests, "),
        ("metric=ttft_p50_ms;DROP TABLE run", "unknown metric 'ttft_p50_ms;DROP TABLE run'"),
        ("model=nope", "unknown model 'nope'; models with results: llama-x, older"),
        ("last=0", "last must be an integer from 1 to 1000, got '0'"),
        ("last=ten", "last must be an integer from 1 to 1000, got 'ten'"),
        ("last=100000", "last must be an integer from 1 to 1000"),
    ],
)
def test_bad_parameters_are_400_with_the_reason(
    client: TestClient, history: dict, query: str, message: str
) -> None:
    auth = login(client)
    api = client.get(f"/benchmarks/api/series?{query}", headers=auth)
    assert api.status_code == 400 and api.json()["detail"].startswith(message)
    page = client.get(f"/benchmarks/?{query}", headers={**auth, "Accept": "text/html"})
    assert page.status_code == 400 and message.replace("'", "&#39;") in page.text
    verdict = client.get("/benchmarks/api/regressions?verdict=bad", headers=auth)
    assert verdict.status_code == 400 and verdict.json()["detail"].startswith(
        "unknown verdict 'bad'"
    )


def test_names_from_the_db_are_escaped(client: TestClient, db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    hostile = "<img src=x onerror=alert(1)>"
    run_id = writer.load_result(engine, f.result(f.config(model=hostile), campaign=f.nightly(0)))
    replace_regressions(
        engine,
        [run_id],
        [RegressionRow(run_id, "ttft_p50_ms", 1.0, 2.0, 100.0, 0.01, "regression")],
    )
    page = client.get("/benchmarks/", headers=login(client))
    assert page.status_code == 200 and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert hostile not in page.text  # nor in the figure's JSON (tojson escapes <, >)


def test_an_unreachable_results_db_is_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DB_URL", "postgresql+psycopg2://u:secret@127.0.0.1:9/none")
    auth = login(client)
    response = client.get("/benchmarks/api/models", headers=auth)
    assert response.status_code == 503
    assert "results DB unreachable" in response.json()["detail"] and "secret" not in response.text


def test_the_page_reads_through_a_read_only_connection(
    history: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    import bench_ui

    with (
        pytest.raises(sa.exc.InternalError, match="read-only transaction"),
        bench_ui.reader_engine().connect() as conn,
    ):
        conn.execute(sa.text("DELETE FROM regression"))
    assert len(browse.latest_regressions(get_engine(os.environ["BENCH_DB_URL"]), verdict="")) == 4


def test_the_bench_reader_login_is_used_when_configured(
    client: TestClient, history: dict, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection bench_results_reader (here from its AIRFLOW_CONN_ variable)
    wins over the writers' DB: the page reads as bench_reader (migration 010)."""
    engine = get_engine(db_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ALTER ROLE bench_reader WITH LOGIN"))
    url = sa.make_url(db_url)
    reader = {
        "conn_type": "postgres",
        "host": url.query["host"],  # the embedded server's socket directory
        "login": "bench_reader",
        "schema": url.database,
    }
    monkeypatch.setenv("AIRFLOW_CONN_BENCH_RESULTS_READER", json.dumps(reader))
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    import bench_ui

    with bench_ui.reader_engine().connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "bench_reader"
    auth = login(client)
    page = client.get("/benchmarks/?model=llama-x", headers=auth)
    assert page.status_code == 200 and "bench_reader@" in page.text  # "Read-only view of ..."
    assert client.get("/benchmarks/api/series?model=llama-x", headers=auth).json()["series"]


# -- first nights --------------------------------------------------------------------------


def test_first_nights_show_the_values_beside_the_chart_and_the_slo(
    client: TestClient, first_night: None
) -> None:
    auth = login(client)
    html = client.get("/benchmarks/?model=fresh", headers=auth).text
    figure = json.loads(re.search(r"const figure = (.*);\n", html).group(1))  # type: ignore[union-attr]
    assert [(d["type"], d["x"], d["y"]) for d in figure["data"]] == [
        ("bar", ["fresh/fp32/bs1", "fresh/fp32/bs8"], [5.0, 40.0])
    ]
    [slo] = [s for s in figure["layout"]["shapes"] if s["line"]["dash"] == "dash"]
    assert slo["y0"] == 30.0
    table = html[html.index('<table id="values">') : html.index("</table>")]
    assert table.count("<tr>") == 1 + 2 and "fresh/fp32/bs8" in table and ">40<" in table
    assert "SLO 30 ms" in html
    series = client.get("/benchmarks/api/series?model=fresh", headers=auth).json()["series"]
    assert [s["slos"] for s in series] == [{"ttft": 30.0}, {"ttft": 30.0}]
    # a metric no SLO bounds: no line
    throughput = client.get("/benchmarks/?model=fresh&metric=output_tokens_per_s", headers=auth)
    assert "SLO 30 ms" not in throughput.text


# -- reports -------------------------------------------------------------------------------


def test_reports_are_listed_and_served_read_only(
    client: TestClient, history: dict, reports: Path
) -> None:
    auth = login(client)
    listed = client.get("/benchmarks/api/reports", headers=auth).json()["reports"]
    assert [(r["dag_id"], r["run"]) for r in listed] == [
        ("llm_bench_nightly", REPORT.removesuffix(".html")),
        ("llm_bench_nightly", report_path(f.nightly(NIGHTS - 2)).stem),
    ]
    url = listed[0]["url"]
    assert url == f"/benchmarks/reports/llm_bench_nightly/{REPORT}"  # what the report task logs
    page = client.get("/benchmarks/", headers=auth).text
    assert f'<a class="report-link" href="{url}">' in page
    served = client.get(url, headers=auth)
    assert served.status_code == 200 and served.text.endswith(
        f"report of night {NIGHTS - 1}</title>"
    )
    assert served.headers["content-type"] == "text/html; charset=utf-8"
    assert served.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert served.headers["x-content-type-options"] == "nosniff"
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)(url, headers=auth).status_code == 405
    assert client.post("/benchmarks/", headers=auth).status_code == 405


def test_a_browser_without_a_session_logs_in_before_seeing_a_report(
    client: TestClient, reports: Path
) -> None:
    response = client.get(
        f"/benchmarks/reports/llm_bench_nightly/{REPORT}", headers={"Accept": "text/html"}
    )
    assert response.status_code == 303 and response.headers["location"].startswith(
        "/auth/login?next=http%3A%2F%2Ftestserver%2Fbenchmarks%2Freports%2F"
    )


@pytest.mark.parametrize(
    "path",
    [
        "reports/llm_bench_nightly/linked.html",  # a symbolic link to a file outside
        "reports/%2e%2e/secret.html",
        "reports/llm_bench_nightly/%2e%2e%2f%2e%2e%2fsecret.html",
        "reports/..%2F..%2F/secret.html",
        "reports/llm_bench_nightly/..%5C..%5Csecret.html",
        "reports/llm_bench_nightly/%00.html",
        f"reports/llm_bench_nightly/{REPORT.removesuffix('.html')}",
        f"reports/llm_bench_nightly/{REPORT}%00.txt",
        "reports/llm_bench_nightly/.hidden.html",
        "reports/llm_bench_nightly",
        "reports/nope/x.html",
        "reports/" + "a" * 5000 + "/x.html",
    ],
)
def test_only_report_files_are_reachable(client: TestClient, reports: Path, path: str) -> None:
    response = client.get(f"/benchmarks/{path}", headers=login(client))
    assert response.status_code == 404, response.text
    assert "db password" not in response.text and "Traceback" not in response.text


def raw_get(app: Any, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (an HTTP client would remove dot
    segments first), straight through the ASGI app."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_dot_segments_never_leave_the_reports_folder(airflow_app: Any, reports: Path) -> None:
    auth = login(TestClient(airflow_app))
    for raw in (
        "/benchmarks/reports/../secret.html",
        "/benchmarks/reports/llm_bench_nightly/../../secret.html",
        "/benchmarks/reports/../../../etc/passwd",
        "/benchmarks/reports/llm_bench_nightly/..",
    ):
        status, body = raw_get(airflow_app, raw, auth)
        assert status == 404 and b"db password" not in body and b"root:" not in body, raw


# -- hostile input -------------------------------------------------------------------------

HOSTILE = [
    "' OR '1'='1",
    "ttft_p50_ms'; DROP TABLE run; --",
    "1; DELETE FROM regression",
    "llama-x' UNION SELECT password FROM pg_shadow --",
    "../../../../etc/passwd",
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7 * 7 }}{% for x in range(9) %}",
    "\x00",
    "\u202e\u0663",
    "x" * 60_000,  # about what an HTTP client or server accepts in a URL
    "-1",
    "0",
    "1.5",
    "1e999",
    "99999999999999999999999999",
    "NaN",
]
#: Hostile values long and specific enough that finding one in SQL text means
#: the text was built from input.
INJECTED = [v for v in HOSTILE if len(v) >= 10]
ENDPOINTS = {
    "/benchmarks/": ("model", "metric", "last"),
    "/benchmarks/api/series": ("model", "metric", "last"),
    "/benchmarks/api/regressions": ("model", "verdict", "last"),
    "/benchmarks/api/reports": ("last",),
    "/benchmarks/api/models": ("model",),  # takes none: ignored
}


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ).scalars()
        return {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}


def test_every_parameter_fuzzed_is_a_4xx_or_escaped_never_sql(
    client: TestClient, history: dict, reports: Path, db_url: str
) -> None:
    engine = get_engine(db_url)
    before = table_counts(engine)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    auth = login(client)
    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        for path, names in ENDPOINTS.items():
            for name in names:
                for value in HOSTILE:
                    for accept in ("application/json", "text/html"):
                        response = client.get(
                            path, params={name: value}, headers={**auth, "Accept": accept}
                        )
                        where = f"{path}?{name}={value[:40]!r} ({accept})"
                        assert response.status_code in (200, 400), where
                        assert "Traceback" not in response.text, where
                        if response.status_code == 400:
                            assert len(response.text) < 4000, where  # the value is not echoed whole
                        if accept == "text/html" and ("<" in value or "'" in value):
                            assert value not in response.text, where  # escaped, if shown at all
        for value in map(functools.partial(quote, safe=""), HOSTILE):  # one path segment each
            for path in (f"reports/{value}/{REPORT}", f"reports/llm_bench_nightly/{value}"):
                response = client.get(f"/benchmarks/{path}", headers=auth)
                assert response.status_code in (404, 405), (path[:60], response.status_code)
                assert "db password" not in response.text and "Traceback" not in response.text
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    assert statements, "the fuzzed requests reached the database"
    assert not [s for s in statements if any(v in s for v in INJECTED)]
    assert table_counts(engine) == before


# -- the real thing, in a browser ----------------------------------------------------------


@contextmanager
def api_server(logs: Path) -> Iterator[Cluster]:
    """``airflow api-server`` alone (the page needs no scheduler), configured as
    ``make airflow`` configures it; stopped on exit."""
    port = free_port()
    env = airflow_environ(api_port=port)
    migrate(env)
    logs.mkdir(parents=True, exist_ok=True)
    server = Cluster(base_url=f"http://127.0.0.1:{port}", env=env, logs=logs)
    with (logs / "api-server.log").open("wb") as out:
        proc = subprocess.Popen(
            [airflow_bin(), "api-server", *f"--port {port} --host 127.0.0.1 --workers 1".split()],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                server.login()
                break
            except (urllib.error.URLError, ConnectionError, AssertionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"api-server did not come up:\n{server.tail('api-server')}"
                    ) from None
                time.sleep(1)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def artifacts_dir() -> Path:
    return Path(os.environ.get("BENCH_ARTIFACTS") or REPO / "artifacts")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_logs_in_and_sees_the_chart_in_the_airflow_ui(
    history: dict, first_night: None, db_url: str, tmp_path: Path
) -> None:
    """Log in, see the trend with its regression markers, the first nights of
    another model as bars beside their values, open a campaign's report from
    the page, follow a regression to its DAG run. Screenshots of each view go
    to $BENCH_ARTIFACTS (ui-benchmarks.png, ui-benchmarks-first-night.png,
    ui-report.png): look at them."""
    binary = require_tool("chromium")
    shots = {
        name: artifacts_dir() / f"{name}.png"
        for name in ("ui-benchmarks", "ui-benchmarks-first-night", "ui-report")
    }
    for shot in shots.values():
        shot.unlink(missing_ok=True)
    campaign = f.nightly(NIGHTS - 1)
    write_campaign_report(get_engine(db_url), campaign.dag_run_id, report_path(campaign))
    with api_server(tmp_path / "logs") as af, chromium(binary, height=1000) as page:
        page.goto(f"{af.base_url}/plugin/{UI_ROUTE}")
        # no session: the UI sends the browser to Airflow's login page
        page.wait_for("!!document.querySelector('input[name=password]')")
        page.type_into("input[name=username]", ADMIN_USER)
        page.type_into("input[name=password]", admin_password())
        page.wait_for("!document.querySelector('button[type=submit]').disabled")
        page.evaluate("document.querySelector('button[type=submit]').click()")
        # ... and back to the Benchmarks entry of the UI, our page in its iframe
        frame = "document.querySelector('iframe')?.contentDocument"
        page.wait_for(
            f"{frame}?.querySelectorAll('#trend .scatterlayer .trace').length >= 4", timeout_s=120
        )
        # the UI mirrors the iframe's location into its own (deep links)
        page.wait_for(f"location.pathname === '/plugin/{UI_ROUTE}/benchmarks/'")
        assert page.evaluate(f"{frame}.location.pathname") == "/benchmarks/"
        traces = page.evaluate(f"{frame}.getElementById('trend').data.map(t => t.name)")
        # 30 runs: bs 2's jump on the last night is also a change point
        assert traces == [
            "llama-x/fp32/bs1",
            "llama-x/fp32/bs2",
            "change point",
            "improvement",
            "regression",
        ]
        assert page.evaluate(f"{frame}.querySelectorAll('#regressions tbody tr').length") == 3
        assert page.evaluate(
            "[...document.querySelectorAll('a, button')].some(e => e.textContent.trim() === 'Benchmarks')"
        ), "a Benchmarks entry in the navigation bar"
        page.screenshot(shots["ui-benchmarks"])

        # the first night of another model: bars, the values beside them, the SLO
        page.evaluate(f"{frame}.defaultView.location.assign('/benchmarks/?model=fresh')")
        page.wait_for(f"{frame}?.querySelectorAll('#trend .barlayer .point').length === 2")
        assert page.evaluate(f"{frame}.querySelectorAll('#values tbody tr').length") == 2
        assert page.evaluate(f"{frame}.querySelector('#trend').textContent").count("SLO 30 ms")
        page.screenshot(shots["ui-benchmarks-first-night"])

        # a campaign's report, opened from the page, inside the Airflow UI; it runs
        # sandboxed in an origin of its own, so the UI can no longer read the frame
        page.evaluate(f"{frame}.querySelector('#reports a.report-link').click()")
        page.wait_for(
            "document.querySelector('iframe') && !document.querySelector('iframe').contentDocument"
        )
        time.sleep(10)  # plotly draws the report's charts (it cannot be asked from outside)
        page.screenshot(shots["ui-report"])

        # back on the page, a regression's DAG run link opens that run in the Airflow UI
        page.goto(f"{af.base_url}/plugin/{UI_ROUTE}")
        page.wait_for(f"!!{frame}?.querySelector('#regressions tbody a')", timeout_s=120)
        page.evaluate(f"{frame}.querySelector('#regressions tbody a').click()")
        run_path = f"/dags/llm_bench_nightly/runs/{f.nightly(NIGHTS - 1).dag_run_id}"
        page.wait_for(f"decodeURIComponent(location.pathname) === {json.dumps(run_path)}")
        page.wait_for("!document.querySelector('iframe')")  # the UI's own page, not nested
    for shot in shots.values():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 30_000, f"{shot.name}: a blank page compresses to a few KB"
