"""Matrix rows 2 and 3 and security item 3, on one real Airflow deployment.

One cluster (api-server, scheduler, dag-processor; LocalExecutor) serves
three checks in sequence, so CI starts Airflow once:

* row 2: the results Postgres (a server of its own, apart from Airflow's
  metadata DB) is stopped while the benchmarks run and started again
  later. Benchmarks keep spooling and succeed; the tasks after them retry
  while it is down, drain the spool once it is back, and every result is
  in the database at the end.
* row 3: the scheduler's whole process group is SIGKILLed while benchmarks
  run, then started again. The campaign completes; every configuration is
  recorded exactly once, and none is silently missing.
* security 3: the deployment ran with a known DB password, OpenAI API key
  and webhook token. None of them appears in any task log (REST API and
  log folder), XCom, rendered field, DAG or run detail, file under
  $BENCH_HOME (result files, spool, HTML reports), results DB row, or the
  output of ``bench db status``/``bench report``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from bench.store.db import start_embedded, stop_embedded
from tests.airflow.cluster import Cluster, airflow_cluster
from tests.airflow.test_dag_run import RUNS, rows
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]

DAG = "llm_bench_faults"
LABELS = [f"tiny-llama/fp32/bs{b}" for b in (1, 2, 3, 4)]
DB_PASSWORD = "pw-Kq7ZrX2vD9sLm4Tn"
API_KEY = "sk-test-Wb3Jf8QeN1xYc6Vh"
WEBHOOK_TOKEN = "hook-Tz5Rg2Lp9Mw4Xs7K"
SECRETS = (DB_PASSWORD, API_KEY, WEBHOOK_TOKEN)


@pytest.fixture
def results_server() -> Iterator[Path]:
    """A results Postgres of its own (data dir), so stopping it leaves
    Airflow's metadata DB (the session server) running."""
    pgdata = Path(tempfile.mkdtemp(prefix="bench-faults-pg-")) / "pgdata"  # a short socket path
    start_embedded(pgdata)
    try:
        yield pgdata
    finally:
        stop_embedded(pgdata)
        shutil.rmtree(pgdata.parent, ignore_errors=True)


def _secret_url(pgdata: Path) -> str:
    """A role with a known password on the results server, as its URL."""
    admin = sa.make_url(start_embedded(pgdata))
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE bench_rw LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'"))
        conn.execute(sa.text("CREATE DATABASE results OWNER bench_rw"))
    engine.dispose()
    url = admin.set(username="bench_rw", password=DB_PASSWORD, database="results")
    return url.render_as_string(hide_password=False)


def _campaign(dags: Path) -> None:
    smoke = yaml.safe_load((dags / "campaigns" / "smoke.yaml").read_text())
    smoke.update(
        precisions=["fp32"],
        batch_sizes=[1, 2, 3, 4],
        limit=2,
        max_new_tokens=4,
        warmup=0,
        retries=2,
        notify={"webhook": "${BENCH_NOTIFY_WEBHOOK}"},
    )
    (dags / "campaigns" / "faults.yaml").write_text(yaml.safe_dump(smoke))


def _wait_until_benchmarking(af: Cluster, run_id: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tis = _task_instances(af, run_id)
        if any(t["task_id"] == "benchmark" and t["state"] == "running" for t in tis):
            return
        af.check_alive()
        time.sleep(2)
    raise AssertionError(f"no benchmark started: {tis}\n{af.tail('scheduler')}")


def _task_instances(af: Cluster, run_id: str) -> list[dict]:  # type: ignore[type-arg]
    """The run's task instances; a poll the busy api-server answers late is repeated."""
    quoted = urllib.parse.quote(run_id, safe="")
    for _ in range(5):
        try:
            answer = af.api(
                "GET", f"/api/v2/dags/{DAG}/dagRuns/{quoted}/taskInstances?limit=100", expect=200
            )
            return list(answer["task_instances"])
        except TimeoutError:
            continue
    raise AssertionError(f"the api-server did not answer:\n{af.tail('api-server')}")


def _wait_for_run(af: Cluster, run_id: str, timeout_s: float = 600) -> str:
    """The run's final state (Cluster.wait_for_run, tolerating a late answer)."""
    quoted = urllib.parse.quote(run_id, safe="")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = af.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{quoted}")["state"]
        except TimeoutError:
            continue
        if state in ("success", "failed"):
            return str(state)
        time.sleep(3)
    raise AssertionError(f"run {run_id} not finished:\n{af.tail('scheduler')}")


def _check_results(db_url: str, run_id: str) -> None:
    """Every configuration once, ok, with its requests (limit 2, in whole batches)."""
    runs = rows(db_url, RUNS, run_id=run_id)
    assert [(r["label"], r["status"], r["n_rows"]) for r in runs] == [
        (label, "ok", max(2, int(label[-1]))) for label in LABELS
    ], runs


def _check_postgres_restart(af: Cluster, pgdata: Path, db_url: str, home: Path) -> str:
    started = time.monotonic()
    run_id = af.trigger(DAG, {})
    _wait_until_benchmarking(af, run_id)
    stop_embedded(pgdata)
    down_at = time.monotonic()
    # down until the benchmarks are done and a task after them has failed once
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        tis = {t["task_id"]: t for t in _task_instances(af, run_id) if t["map_index"] < 0}
        if tis["suspects"]["state"] == "up_for_retry":
            break
        time.sleep(2)
    else:
        raise AssertionError(f"suspects never waited for the DB: {tis}")
    spooled = sorted(p.name for p in (home / "spool").glob("*.jsonl"))
    assert spooled, "the benchmarks that ran while the DB was down spooled nothing"
    start_embedded(pgdata)
    down_s = time.monotonic() - down_at
    assert _wait_for_run(af, run_id) == "success", af.tail("scheduler")
    _check_results(db_url, run_id)
    assert not list((home / "spool").glob("*.jsonl")), "the spool was not drained"
    tries = {t["task_id"]: t["try_number"] for t in _task_instances(af, run_id)}
    assert tries["suspects"] >= 2, tries
    drained = "\n".join(af.task_log(DAG, run_id, "suspects", try_number=tries["suspects"]))
    assert "spooled result(s) into the results DB" in drained, drained
    print(
        f"\nrow 2: DB down {down_s:.0f} s, {len(spooled)} result(s) spooled meanwhile, "
        f"4/4 in the DB, 0 lost; tries {tries}; {time.monotonic() - started:.0f} s"
    )
    return run_id


def _check_scheduler_kill(af: Cluster, db_url: str) -> str:
    started = time.monotonic()
    run_id = af.trigger(DAG, {})
    _wait_until_benchmarking(af, run_id)
    os.killpg(af.procs["scheduler"].pid, signal.SIGKILL)
    af.procs["scheduler"].wait()
    time.sleep(3)
    af.start("scheduler", ["scheduler"])
    state = _wait_for_run(af, run_id)
    tis = _task_instances(af, run_id)
    bench = {t["rendered_map_index"]: t for t in tis if t["task_id"] == "benchmark"}
    assert sorted(bench) == LABELS  # one task instance per configuration
    assert state == "success", ({k: t["state"] for k, t in bench.items()}, af.tail("scheduler"))
    _check_results(db_url, run_id)
    print(
        "row 3: scheduler SIGKILLed and restarted, 4/4 configurations once each; benchmark tries "
        f"{sorted(t['try_number'] for t in bench.values())}; {time.monotonic() - started:.0f} s"
    )
    return run_id


def _artifacts(af: Cluster, run_ids: list[str], db_url: str, home: Path) -> dict[str, str]:
    """Everything a person or a tool can read after the campaigns, by name."""
    found: dict[str, str] = {}
    found["dag details"] = json.dumps(af.api("GET", f"/api/v2/dags/{DAG}/details", expect=200))
    for run_id in run_ids:
        quoted = urllib.parse.quote(run_id, safe="")
        found[f"run {run_id}"] = json.dumps(
            af.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{quoted}", expect=200)
        )
        for ti in _task_instances(af, run_id):
            task, index = ti["task_id"], ti["map_index"]
            where = f"{run_id} {task}[{index}]"
            found[f"task instance {where}"] = json.dumps(ti)  # rendered fields included
            for attempt in range(1, ti["try_number"] + 1):
                found[f"log {where} try {attempt}"] = "\n".join(
                    af.task_log(DAG, run_id, task, map_index=index, try_number=attempt)
                )
            base = f"/api/v2/dags/{DAG}/dagRuns/{quoted}/taskInstances/{task}"
            entries = af.api("GET", f"{base}/xcomEntries?map_index={index}", expect=200)
            for entry in entries["xcom_entries"]:
                found[f"xcom {where} {entry['key']}"] = json.dumps(
                    af.api(
                        "GET", f"{base}/xcomEntries/{entry['key']}?map_index={index}", expect=200
                    )
                )
    for root in (home, Path(af.env["AIRFLOW_HOME"]) / "logs", af.logs):
        for folder, _dirs, files in os.walk(root):  # symlinks (the model) not followed
            for name in files:
                path = Path(folder) / name
                found[f"file {path}"] = path.read_bytes().decode("utf-8", "replace")
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        for table in ("campaign", "run", "benchmark_config", "environment", "regression"):
            found[f"table {table}"] = json.dumps(
                [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).mappings()],
                default=str,
            )
    engine.dispose()
    env = {**af.env, "PYTHONPATH": str(REPO)}
    for args in (["db", "status"], ["report", "--out", str(home / "cli-report.html")]):
        proc = subprocess.run(
            [sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        found[f"bench {' '.join(args)}"] = proc.stdout + proc.stderr
    found["file cli-report.html"] = (home / "cli-report.html").read_text()
    return found


def _check_no_secret_anywhere(af: Cluster, run_ids: list[str], db_url: str, home: Path) -> None:
    found = _artifacts(af, run_ids, db_url, home)
    leaks = [(name, s) for name, text in found.items() for s in SECRETS if s in text]
    print(f"security 3: {len(found)} artifacts searched for 3 secrets, {len(leaks)} leak(s)")
    assert leaks == []
    # the search reaches what it claims to: the campaign's logs and reports are among them
    assert any(n.startswith("log ") and "benchmark[" in n for n in found)
    assert any(n.endswith(".html") for n in found) and "bench db status" in found


def test_postgres_restart_and_scheduler_kill_mid_campaign_lose_nothing_and_leak_no_secret(
    smoke_home: Path, db_url: str, dags_copy: Path, results_server: Path, tmp_path: Path
) -> None:
    results_url = _secret_url(results_server)
    _campaign(dags_copy)
    hook_port = 9  # discard: nothing listens; a post would fail, never leak
    secrets_env = {
        "BENCH_DB_URL": results_url,  # results DB; Airflow's metadata stays on db_url's server
        "OPENAI_API_KEY": API_KEY,
        "BENCH_NOTIFY_WEBHOOK": f"http://127.0.0.1:{hook_port}/hooks/{WEBHOOK_TOKEN}",
        # a task whose supervisor died with the scheduler is noticed in 30 s, not 5 min
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    }
    with airflow_cluster(tmp_path / "logs", dags_folder=dags_copy, extra_env=secrets_env) as af:
        af.wait_for_dag(DAG)
        first = _check_postgres_restart(af, results_server, results_url, smoke_home)
        second = _check_scheduler_kill(af, results_url)
        _check_no_secret_anywhere(af, [first, second], results_url, smoke_home)
