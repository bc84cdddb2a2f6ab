"""The smoke campaign through Airflow (``dag.test()``) into a real Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bench.core.results import CampaignRef
from bench.orchestration.tasks import benchmark, plan
from tests.conftest import REPO

FAST = {"precisions": ["fp32"], "limit": 4, "max_new_tokens": 8}


def rows(db_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]
    finally:
        engine.dispose()


RUNS = """
SELECT bc.label, r.status, r.error, r.id,
       (SELECT count(*) FROM request_result q WHERE q.run_id = r.id) AS n_rows,
       s.n_requests, s.ttft_p50_ms, s.output_tokens_per_s
FROM run r JOIN campaign c ON c.id = r.campaign_id JOIN benchmark_config bc ON bc.id = r.config_id
LEFT JOIN run_summary s ON s.run_id = r.id
WHERE c.dag_run_id = :run_id ORDER BY bc.label
"""


@pytest.mark.slow
def test_smoke_campaign_lands_in_postgres(dag_test, smoke_home: Path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    outcome = dag_test("llm_bench_smoke", FAST)
    assert outcome.state == "success", outcome.log[-3000:]
    assert outcome.states("benchmark") == {
        "tiny-llama/fp32/bs1": "success",
        "tiny-llama/fp32/bs4": "success",
    }
    assert outcome.states("any_config_failed") == {"-1": "skipped"}
    (campaign,) = rows(db_url, "SELECT * FROM campaign WHERE dag_run_id = :r", r=outcome.run_id)
    assert campaign["dag_id"] == "llm_bench_smoke" and campaign["trigger"] == "manual"
    assert campaign["finished_at"] is not None
    assert campaign["params"]["overrides"] == FAST
    runs = rows(db_url, RUNS, run_id=outcome.run_id)
    assert [(r["label"], r["status"], r["n_rows"], r["n_requests"]) for r in runs] == [
        ("tiny-llama/fp32/bs1", "ok", 4, 4),
        ("tiny-llama/fp32/bs4", "ok", 4, 4),
    ]
    assert all(r["ttft_p50_ms"] > 0 and r["output_tokens_per_s"] > 0 for r in runs)
    reports = list((smoke_home / "reports" / "llm_bench_smoke").glob("*.html"))
    assert len(reports) == 1 and "tiny-llama/fp32/bs4" in reports[0].read_text()
    # the task logs: each configuration, its progress and table; the campaign table, the report
    for bs in (1, 4):
        assert f"tiny-llama/fp32/bs{bs}: model tiny-llama (" in outcome.log
        assert f"tiny-llama/fp32/bs{bs}: 4/4 requests (100%)" in outcome.log
        assert f"tiny-llama/fp32/bs{bs}  backend=hf device=cpu timing=stream  status=ok" in (
            outcome.log
        )
    assert "2/2 configurations ok" in outcome.log
    assert f"report: {reports[0]}" in outcome.log


@pytest.mark.slow
def test_one_failing_config_is_recorded_and_the_rest_still_runs(  # type: ignore[no-untyped-def]
    dag_test, dags_copy: Path, smoke_home: Path, db_url: str
) -> None:
    smoke = yaml.safe_load((dags_copy / "campaigns" / "smoke.yaml").read_text())
    smoke["models"].append({"name": "ghost", "path": "/nonexistent/ghost-model"})
    (dags_copy / "campaigns" / "mixed.yaml").write_text(
        yaml.safe_dump({**smoke, "batch_sizes": [2]})
    )
    outcome = dag_test("llm_bench_mixed", FAST, dags_folder=dags_copy)
    assert outcome.state == "failed"  # a red run: one configuration did not finish
    assert outcome.states("benchmark") == {
        "tiny-llama/fp32/bs2": "success",
        "ghost/fp32/bs2": "failed",
    }
    assert outcome.states("detect_regressions") == {"-1": "success"}
    assert outcome.states("report") == {"-1": "success"}
    runs = {r["label"]: r for r in rows(db_url, RUNS, run_id=outcome.run_id)}
    assert runs["tiny-llama/fp32/bs2"]["status"] == "ok"
    ghost = runs["ghost/fp32/bs2"]
    assert (
        ghost["status"] == "failed" and "/nonexistent/ghost-model does not exist" in ghost["error"]
    )
    assert ghost["n_rows"] == 0 and ghost["n_requests"] is None
    # a bad model is not retried: the error is deterministic
    assert outcome.log.count("$ bench run ghost/fp32/bs2") == 1
    # the red run says which configuration failed and why
    assert "1 of 2 configuration(s) failed: ghost/fp32/bs2 (failed: model directory" in outcome.log


@pytest.mark.slow
def test_the_same_mapped_task_twice_never_duplicates(smoke_home: Path, db_url: str) -> None:
    campaign = CampaignRef(dag_run_id="manual__retry", dag_id="llm_bench_smoke", trigger="manual")
    items = plan(
        REPO / "dags" / "campaigns" / "smoke.yaml",
        {**FAST, "batch_sizes": [2]},
        campaign=campaign,
        db_url=db_url,
        log=lambda _: None,
    )
    (item,) = items
    first = benchmark(item, campaign=campaign, db_url=db_url, timeout_s=300, log=lambda _: None)
    second = benchmark(item, campaign=campaign, db_url=db_url, timeout_s=300, log=lambda _: None)
    assert first.status == second.status == "ok"
    runs = rows(db_url, RUNS, run_id="manual__retry")
    assert [(r["label"], r["n_rows"]) for r in runs] == [("tiny-llama/fp32/bs2", 4)]
    assert rows(db_url, "SELECT count(*) AS n FROM request_result")[0]["n"] == 4


@pytest.mark.slow
def test_an_empty_matrix_fails_plan_in_one_line_and_the_rest_says_nothing_ran(  # type: ignore[no-untyped-def]
    dag_test, smoke_home: Path, db_url: str
) -> None:
    outcome = dag_test("llm_bench_smoke", {**FAST, "batch_sizes": [16]})  # max_batch_size 8
    assert outcome.state == "failed"
    assert outcome.states("plan") == {"-1": "failed"}
    assert outcome.states("detect_regressions") == {"-1": "success"}
    assert outcome.states("report") == {"-1": "success"}
    assert outcome.states("any_config_failed") == {"-1": "failed"}
    (line,) = [x for x in outcome.log.splitlines() if "plan: error: " in x]
    assert "matrix is empty" in line and "smoke.yaml" in line
    assert "Traceback" not in outcome.log.split("plan: error: ")[1].split("nothing ran")[0]
    assert outcome.log.count("nothing ran: the plan task produced no configuration") == 2
    assert "no configuration ran: the plan task failed" in outcome.log


def test_bad_trigger_values_fail_plan_before_anything_runs(smoke_home: Path, db_url: str) -> None:
    from bench.errors import BenchError

    campaign = CampaignRef(dag_run_id="manual__bad", dag_id="llm_bench_smoke", trigger="manual")
    smoke = REPO / "dags" / "campaigns" / "smoke.yaml"
    for conf, message in [
        ({"batch_sizes": [64]}, "matrix is empty"),
        ({"prompts": "no-such-set"}, "prompt set 'no-such-set' not found"),
        ({"models": ["gpt-9"]}, "models: 'gpt-9'"),
        ({"device": "hpu"}, "backend hf runs on cpu/cuda"),
    ]:
        with pytest.raises(BenchError, match=message):
            plan(smoke, conf, campaign=campaign, db_url=db_url, log=lambda _: None)
    assert (
        rows(
            db_url, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'run'"
        )[0]["n"]
        == 0
    )


def _delay_item(tmp_path: Path, tiny_model: Path, **delay: Any) -> dict[str, Any]:
    """A plan item (what the plan task hands a benchmark task) for a model
    whose forward pass sleeps, or kills its own process, as told."""
    from bench.core.config import RunConfig
    from bench.store.db import get_engine
    from bench.store.migrate import upgrade
    from tests.core.delay_model import save_delay_model

    model = save_delay_model(tmp_path / "delay", tiny_model, remote_code=True, **delay)
    config = RunConfig(
        model="delay", model_path=str(model), trust_remote_code=True, device="cpu", precision="fp32",
        max_new_tokens=8, limit=4, warmup=0,
    )  # fmt: skip
    upgrade(get_engine())  # the DAG's plan task migrates before any benchmark runs
    return {"label": config.label, "config": config.to_dict(), "world_size": 1}


def _planned_fingerprint(item: dict[str, Any]) -> str:
    """The history key the child computes for ``item`` (the test recomputes it)."""
    from bench.core.config import RunConfig
    from bench.core.prompts import load_prompt_set
    from bench.runner import Plan

    config = RunConfig.from_mapping(item["config"])
    return Plan(config, load_prompt_set(config.prompts)).fingerprint


FINGERPRINT = """
SELECT bc.fingerprint FROM run r JOIN campaign c ON c.id = r.campaign_id
JOIN benchmark_config bc ON bc.id = r.config_id WHERE c.dag_run_id = :run_id
"""


@pytest.mark.slow
def test_a_hung_benchmark_is_killed_and_recorded_as_timeout(
    tmp_path: Path, tiny_model: Path, db_url: str
) -> None:
    campaign = CampaignRef(dag_run_id="manual__hang", dag_id="llm_bench_x", trigger="manual")
    item = _delay_item(tmp_path, tiny_model, prefill_ms=60_000.0)  # a minute per prefill
    # long enough to load the tiny model on a busy 2-core machine
    outcome = benchmark(item, campaign=campaign, db_url=db_url, timeout_s=30, log=lambda _: None)
    assert outcome.status == "timeout" and outcome.retryable
    (run,) = rows(db_url, RUNS, run_id="manual__hang")
    assert run["status"] == "timeout"
    assert "no result after 30 s while measuring" in run["error"]
    # the child planned before it hung: the timeout is in the configuration's own history
    assert rows(db_url, FINGERPRINT, run_id="manual__hang")[0]["fingerprint"] == (
        _planned_fingerprint(item)
    )


@pytest.mark.slow
def test_a_killed_benchmark_process_is_recorded_not_lost(
    tmp_path: Path, tiny_model: Path, db_url: str
) -> None:
    campaign = CampaignRef(dag_run_id="manual__killed", dag_id="llm_bench_x", trigger="manual")
    item = _delay_item(tmp_path, tiny_model, prefill_ms=5.0, decode_ms=1.0, kill_at_step=3)
    lines: list[str] = []
    outcome = benchmark(item, campaign=campaign, db_url=db_url, timeout_s=120, log=lines.append)
    assert outcome.status == "failed" and outcome.retryable
    assert "killed by SIGKILL (the kernel OOM killer?) while measuring" in (outcome.error or "")
    (run,) = rows(db_url, RUNS, run_id="manual__killed")
    assert run["status"] == "failed" and "SIGKILL" in run["error"] and run["n_rows"] == 0
    assert rows(db_url, FINGERPRINT, run_id="manual__killed")[0]["fingerprint"] == (
        _planned_fingerprint(item)
    )
    # the task log names the configuration, then says where the child's seconds went
    assert lines[0].startswith("delay/fp32/bs1: model delay (") and "batch 1" in lines[0]
    assert "s in the child: start-up" in lines[-2] and "measure" in lines[-2]
    assert lines[-1].startswith("delay/fp32/bs1: failed (benchmark process killed")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("delay", "stored_by"),
    [({"oom_at_step": 2}, "child"), ({"oom_on_load": True}, "parent")],
    ids=["while-measuring", "while-loading"],
)
def test_running_out_of_memory_is_recorded_as_oom_and_not_retried(
    tmp_path: Path, tiny_model: Path, db_url: str, delay: dict[str, Any], stored_by: str
) -> None:
    """Measuring: the child stores its failed result. Loading: the child
    gives up with the error in its outcome file, the parent stores it."""
    campaign = CampaignRef(dag_run_id="manual__oom", dag_id="llm_bench_x", trigger="manual")
    lines: list[str] = []
    item = _delay_item(tmp_path, tiny_model, **delay)
    outcome = benchmark(item, campaign=campaign, db_url=db_url, timeout_s=120, log=lines.append)
    assert outcome.status == "oom" and not outcome.retryable
    assert "OutOfMemoryError: CUDA out of memory" in (outcome.error or "")
    (run,) = rows(db_url, RUNS, run_id="manual__oom")
    assert run["status"] == "oom" and "CUDA out of memory" in run["error"] and run["n_rows"] == 0
    assert rows(db_url, FINGERPRINT, run_id="manual__oom")[0]["fingerprint"] == (
        _planned_fingerprint(item)
    )
    child_stored = any(line.startswith("result stored in the results DB") for line in lines)
    assert child_stored == (stored_by == "child"), lines


@pytest.mark.slow
def test_a_child_that_dies_before_planning_is_recorded_as_failed(
    tmp_path: Path, tiny_model: Path, db_url: str
) -> None:
    """No fingerprint yet: the failure goes under the configuration's unplanned
    key, visible in its campaign, never missing, outside any real history."""
    from bench.core.config import RunConfig
    from bench.orchestration.child import unplanned_fingerprint

    campaign = CampaignRef(dag_run_id="manual__early", dag_id="llm_bench_x", trigger="manual")
    item = _delay_item(tmp_path, tiny_model)
    outcome = benchmark(item, campaign=campaign, db_url=db_url, timeout_s=0.2, log=lambda _: None)
    assert outcome.status == "timeout" and outcome.retryable
    (run,) = rows(db_url, RUNS, run_id="manual__early")
    assert run["label"] == "delay/fp32/bs1" and run["status"] == "timeout"
    assert "no result after 0 s" in run["error"] and run["n_rows"] == 0
    (key,) = rows(db_url, FINGERPRINT, run_id="manual__early")
    assert key["fingerprint"] == unplanned_fingerprint(RunConfig.from_mapping(item["config"]))
    # a later attempt that plans replaces nothing it should not: its own key, its own row
    assert key["fingerprint"] != _planned_fingerprint(item)
