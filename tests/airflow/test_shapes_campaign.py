"""Shapes as a matrix axis through Airflow: the smoke campaign triggered with
two tiny shapes (``dag.test()``) gives one task and one run per shape, with
token-exact inputs in ``request_result``; ``best_batch_size`` ranks per shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.results import CampaignRef
from bench.orchestration.tasks import plan
from tests.airflow.test_dag_run import rows
from tests.conftest import REPO

SHAPES = [{"input": 24, "output": 4}, {"input": 48, "output": 2}]
CONF = {"precisions": ["fp32"], "batch_sizes": [1, 2], "limit": 4, "shapes": SHAPES}
LABELS = [f"tiny-llama/fp32/bs{b}/in{s['input']}-out{s['output']}" for s in SHAPES for b in (1, 2)]

PER_RUN = """
SELECT bc.label, bc.input_tokens, bc.max_new_tokens, r.status,
       array_agg(DISTINCT q.input_tokens) AS inputs, array_agg(DISTINCT q.output_tokens) AS outputs,
       count(q.*) AS n_rows
FROM run r JOIN campaign c ON c.id = r.campaign_id JOIN benchmark_config bc ON bc.id = r.config_id
JOIN request_result q ON q.run_id = r.id
WHERE c.dag_run_id = :run_id GROUP BY bc.label, bc.input_tokens, bc.max_new_tokens, r.status
ORDER BY bc.input_tokens, bc.label
"""


@pytest.mark.slow
def test_two_shapes_give_one_task_and_one_run_each(  # type: ignore[no-untyped-def]
    dag_test, smoke_home: Path, db_url: str
) -> None:
    outcome = dag_test("llm_bench_smoke", CONF)
    assert outcome.state == "success", outcome.log[-3000:]
    assert outcome.states("benchmark") == dict.fromkeys(LABELS, "success")
    runs = rows(db_url, PER_RUN, run_id=outcome.run_id)
    assert [
        (r["label"], r["input_tokens"], r["max_new_tokens"], r["status"], r["n_rows"]) for r in runs
    ] == [
        (label, s["input"], s["output"], "ok", 4)
        for s in SHAPES
        for label in LABELS
        if label.endswith(f"in{s['input']}-out{s['output']}")
    ]
    for r in runs:  # every request read exactly the shape's input and wrote its output
        assert r["inputs"] == [r["input_tokens"]] and r["outputs"] == [r["max_new_tokens"]]

    from bench.store.db import get_engine
    from bench.store.queries import run_query

    engine = get_engine(db_url)
    try:
        best = run_query(engine, "best_batch_size", slo_ttft_p99_ms=1e9, model="tiny-llama")
        assert [(b["shape"], b["n_batch_sizes"]) for b in best] == [
            ("in24-out4", 2),
            ("in48-out2", 2),
        ]
        assert all(b["best_batch_size"] in (1, 2) for b in best)
        one = run_query(engine, "best_batch_size", slo_ttft_p99_ms=1e9, shape="in48-out2")
        assert [(b["input_tokens"], b["max_new_tokens"]) for b in one] == [(48, 2)]
    finally:
        engine.dispose()


def test_a_shape_the_context_cannot_hold_fails_plan(smoke_home: Path, db_url: str) -> None:
    from bench.errors import BenchError

    campaign = CampaignRef(dag_run_id="manual__shape", dag_id="llm_bench_smoke", trigger="manual")
    smoke = REPO / "dags" / "campaigns" / "smoke.yaml"
    for conf, message in [
        (
            {"shapes": [{"input": 2000, "output": 100}]},
            r"exceed the context of tiny-llama \(2048 tokens\)",
        ),
        ({"shapes": [{"input": 0, "output": 4}]}, r"shapes\[0\]: input: must be >= 1"),
        ({"shapes": [{"input": 16}]}, r"shapes\[0\]: output"),
    ]:
        with pytest.raises(BenchError, match=message):
            plan(smoke, conf, campaign=campaign, db_url=db_url, log=lambda _: None)
