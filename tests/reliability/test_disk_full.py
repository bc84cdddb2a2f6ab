"""Matrix row 5: no space left for the result (a file-size limit on the child).

A tmpfs needs root mounts; ``RLIMIT_FSIZE`` gives the same errno path
without them (``EFBIG`` instead of ``ENOSPC``: both are an ``OSError`` from
``write``), applied to the real ``bench run`` child the benchmark task
starts. The limit lets the small outcome file through and stops the
result, as a disk with a few KiB left would. Expected: one clear error, the
run recorded as failed in the results DB by the parent, no half-written
file left for a later drain to trip on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bench.core.results import CampaignRef
from bench.orchestration.tasks import benchmark, plan
from bench.store.db import get_engine
from bench.store.spool import drain
from tests.airflow.test_dag_run import RUNS, rows
from tests.conftest import REPO

pytestmark = pytest.mark.slow

#: Bytes a child may write to one file: its outcome file fits, its result does not.
LIMIT = 3072

#: Sets the limit, then becomes ``bench`` (Python ignores SIGXFSZ, so an
#: oversized write fails with EFBIG rather than killing the process).
LIMITED = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def limited(config: Any, args: list[str], command: str = "run") -> list[str]:
    return [sys.executable, "-c", LIMITED, sys.executable, "-m", "bench", command, *args]


def test_a_full_disk_is_one_error_a_failed_run_and_no_half_written_file(
    smoke_home: Path, db_url: str
) -> None:
    campaign = CampaignRef(dag_run_id="manual__diskfull", dag_id="llm_bench_smoke")
    (item,) = plan(
        REPO / "dags" / "campaigns" / "smoke.yaml",
        {"precisions": ["fp32"], "batch_sizes": [2], "limit": 4, "max_new_tokens": 4},
        campaign=campaign,
        db_url=db_url,
        log=lambda _: None,
    )
    lines: list[str] = []
    outcome = benchmark(
        item, campaign=campaign, db_url=db_url, timeout_s=300, log=lines.append, launch=limited
    )
    print("\n".join(lines))

    assert outcome.status == "failed", lines
    assert not outcome.retryable  # a full disk does not clear in a retry delay
    error = outcome.error or ""
    assert error.startswith("cannot write the result to ") and "File too large" in error, error
    assert "\n" not in error
    assert not any("Traceback" in line for line in lines), lines
    # the parent recorded it: the campaign shows the configuration as failed
    (run,) = rows(db_url, RUNS, run_id=campaign.dag_run_id)
    assert (run["label"], run["status"], run["n_rows"]) == ("tiny-llama/fp32/bs2", "failed", 0)
    assert "File too large" in run["error"]
    # nothing half-written anywhere under BENCH_HOME (runs/, spool/)
    leftovers = [p for p in smoke_home.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert not list((smoke_home / "runs").rglob("*.jsonl"))
    # a later drain finds nothing to trip on
    report = drain(get_engine(db_url))
    assert (report.loaded, report.failed, report.rejected) == ([], [], [])
