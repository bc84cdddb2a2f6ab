"""The spool: results on disk first, loaded exactly once, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import store_factory as f
from store_helpers import bench_proc, count

from bench.cli import main
from bench.errors import DatabaseUnavailable
from bench.paths import loaded_dir, spool_dir
from bench.store import spool
from bench.store.db import get_engine, start_embedded
from bench.store.migrate import upgrade


def test_spool_and_load_stores_the_result_and_keeps_the_file(engine: sa.Engine) -> None:
    result = f.result()
    outcome = spool.spool_and_load(result)
    assert outcome.loaded
    assert outcome.message.startswith("result stored in the results DB as run ")
    assert "***" in outcome.message or "@" not in outcome.message
    assert outcome.path.parent == loaded_dir() and outcome.path.is_file()
    assert spool.pending() == []
    assert count(engine, "SELECT count(*) FROM run WHERE run_uid = :u", u=result.run_uid) == 1


def test_db_down_keeps_the_result_then_load_ingests_it_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"postgresql+psycopg2://bench:s3cret@/bench?host={tmp_path}/no-server&connect_timeout=2"
    monkeypatch.setenv("BENCH_DB_URL", dead)
    results = [f.result(f.config(batch_size=b)) for b in (1, 2)]
    outcomes = [spool.spool_and_load(r) for r in results]
    for outcome in outcomes:
        assert not outcome.loaded
        assert outcome.message.startswith("results DB unreachable (")
        assert outcome.message.endswith("load later with `bench db load`")
        assert "s3cret" not in outcome.message and "\n" not in outcome.message
    assert spool.pending() == [o.path for o in outcomes]  # oldest first

    assert main(["db", "load"]) == 2  # still down: one line, nothing moved
    assert "s3cret" not in capsys.readouterr().err
    assert len(spool.pending()) == 2

    monkeypatch.setenv("BENCH_DB_URL", db_url)
    assert main(["db", "load"]) == 0
    out = capsys.readouterr().out
    assert "2 loaded, 0 unchanged, 0 failed" in out
    assert spool.pending() == []
    engine = get_engine(db_url)
    assert count(engine, "SELECT count(*) FROM run") == 2
    assert count(engine, "SELECT count(*) FROM request_result") == 8
    assert main(["db", "load"]) == 0
    assert "spool is empty" in capsys.readouterr().out
    # the same files again, explicitly: nothing changes
    assert main(["db", "load", *map(str, sorted(loaded_dir().glob("*.jsonl")))]) == 0
    assert "0 loaded, 2 unchanged" in capsys.readouterr().out
    assert count(engine, "SELECT count(*) FROM request_result") == 8


def _wait_for_lock_wait(admin: sa.Engine, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench' AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the loader never reached the blocked insert")


def test_a_bad_db_url_keeps_the_result_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DB_URL", "sqlite:///results.db")
    outcome = spool.spool_and_load(f.result())
    assert not outcome.loaded and outcome.path.is_file()
    assert outcome.message.startswith("BENCH_DB_URL must point at PostgreSQL")


def _crash(pgdata: Path, timeout_s: float = 30) -> None:
    """Immediate shutdown (SIGQUIT): every backend exits at once, none
    releasing its locks. (In a fast shutdown the lock holder may exit first,
    and the blocked load then commits before its own backend is told to stop.)"""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the embedded server did not stop within {timeout_s:.0f} s")


def test_db_stopped_during_a_load(
    own_pgdata: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server goes down after the run row and its requests were written
    but before commit: nothing is kept in the DB, the file stays spooled, and
    once the server is back `bench db load` ingests it exactly once."""
    url = start_embedded(own_pgdata)
    monkeypatch.setenv("BENCH_DB_URL", url)
    engine = get_engine(url)
    upgrade(engine)
    result = f.result(ttfts=[float(i) for i in range(500)], n_tokens=32)
    path = spool.spool(result)

    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    blocker = admin.connect()
    blocker.execute(
        sa.text("LOCK TABLE run_summary IN ACCESS EXCLUSIVE MODE")
    )  # held: the load stops at the summary
    failure: list[BaseException] = []
    reports: list[spool.DrainReport] = []

    def drain() -> None:
        try:
            reports.append(spool.drain(engine))
        except BaseException as exc:
            failure.append(exc)

    loader = threading.Thread(target=drain)
    loader.start()
    _wait_for_lock_wait(admin)
    _crash(own_pgdata)
    loader.join(timeout=60)
    assert not loader.is_alive(), "the load still waits a minute after the server stopped"
    blocker.invalidate()
    assert len(failure) == 1 and isinstance(failure[0], DatabaseUnavailable), (failure, reports)
    assert spool.pending() == [path], (spool.pending(), path)
    assert not any(spool.claims_dir().iterdir()), list(spool.claims_dir().iterdir())

    url = start_embedded(own_pgdata)
    engine = get_engine(url)
    assert count(engine, "SELECT count(*) FROM run") == 0  # rolled back
    assert count(engine, "SELECT count(*) FROM request_result") == 0
    assert main(["db", "load"]) == 0
    assert "1 loaded, 0 unchanged, 0 failed" in capsys.readouterr().out
    assert main(["db", "load"]) == 0
    assert count(engine, "SELECT count(*) FROM run") == 1
    assert count(engine, "SELECT count(*) FROM request_result") == 500
    assert (loaded_dir() / path.name).is_file()


def test_two_processes_draining_one_spool_load_each_file_once(engine: sa.Engine) -> None:
    results = [f.result(f.config(batch_size=b)) for b in range(1, 9)]
    for r in results:
        spool.spool(r)
    procs = [bench_proc("db", "load") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    loaded = unchanged = 0
    for out, _ in outputs:
        last = out.strip().splitlines()[-1]
        if last.endswith("failed"):
            n_loaded, _, n_unchanged, *_ = last.replace(",", "").split()
            loaded, unchanged = loaded + int(n_loaded), unchanged + int(n_unchanged)
    assert (loaded, unchanged) == (8, 0)  # every file claimed by exactly one process
    assert count(engine, "SELECT count(*) FROM run") == 8
    assert count(engine, "SELECT count(*) FROM request_result") == 32
    assert spool.pending() == [] and len(list(loaded_dir().glob("*.jsonl"))) == 8


def test_a_claim_left_by_a_dead_process_is_released(engine: sa.Engine) -> None:
    path = spool.spool(f.result())
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    claim = spool.claims_dir() / f"{path.name}.claim-{os.uname().nodename}-{int(dead.stdout)}"
    claim.parent.mkdir(parents=True)
    os.rename(path, claim)
    assert spool.pending() == []
    report = spool.drain(engine)
    assert [name for name, _ in report.loaded] == [path.name]
    assert count(engine, "SELECT count(*) FROM run") == 1


def test_an_unreadable_file_is_set_aside(
    engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    good = spool.spool(f.result())
    spool_dir().joinpath("00000000T000000000000Z_truncated.jsonl").write_text('{"kind":"request"')
    assert main(["db", "load"]) == 1
    captured = capsys.readouterr()
    assert "1 loaded, 0 unchanged, 1 failed" in captured.out
    assert "truncated.jsonl NOT loaded: rejected" in captured.err
    assert (spool.rejected_dir() / "00000000T000000000000Z_truncated.jsonl").is_file()
    assert (loaded_dir() / good.name).is_file()
    assert spool.pending() == []


def test_load_of_a_bad_explicit_file_changes_nothing(
    engine: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.core.results import write_jsonl

    good = write_jsonl(f.result(), tmp_path / "good.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["db", "load", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1 and "bad.jsonl:1" in err
    assert count(engine, "SELECT count(*) FROM run") == 0
