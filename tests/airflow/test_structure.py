"""Task ids, mapping, pools, trigger rules, timeouts, retries and the trigger form."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

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


def airflow_widget(schema: dict[str, Any]) -> str:
    """The widget Airflow 3.3's trigger form renders for a field schema, in
    the order its FieldSelector decides (airflow/ui/src/components/
    FlexibleForm/FieldSelector.tsx): a multi-select needs ``examples`` or
    ``enum`` on the array itself, not only on its items."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    kinds = [t for t in types if t != "null"]
    if len(kinds) > 1 and "enum" not in schema and "examples" not in schema:
        return "multi-type"
    kind = kinds[0]
    if kind == "boolean":
        return "switch"
    if kind in ("string", "number", "integer") and "enum" in schema:
        return "dropdown"
    if kind == "array" and ("examples" in schema or "enum" in schema):
        return "multi-select"
    if kind == "array":
        item = schema.get("items", {}).get("type")
        return "lines" if item in (None, "string") else "json"
    return {"integer": "number", "number": "number", "object": "json"}.get(kind, "text")


def form_of(dag: Any) -> dict[str, Any]:
    """name -> (description, schema, default) of each Param of a DAG's trigger form."""
    params = dag.params
    return {
        name: (p.description, p.schema, p.value)
        for name in params
        for p in [params.get_param(name)]
    }


def test_trigger_form_fields_render_as_a_performance_engineer_expects(dagbag) -> None:  # type: ignore[no-untyped-def]
    form = form_of(dagbag.dags["llm_bench_smoke"])
    assert {name: airflow_widget(spec[1]) for name, spec in form.items()} == {
        "campaign": "dropdown",
        "models": "multi-select",
        "precisions": "multi-select",
        "batch_sizes": "multi-select",
        "max_new_tokens": "number",
        "output_lengths": "dropdown",
        "warmup": "number",
        "prompts": "text",
        "limit": "number",
        "seed": "number",
        "stop_at_eos": "switch",
        "timing": "dropdown",
        "shapes": "json",  # {input, output} records: Airflow's JSON editor
        "device": "dropdown",
        "slo_ttft_ms": "number",
        "slo_tpot_ms": "number",
    }
    matrix = ["campaign", "models", "precisions", "batch_sizes"]
    assert list(form)[:4] == matrix  # first, in Airflow's default section: open
    for name, (description, schema, _) in form.items():
        assert schema["title"], name
        assert description or schema.get("description_md"), name
        assert ("section" in schema) == (name not in matrix), name
    assert form["campaign"][1]["description_md"].startswith("**Smoke campaign.**")
    assert form["precisions"][1]["examples"] == ["fp32", "bf16", "fp16"]  # the hf backend's
    assert form["models"][1]["examples"] == ["tiny-llama"]
    assert form["batch_sizes"][2] == ["1", "4"]  # as the multi-select sends them
    assert {"1", "4", "8", "4096"} <= set(form["batch_sizes"][1]["examples"])
    assert form["device"][1]["enum"] == ["cpu", "cuda"]  # hf runs on these
    units = {
        "batch_sizes": "1 to 4096 sequences",
        "max_new_tokens": "1 to 32768 tokens",
        "warmup": "0 to 100 iterations",
        "limit": "At least 1. Empty: the whole prompt set.",
        "slo_ttft_ms": "Above 0 ms. Empty: none.",
    }
    for name, text in units.items():
        assert text in form[name][0], (name, form[name][0])


def test_trigger_form_schema_validates_defaults_and_rejects_bad_values(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["llm_bench_smoke"]
    params = dag.params
    params.validate()  # the defaults pass their own schema
    schema = {name: params.get_param(name).schema for name in params}
    assert schema["precisions"]["items"]["enum"] == ["fp32", "bf16", "fp16"]
    assert schema["models"]["items"]["enum"] == ["tiny-llama"]
    for name, good in [
        ("batch_sizes", [1, 8]),
        ("batch_sizes", ["1", "8", 4096]),
        ("max_new_tokens", 32768),
        ("warmup", 100),
        ("limit", None),
        ("slo_tpot_ms", 0.5),
    ]:
        jsonschema.validate(good, schema[name])
    for bad_name, bad_value in [
        ("batch_sizes", [0]),
        ("batch_sizes", [4097]),
        ("batch_sizes", ["eight"]),
        ("batch_sizes", []),
        ("precisions", ["fp9"]),
        ("precisions", []),
        ("max_new_tokens", -1),
        ("max_new_tokens", 32769),
        ("warmup", 101),
        ("device", "tpu"),
        ("device", "hpu"),
        ("models", ["nope"]),
        ("limit", 0),
        ("slo_ttft_ms", 0),
        ("campaign", "nightly"),
    ]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad_value, schema[bad_name])


OPENAI_CAMPAIGN = """
description: An endpoint campaign.
backend: openai
device: hpu
precisions: [bf16]
concurrencies: [1, 16]
request_rates: [0.5]
options: {base_url: "http://127.0.0.1:9/v1"}
models:
  - {name: qwen-coder, path: Qwen/Qwen2.5-Coder-7B, trust_remote_code: true}
  - {name: llama, path: meta-llama/Llama-3.1-8B-Instruct}
"""


def test_an_openai_campaign_shows_its_load_fields_and_no_batch_sizes(dags_copy: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    (dags_copy / "campaigns" / "endpoint.yaml").write_text(OPENAI_CAMPAIGN)
    dag = DagBag(dag_folder=str(dags_copy)).dags["llm_bench_endpoint"]
    form = form_of(dag)
    assert "batch_sizes" not in form
    widgets = {name: airflow_widget(spec[1]) for name, spec in form.items()}
    assert widgets["concurrencies"] == widgets["request_rates"] == "multi-select"
    assert form["concurrencies"][2] == ["1", "16"]
    assert form["request_rates"][2] == ["0.5"]
    assert "Above 0 req/s" in form["request_rates"][0]
    trust = form["trust_remote_code"]
    assert widgets["trust_remote_code"] == "multi-select"
    assert trust[2] == trust[1]["examples"] == ["qwen-coder"]
    assert "Only the campaign file can opt a model in" in trust[0]
    assert trust[1]["section"] == "Model and device"
    jsonschema.validate([], trust[1])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(["llama"], trust[1])
    assert form["device"][1]["enum"] == ["cpu", "cuda", "hpu"]
    assert dag.description == "An endpoint campaign. (6 configurations)"
    assert dag.doc_md == "An endpoint campaign."


def test_form_fields_are_exactly_what_overrides_accept() -> None:
    campaign = load_campaign(REPO / "dags" / "campaigns" / "smoke.yaml")
    defaults = {k: v["default"] for k, v in campaign.trigger_form().items()}
    assert [c.label for c in campaign.with_overrides(defaults).configs()] == [
        c.label for c in campaign.configs()
    ]
