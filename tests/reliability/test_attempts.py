"""Matrix row 4, fast: which try of a benchmark task stored its run.

The benchmark task body runs twice for one configuration, as Airflow's
retry would. Try 1's child is a stand-in that does what the real child
does first (plans, writes its outcome file, starts loading) and is then
SIGKILLed, as when its worker dies: the parent records the failure, at
attempt 1. Try 2 runs the real ``bench run`` child with the tiny model: it
stores its run at attempt 2, replacing try 1's row. The campaign table
(the report task's log) and the HTML report then show the retry.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bench.core.results import CampaignRef
from bench.orchestration.tasks import benchmark, plan
from bench.report.campaign import build_report_data, format_campaign_table
from bench.report.page import render_report
from bench.store.db import get_engine
from bench.store.queries import run_query
from tests.conftest import REPO

pytestmark = pytest.mark.slow

#: The real child's first steps (parse, plan, report the plan, start loading),
#: then death by SIGKILL: a worker lost mid-load.
DIES_WHILE_LOADING = """
import os, signal, sys
from bench.cli import build_parser
from bench.cli.run import config_from_args
from bench.orchestration.child import OutcomeWriter
from bench.runner import prepare

args = build_parser().parse_args(sys.argv[1:])
writer = OutcomeWriter(args.outcome)
writer.phase("plan")
writer.planned(prepare(config_from_args(args)))
writer.phase("load")
os.kill(os.getpid(), signal.SIGKILL)
"""


def dies_while_loading(config: Any, args: list[str], command: str = "run") -> list[str]:
    return [sys.executable, "-c", DIES_WHILE_LOADING, command, *args]


def test_the_try_that_stored_a_run_is_stored_and_shown(
    smoke_home: Path, db_url: str, tmp_path: Path
) -> None:
    campaign = CampaignRef(dag_run_id="manual__retried", dag_id="llm_bench_smoke")
    (item,) = plan(
        REPO / "dags" / "campaigns" / "smoke.yaml",
        {"precisions": ["fp32"], "batch_sizes": [1], "limit": 2, "max_new_tokens": 2},
        campaign=campaign,
        db_url=db_url,
        log=lambda _: None,
    )
    engine = get_engine(db_url)
    lines: list[str] = []

    first = benchmark(
        item, campaign=campaign, db_url=db_url, timeout_s=300, log=lines.append,
        attempt=1, launch=dies_while_loading,
    )  # fmt: skip
    assert (first.status, first.retryable) == ("failed", True), lines
    (run,) = run_query(engine, "campaign_runs", campaign=campaign.dag_run_id)
    assert (run["status"], run["attempt"]) == ("failed", 1)  # stored by the parent
    assert "while loading the model" in run["error"]
    assert "tries" not in format_campaign_table([run])  # no retry yet: the table stays narrow

    second = benchmark(
        item, campaign=campaign, db_url=db_url, timeout_s=300, log=lines.append, attempt=2
    )
    assert second.status == "ok", "\n".join(lines)
    (run,) = run_query(engine, "campaign_runs", campaign=campaign.dag_run_id)  # replaced
    assert (run["label"], run["status"], run["attempt"]) == ("tiny-llama/fp32/bs1", "ok", 2)

    table = format_campaign_table([run]).splitlines()
    print("\n" + "\n".join(table))
    assert table[0] == "1/1 configurations ok, 1 retried"
    assert table[1].split()[:3] == ["configuration", "status", "tries"]
    assert table[2].split()[:3] == ["tiny-llama/fp32/bs1", "ok", "2"]

    data = build_report_data(engine, campaign.dag_run_id)
    assert dict(data.tries) == {"tiny-llama/fp32/bs1": 2}
    page = render_report(data, tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<td class="tries">2</td>' in page
