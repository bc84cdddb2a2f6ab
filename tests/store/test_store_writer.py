"""The writer: lossless, idempotent, retry-replacing, deadlock-free loading."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
import store_factory as f
from store_helpers import count

from bench.core.records import RequestResult
from bench.core.results import CampaignRef
from bench.errors import ConfigError, StoreError
from bench.store import writer


def runs(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT * FROM run ORDER BY id")))


def test_load_stores_everything_losslessly(engine: sa.Engine) -> None:
    result = f.result(ttfts=(10.123456789012345, 11.0, 1e-3, 250.5), n_tokens=5)
    report = writer.load(engine, result)
    assert report.action == writer.INSERTED and report.n_requests == 4
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM run WHERE id = :id"), {"id": report.run_id}).one()
        rows = (
            conn.execute(
                sa.text("SELECT * FROM request_result WHERE run_id = :id ORDER BY request_index"),
                {"id": report.run_id},
            )
            .mappings()
            .all()
        )
        summary = (
            conn.execute(
                sa.text("SELECT * FROM run_summary WHERE run_id = :id"), {"id": report.run_id}
            )
            .mappings()
            .one()
        )
        config = conn.execute(sa.text("SELECT * FROM benchmark_config")).mappings().one()
        env = conn.execute(sa.text("SELECT * FROM environment")).mappings().one()
        campaign = conn.execute(sa.text("SELECT * FROM campaign")).mappings().one()
    assert run.run_uid == result.run_uid and run.status == "ok" and run.error is None
    assert run.started_at == result.started_at and run.finished_at == result.finished_at
    assert (
        run.config == result.config.to_dict()
        and run.prompt_set == result.prompt_set
        and run.warmup_s == 0.5
    )
    for row, req in zip(rows, result.requests, strict=True):
        assert (row["ttft_ms"], row["tpot_ms"], row["e2e_ms"]) == (
            req.ttft_ms,
            req.tpot_ms,
            req.e2e_ms,
        )  # bit-exact
        assert row["itl_ms"] == pytest.approx(list(req.itl_ms), rel=1e-6)  # real[]: float32
        assert (row["prompt_sha"], row["input_tokens"], row["output_tokens"]) == (
            req.prompt_sha,
            req.input_tokens,
            req.output_tokens,
        )
        assert row["success"] and row["error"] is None
    assert {k: summary[k] for k in writer.SUMMARY_COLUMNS} == dataclasses.asdict(result.metrics)
    assert config["fingerprint"] == result.fingerprint and config["label"] == "tiny/fp32/bs1"
    assert (config["model"], config["precision"], config["batch_size"], config["device"]) == (
        "tiny",
        "fp32",
        1,
        "cpu",
    )
    assert config["identity"]["prompt_set_sha"] == f.PROMPT_SHA and config["n_requests"] == 4
    assert (
        env["fingerprint"] == result.environment["fingerprint"]
        and env["packages"]["torch"] == "2.13.0"
    )
    assert (campaign["dag_run_id"], campaign["trigger"], campaign["dag_id"]) == (
        f"cli__{result.run_uid}",
        "cli",
        None,
    )
    assert (
        campaign["finished_at"] == result.finished_at
    )  # a shell run is a finished campaign of its own


def test_failed_requests_and_odd_values_survive(engine: sa.Engine) -> None:
    reqs = (
        *f.requests([5.0]),
        RequestResult(
            1,
            "a" * 64,
            7,
            0,
            None,
            None,
            None,
            (),
            success=False,
            error="boom\tline\nnext\\ \x00 ✓",
        ),
        RequestResult(2, "b" * 64, 7, 1, 3.0, None, 3.0, (), success=True),
    )
    report = writer.load(engine, f.result(reqs=reqs))
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text("SELECT * FROM request_result WHERE run_id = :id ORDER BY request_index"),
                {"id": report.run_id},
            )
            .mappings()
            .all()
        )
    assert rows[1]["success"] is False and rows[1]["error"] == "boom\tline\nnext\\ \ufffd ✓"
    assert rows[1]["ttft_ms"] is None and rows[1]["itl_ms"] == []
    assert rows[2]["tpot_ms"] is None and rows[2]["ttft_ms"] == 3.0


def test_loading_the_same_result_twice_changes_nothing(engine: sa.Engine) -> None:
    result = f.result()
    first = writer.load(engine, result)
    second = writer.load(engine, result)
    assert second == dataclasses.replace(first, action=writer.UNCHANGED)
    assert len(runs(engine)) == 1
    assert count(engine, "SELECT count(*) FROM request_result") == 4
    assert count(engine, "SELECT count(*) FROM run_summary") == 1


def test_a_retry_replaces_the_earlier_attempt(engine: sa.Engine) -> None:
    campaign = f.nightly(0)
    first = f.result(campaign=campaign, ttfts=(1.0, 2.0, 3.0))
    retry = dataclasses.replace(
        f.result(campaign=campaign, ttfts=(4.0, 5.0, 6.0), started_at=f.T0 + timedelta(minutes=5)),
        attempt=2,
    )
    writer.load(engine, first)
    report = writer.load(engine, retry)
    assert report.action == writer.REPLACED
    [run] = runs(engine)
    assert (run.run_uid, run.attempt) == (retry.run_uid, 2)  # the retry is visible
    with engine.connect() as conn:
        ttfts = (
            conn.execute(sa.text("SELECT ttft_ms FROM request_result ORDER BY request_index"))
            .scalars()
            .all()
        )
    assert ttfts == [4.0, 5.0, 6.0]
    assert count(engine, "SELECT ttft_p50_ms FROM run_summary") == 5
    # the older attempt arriving late (drained from a spool) does not win
    late = writer.load(engine, first)
    assert late.action == writer.SUPERSEDED and late.run_id == report.run_id
    assert [r.run_uid for r in runs(engine)] == [retry.run_uid]


def test_failed_runs_are_rows_with_their_error(engine: sa.Engine) -> None:
    campaign = f.nightly(0)
    cfg = f.config(batch_size=64)
    oom = f.result(
        cfg, campaign=campaign, status="oom", error="OutOfMemoryError: HPU out of memory", reqs=()
    )
    run_id = writer.load_result(engine, oom)
    [run] = runs(engine)
    assert (run.id, run.status, run.error) == (run_id, "oom", "OutOfMemoryError: HPU out of memory")
    assert count(engine, "SELECT count(*) FROM run_summary") == 0
    assert count(engine, "SELECT count(*) FROM v_run_trend") == 0


def test_record_failure_replaces_and_is_replaced(engine: sa.Engine) -> None:
    campaign = f.nightly(1, dag_id="llm_bench_nightly")
    cfg = f.config(batch_size=8)
    ok = f.result(cfg, campaign=campaign)
    writer.load(engine, ok)
    failure_id = writer.record_failure(
        engine,
        campaign=campaign,
        config=cfg,
        fingerprint=ok.fingerprint,
        prompt_set=ok.prompt_set,
        status="timeout",
        error="execution_timeout after 3600 s",
        started_at=f.T0 + timedelta(hours=1),
        finished_at=f.T0 + timedelta(hours=2),
        attempt=3,
    )
    [run] = runs(engine)
    assert (run.id, run.status, run.environment_id) == (failure_id, "timeout", None)
    assert run.attempt == 3
    assert (
        count(engine, "SELECT count(*) FROM request_result") == 0
    )  # the old attempt's rows went with it
    assert (
        count(engine, "SELECT count(*) FROM benchmark_config") == 1
    )  # same fingerprint, same config row
    with pytest.raises(ConfigError, match="status"):
        writer.record_failure(
            engine,
            campaign=campaign,
            config=cfg,
            fingerprint=ok.fingerprint,
            prompt_set={},
            status="ok",
            error="",
            started_at=f.T0,
            finished_at=f.T0,
        )


def test_record_failure_without_a_plan(engine: sa.Engine) -> None:
    """The child died before planning: device still "auto", no prompt set hash."""
    cfg = f.config().replace(device="auto")
    writer.record_failure(
        engine,
        campaign=f.nightly(0),
        config=cfg,
        fingerprint="unplanned-" + "0" * 54,
        prompt_set={},
        status="failed",
        error="killed by signal 9",
        started_at=f.T0,
        finished_at=f.T0,
    )
    [run] = runs(engine)
    assert run.status == "failed" and run.error == "killed by signal 9"


def test_hostile_model_name_is_stored_verbatim(engine: sa.Engine) -> None:
    name = "x'); DROP TABLE run; --"
    writer.load(engine, f.result(f.config(model=name)))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT model FROM benchmark_config")).scalar_one() == name
    assert len(runs(engine)) == 1


def test_campaign_lifecycle(engine: sa.Engine) -> None:
    campaign = CampaignRef(
        dag_run_id="manual__2025-01-01T10:00:00+00:00", dag_id="llm_bench_smoke", trigger="manual"
    )
    cid = writer.ensure_campaign(
        engine, campaign, params={"models": ["tiny"], "limit": 4}, started_at=f.T0
    )
    assert (
        writer.ensure_campaign(
            engine, campaign, params={"models": ["tiny"], "limit": 8}, started_at=f.T0
        )
        == cid
    )
    writer.load(engine, f.result(campaign=campaign))
    writer.finish_campaign(engine, campaign.dag_run_id, f.T0 + timedelta(hours=1))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM campaign")).mappings().one()
    assert row["id"] == cid and row["params"] == {"models": ["tiny"], "limit": 8}
    assert (row["dag_id"], row["trigger"]) == ("llm_bench_smoke", "manual")
    assert row["finished_at"] == f.T0 + timedelta(hours=1)
    assert runs(engine)[0].campaign_id == cid
    with pytest.raises(StoreError, match="no campaign"):
        writer.finish_campaign(engine, "nope", f.T0)


@pytest.mark.parametrize("retry", [False, True], ids=["first-attempts", "with-retries"])
def test_parallel_writers_of_one_campaign(engine: sa.Engine, retry: bool) -> None:
    """Mapped tasks finishing together: new campaign, environment and configs
    all created concurrently, then (optionally) every task retried at once."""
    campaign = f.nightly(3)
    env = f.environment(host="gaudi-07")
    results = [f.result(f.config(batch_size=2**i), campaign=campaign, env=env) for i in range(8)]
    rounds = [results]
    if retry:
        rounds.append(
            [
                f.result(
                    r.config,
                    campaign=campaign,
                    env=env,
                    started_at=f.T0 + timedelta(hours=1),
                    ttfts=(9.0,) * 4,
                )
                for r in results
            ]
        )
    for batch in rounds:
        barrier = threading.Barrier(len(batch))
        errors: list[BaseException] = []

        def load(
            result: object,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                writer.load(engine, result)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(r,)) for r in batch]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
    final = rounds[-1]
    assert sorted(r.run_uid for r in runs(engine)) == sorted(r.run_uid for r in final)
    assert count(engine, "SELECT count(*) FROM campaign") == 1
    assert count(engine, "SELECT count(*) FROM environment") == 1
    assert count(engine, "SELECT count(*) FROM benchmark_config") == 8
    assert count(engine, "SELECT count(*) FROM request_result") == sum(
        len(r.requests) for r in final
    )


def test_deleting_a_campaign_removes_its_request_rows(engine: sa.Engine) -> None:
    """request_result has no foreign key (COPY speed); a trigger cascades instead."""
    keep = f.result(campaign=f.nightly(0))
    writer.load(engine, keep)
    writer.load(engine, f.result(f.config(batch_size=2), campaign=f.nightly(1)))
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM campaign WHERE dag_run_id = :d"), {"d": f.nightly(1).dag_run_id}
        )
    assert [r.run_uid for r in runs(engine)] == [keep.run_uid]
    assert count(engine, "SELECT count(*) FROM request_result") == 4
    assert count(engine, "SELECT count(DISTINCT run_id) FROM request_result") == 1
