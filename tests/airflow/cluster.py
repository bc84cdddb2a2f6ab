"""A real Airflow deployment for tests: api-server + scheduler + dag-processor.

Started as separate processes with the same environment ``make airflow``
uses (bench.orchestration.airflow_env: LocalExecutor, Postgres metadata DB on the
embedded server, this repo's dags/ and plugins/), driven through the public
REST API with a JWT from the simple auth manager.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.orchestration.airflow_env import (
    ADMIN_USER,
    admin_password,
    airflow_bin,
    airflow_environ,
    migrate,
)
from tests.procs import free_port


@dataclass
class Cluster:
    base_url: str
    env: dict[str, str]
    logs: Path
    token: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> None:
        """Run ``airflow *args`` as component ``name`` (log: ``logs/<name>.log``)."""
        out = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [airflow_bin(), *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        died = [n for n, p in self.procs.items() if p.poll() is not None]
        if died:
            raise AssertionError(f"{died} exited:\n" + "\n".join(self.tail(n) for n in died))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def api(self, method: str, path: str, body: Any = None, *, expect: int | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        if expect is not None and status != expect:
            raise AssertionError(f"{method} {path} -> {status}: {text[:2000]}")
        return json.loads(text) if text else None

    def login(self) -> None:
        self.token = self.api(
            "POST",
            "/auth/token",
            {"username": ADMIN_USER, "password": admin_password()},
            expect=201,
        )["access_token"]

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.api("GET", f"/api/v2/dags/{dag_id}").get("dag_id") == dag_id:
                return
            time.sleep(2)
        raise AssertionError(
            f"DAG {dag_id} never appeared; dag-processor log:\n{self.tail('dag-processor')}"
        )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, expect=200)
        run = self.api(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"logical_date": None, "conf": conf},
            expect=200,
        )
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(3)
        raise AssertionError(
            f"run {run_id} not finished after {timeout_s} s; scheduler log:\n{self.tail('scheduler')}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")[
            "task_instances"
        ]
        return {
            ti["task_id"]
            + (
                f"[{ti['rendered_map_index'] or ti['map_index']}]" if ti["map_index"] >= 0 else ""
            ): ti["state"]
            for ti in tis
        }

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1, try_number: int = 1
    ) -> list[str]:
        """A task's log as the UI shows it, one message a line (REST API)."""
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/logs/{try_number}"
            f"?full_content=true&map_index={map_index}",
            expect=200,
        )
        events = [e.get("event", "") if isinstance(e, dict) else e for e in answer["content"]]
        return [line for event in events for line in str(event).splitlines()]

    def map_indexes(self, dag_id: str, run_id: str, task_id: str) -> dict[str, int]:
        """Rendered label -> map index of a mapped task's instances."""
        quoted = urllib.parse.quote(run_id, safe="")
        tis = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100", expect=200
        )["task_instances"]
        return {ti["rendered_map_index"]: ti["map_index"] for ti in tis if ti["task_id"] == task_id}

    def tail(self, name: str, n: int = 60) -> str:
        path = self.logs / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""
        )


@contextmanager
def private_metadata_db(template_url: str) -> Iterator[str]:
    """A copy of the migrated metadata DB at ``template_url``, for one cluster,
    dropped afterwards. The template outlives every test of the session: a DAG
    run one test's cluster left unfinished would otherwise be picked up by the
    next test's scheduler and run there, in that test's BENCH_HOME and results
    DB (a smoke run left by the trigger-form test once drained the fault
    test's spool)."""
    url = sa.make_url(template_url)
    name = f"airflow_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def airflow_cluster(
    logs: Path, *, dags_folder: Path | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """Start api-server, scheduler and dag-processor on a metadata DB of their
    own; stop every component (process groups, :meth:`Cluster.start` ones
    included) on exit."""
    port = free_port()
    env = airflow_environ(api_port=port)
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    env.update(extra_env or {})
    migrate(env)  # the template, once per server (idempotent)
    with private_metadata_db(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]) as metadata_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
        with _components(logs, port, env) as cluster:
            yield cluster


@contextmanager
def _components(logs: Path, port: int, env: dict[str, str]) -> Iterator[Cluster]:
    """api-server, scheduler and dag-processor on ``env``, logged in; all stopped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(base_url=f"http://127.0.0.1:{port}", env=env, logs=logs)
    try:
        cluster.start(
            "api-server",
            ["api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
        )
        cluster.start("scheduler", ["scheduler"])
        cluster.start("dag-processor", ["dag-processor"])
        deadline = time.monotonic() + 180
        while True:
            try:
                cluster.login()
                break
            except (urllib.error.URLError, ConnectionError, AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"api-server did not come up:\n{cluster.tail('api-server')}"
                    ) from None
                cluster.check_alive()
                time.sleep(2)
        yield cluster
    finally:
        cluster.stop()
