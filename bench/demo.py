"""``make demo``: the smoke campaign through Airflow, from nothing, offline.

Builds the tiny model, starts the embedded Postgres, migrates the results
schema and Airflow's metadata DB, runs ``llm_bench_smoke`` once with
``airflow dags test`` (a real DAG run, tasks in this machine's processes),
then prints what landed in Postgres and where the HTML report is.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

from bench.orchestration.airflow_env import airflow_bin, airflow_environ, migrate
from bench.paths import models_dir, reports_dir
from bench.tinymodel import build_tiny_model

DAG_ID = "llm_bench_smoke"
_PLANNED = re.compile(r"\bcampaign (\S+): \d+ configurations")


def step(text: str) -> float:
    print(f"\n== {text}", flush=True)
    return time.perf_counter()


def main() -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = step(
        "tiny model (offline: random weights + a tokenizer trained on prompts/default.txt)"
    )
    path = build_tiny_model(models_dir() / "tiny-llama")
    print(f"{path}  ({time.perf_counter() - started:.1f} s)")

    t = step("results DB (embedded Postgres) and Airflow metadata DB")
    from bench.store.db import display_url, get_engine, resolve_url
    from bench.store.migrate import upgrade

    url = resolve_url()
    applied = upgrade(get_engine(url))
    env = airflow_environ()
    migrate(env)
    print(
        f"results DB {display_url(url)}: {len(applied)} migration(s) applied  ({time.perf_counter() - t:.1f} s)"
    )

    t = step(f"campaign {DAG_ID} through Airflow (airflow dags test)")
    run_id = None
    with subprocess.Popen(
        [airflow_bin(), "dags", "test", DAG_ID],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "graphviz" in line or "[py.warnings]" in line:
                continue  # Airflow's own chatter about optional packages
            print(line, end="", flush=True)
            if found := _PLANNED.search(line):  # the plan task's log line
                run_id = found.group(1)
    print(f"airflow dags test exited {proc.returncode} ({time.perf_counter() - t:.1f} s)")
    if proc.returncode != 0 or run_id is None:
        return 1

    step("what landed in Postgres")
    from bench.report.campaign import format_campaign_table
    from bench.store.queries import run_query

    rows = run_query(get_engine(url), "campaign_runs", campaign=run_id)
    print(f"campaign {run_id}")
    print(format_campaign_table(rows))
    reports = sorted((reports_dir() / DAG_ID).glob("*.html"), key=lambda p: p.stat().st_mtime)
    if reports:
        print(f"\nHTML report: {reports[-1]}")
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s. Next: `make airflow` for the UI, "
        f"`.venv/bin/bench trend --model tiny-llama` for the history."
    )
    return 0 if rows and all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
