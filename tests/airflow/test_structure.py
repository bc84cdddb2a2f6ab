"""Task ids, mapping, pools, trigger rules, timeouts, retries and the trigger form."""

from __future__ import annotations

from datetime import timedelta

import jsonschema
import pytest

from bench.campaign import load_campaign
from tests.conftest import REPO


def test_smoke_structure(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["llm_bench_smoke"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {
        "plan", "benchmark", "suspects", "confirm", "detect_regressions", "report",
        "any_config_failed",
    }  # fmt: skip
    bench = tasks["benchmark"]
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(bench, MappedOperator)
    assert bench.map_index_template == "{{ task.op_kwargs['item']['label'] }}"
    assert (bench.pool, bench.pool_slots, bench.queue, bench.retries) == (
        "default_pool",
        1,
        "default",
        1,
    )
    assert bench.execution_timeout == timedelta(minutes=10, seconds=60)
    assert tasks["plan"].retries == 0  # a bad trigger value fails once, clearly
    assert tasks["plan"].downstream_task_ids >= {"benchmark"}
    assert tasks["detect_regressions"].trigger_rule == "all_done"
    # a same-night confirm run of each suspicious configuration, then the verdicts
    assert tasks["suspects"].trigger_rule == "all_done"
    assert tasks["suspects"].upstream_task_ids == {"benchmark"}
    assert tasks["confirm"].upstream_task_ids == {"suspects"}
    assert tasks["detect_regressions"].upstream_task_ids == {"confirm"}
    assert (tasks["confirm"].pool, tasks["confirm"].queue) == (bench.pool, bench.queue)
    assert tasks["report"].trigger_rule == "all_done"
    assert tasks["report"].upstream_task_ids == {"detect_regressions"}
    assert tasks["any_config_failed"].trigger_rule == "one_failed"
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual / API only


def test_nightly_structure_pools_and_multi_card(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["llm_bench_nightly"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert tasks["benchmark"].pool == "hpu" and tasks["benchmark"].queue == "hpu"
    assert tasks["benchmark"].pool_slots == 1
    assert tasks["benchmark_tp8"].pool_slots == 8  # a 70B tensor-parallel config takes 8 cards
    assert tasks["confirm_tp8"].pool_slots == 8  # and so does its confirm run
    assert tasks["benchmark"].execution_timeout == timedelta(minutes=90, seconds=60)
    assert dag.timetable.expression == "0 2 * * *"
    assert {"plan", "report"} <= set(tasks)


def test_trigger_form_schema_validates_defaults_and_rejects_bad_values(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["llm_bench_smoke"]
    params = dag.params
    assert params.dump()["precisions"] == ["fp32", "bf16"]
    schema = {name: params.get_param(name).schema for name in params}
    assert schema["precisions"]["items"]["enum"] == ["fp32", "bf16", "fp16"]
    assert schema["models"]["items"]["enum"] == ["tiny-llama"]
    assert all("section" in params.get_param(n).schema or "title" in schema[n] for n in schema)
    jsonschema.validate([1, 8], schema["batch_sizes"])
    for bad_name, bad_value in [
        ("batch_sizes", [0]),
        ("precisions", ["fp9"]),
        ("max_new_tokens", -1),
        ("device", "tpu"),
        ("models", ["nope"]),
        ("limit", 0),
    ]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad_value, schema[bad_name])


def test_form_fields_are_exactly_what_overrides_accept() -> None:
    campaign = load_campaign(REPO / "dags" / "campaigns" / "smoke.yaml")
    defaults = {k: v["default"] for k, v in campaign.trigger_form().items()}
    assert [c.label for c in campaign.with_overrides(defaults).configs()] == [
        c.label for c in campaign.configs()
    ]
