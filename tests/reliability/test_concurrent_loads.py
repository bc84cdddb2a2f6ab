"""Matrix row 1: 32 results loaded at once by 32 processes sharing one spool.

As 32 mapped benchmark tasks finishing together on one worker would: each
process spools its own result and drains the whole backlog
(``spool_and_load``, what every ``bench run`` child does), so the processes
race for the same files, run the migration check at once and COPY
concurrently. Nothing may deadlock, be lost or be loaded twice, and the
connections the processes hold at once (sampled from ``pg_stat_activity``)
must stay within one per process: the figure docs/reliability.md gives for
``max_connections``.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.core.results import CampaignRef, write_jsonl
from bench.store.migrate import upgrade
from tests.store import store_factory as f
from tests.store.store_helpers import REPO, count

pytestmark = pytest.mark.slow

N = 32

#: One loader: imports first, then waits for the start signal so that all
#: 32 hit the database in the same instant.
LOADER = """
import sys, time
from pathlib import Path
from bench.core.results import read_jsonl
from bench.store.spool import spool_and_load
result = read_jsonl(Path(sys.argv[1]))
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
outcome = spool_and_load(result)
print(outcome.loaded, outcome.message)
"""


class PeakConnections(threading.Thread):
    """Samples how many connections ``bench`` holds on the database."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        # autocommit: a transaction would see one frozen snapshot of the statistics
        self.engine = sa.create_engine(
            url, isolation_level="AUTOCOMMIT", connect_args={"application_name": "sampler"}
        )
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self._done.is_set():
                n = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = 'bench'"
                    )
                ).scalar_one()
                self.peak = max(self.peak, int(n))
                self.samples += 1
                time.sleep(0.005)

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=10)
        self.engine.dispose()
        return self.peak


def test_32_processes_load_at_once_without_loss_duplicate_or_unbounded_connections(
    db_url: str, bench_home: Path, tmp_path: Path
) -> None:
    engine = sa.create_engine(db_url)
    upgrade(engine)  # as the plan task does before any benchmark starts
    campaign = CampaignRef(dag_run_id="manual__load32", dag_id="llm_bench_load", trigger="manual")
    files = [
        write_jsonl(
            f.result(f.config(batch_size=i + 1, max_new_tokens=8), campaign=campaign, n_tokens=8),
            tmp_path / f"r{i}.jsonl",
        )
        for i in range(N)
    ]
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOADER, str(path), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for path in files
    ]
    time.sleep(10)  # let the interpreters import (they wait for `go`)
    sampler = PeakConnections(db_url)
    sampler.start()
    started = time.monotonic()
    go.touch()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    wall = time.monotonic() - started
    peak = sampler.stop()
    print(
        f"\n{N} concurrent loads: {wall:.1f} s, peak {peak} bench connections"
        f" ({sampler.samples} samples)"
    )

    assert [p.returncode for p in procs] == [0] * N, outputs
    # each result reached the database: by its own process's drain, or a
    # neighbour's that claimed it first (then the message says so)
    said = collections.Counter(
        re.sub(r" as run \d+", "", out.strip().split(" (")[0].split(";")[0]) for out in outputs
    )
    print(dict(said))
    assert set(said) <= {
        "True result stored in the results DB",
        "False result is being loaded by a concurrent `bench db load`",
    }, outputs
    assert count(engine, "SELECT count(*) FROM run") == N
    assert count(engine, "SELECT count(DISTINCT config_id) FROM run") == N
    assert count(engine, "SELECT count(*) FROM request_result") == N * 4
    assert count(engine, "SELECT count(*) FROM run_summary") == N
    assert count(engine, "SELECT count(*) FROM campaign") == 1
    spool = bench_home / "spool"
    assert sorted(p.name for p in spool.glob("*.jsonl")) == []
    assert len(list((spool / "loaded").glob("*.jsonl"))) == N
    assert not any((spool / ".claims").iterdir())
    # bounded: never more than one connection per loading process
    assert 1 <= peak <= N
    engine.dispose()
