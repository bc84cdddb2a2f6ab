"""A campaign with two targets through Airflow (``dag.test()``): one mapped
task per target on its queue, each configuration once per target, two
histories in one Postgres (issue 14). On CPU both targets are this machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.backends.devices import cpu_name
from tests.airflow.test_dag_run import FAST, rows

TARGETS = [
    {"name": "left", "queue": "bench_left"},
    # the check before the model loads passes: a part of this node's device name
    {"name": "right", "queue": "bench_right", "device_model": cpu_name()[:12]},
]


def two_target_campaign(dags_copy: Path) -> Path:
    smoke = yaml.safe_load((dags_copy / "campaigns" / "smoke.yaml").read_text())
    (dags_copy / "campaigns" / "fleet.yaml").write_text(
        yaml.safe_dump({**smoke, "batch_sizes": [2], "targets": TARGETS})
    )
    return dags_copy


def test_each_target_is_a_mapped_task_on_its_queue(dags_copy: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(two_target_campaign(dags_copy)))
    dag = bag.dags["llm_bench_fleet"]
    queues = {t.task_id: t.queue for t in dag.tasks if t.task_id.startswith("benchmark")}
    assert queues == {"benchmark_left": "bench_left", "benchmark_right": "bench_right"}
    assert {t.task_id for t in dag.tasks} >= {"select_left", "confirm_right", "confirm_select_left"}
    assert all(t.pool == "default_pool" for t in dag.tasks if t.task_id.startswith("benchmark"))


@pytest.mark.slow
def test_a_two_target_campaign_lands_two_histories(  # type: ignore[no-untyped-def]
    dag_test, dags_copy: Path, smoke_home: Path, db_url: str
) -> None:
    outcome = dag_test("llm_bench_fleet", FAST, dags_folder=two_target_campaign(dags_copy))
    assert outcome.state == "success", outcome.log[-3000:]
    assert outcome.states("benchmark_left") == {"tiny-llama/fp32/bs2@left": "success"}
    assert outcome.states("benchmark_right") == {"tiny-llama/fp32/bs2@right": "success"}
    runs = rows(
        db_url,
        "SELECT r.target, r.device_model, r.cards, r.status, bc.label FROM run r"
        " JOIN campaign c ON c.id = r.campaign_id JOIN benchmark_config bc ON bc.id = r.config_id"
        " WHERE c.dag_run_id = :r ORDER BY r.target",
        r=outcome.run_id,
    )
    assert [(r["target"], r["status"], r["label"]) for r in runs] == [
        ("left", "ok", "tiny-llama/fp32/bs2"),
        ("right", "ok", "tiny-llama/fp32/bs2"),
    ]  # one configuration, a run per target
    assert {r["device_model"] for r in runs} == {cpu_name()}
    assert "2/2 configurations ok" in outcome.log
