"""Timing modes through Airflow: a campaign with ``timing: dual`` and the same
campaign with ``timing: stream``, each run by ``dag.test()`` into Postgres.

The model is the delay model (30 ms prefill, 25 ms per decode step), so the
numbers are dominated by known sleeps and a busy machine moves them little.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.airflow.test_dag_run import rows
from tests.core.delay_model import save_delay_model

SUMMARY = """
SELECT bc.timing, bc.identity ->> 'timing' AS identity_timing, bc.fingerprint, r.status,
       s.ttft_p50_ms, s.tpot_p50_ms, s.e2e_p50_ms, s.output_tokens_per_s,
       s.streamed_vs_bare_ratio,
       (SELECT count(*) FROM request_result q WHERE q.run_id = r.id) AS n_rows
FROM run r JOIN campaign c ON c.id = r.campaign_id JOIN benchmark_config bc ON bc.id = r.config_id
JOIN run_summary s ON s.run_id = r.id
WHERE c.dag_run_id = :run_id
"""


@pytest.mark.slow
def test_a_dual_campaign_matches_a_stream_campaign_on_cpu(  # type: ignore[no-untyped-def]
    dag_test, dags_copy: Path, tiny_model: Path, tmp_path: Path, db_url: str
) -> None:
    model = save_delay_model(
        tmp_path / "delay", tiny_model, remote_code=True, prefill_ms=30.0, decode_ms=25.0
    )
    for timing in ("dual", "stream"):
        campaign = {
            "device": "cpu",
            "backend": "hf",
            "precisions": ["fp32"],
            "batch_sizes": [2],
            "max_new_tokens": 8,
            "limit": 6,
            "warmup": 1,
            "timeout_minutes": 5,
            "retries": 0,
            "timing": timing,
            "models": [{"name": "delay", "path": str(model), "trust_remote_code": True}],
        }
        (dags_copy / "campaigns" / f"timing_{timing}.yaml").write_text(yaml.safe_dump(campaign))
    found = {}
    for timing in ("dual", "stream"):
        outcome = dag_test(f"llm_bench_timing_{timing}", dags_folder=dags_copy)
        assert outcome.state == "success", outcome.log[-3000:]
        (found[timing],) = rows(db_url, SUMMARY, run_id=outcome.run_id)
    dual, stream = found["dual"], found["stream"]
    assert (dual["timing"], dual["identity_timing"]) == ("dual", "dual")
    assert (stream["timing"], stream["identity_timing"]) == ("stream", None)  # old key kept
    assert dual["fingerprint"] != stream["fingerprint"]
    assert dual["status"] == stream["status"] == "ok" and dual["n_rows"] == stream["n_rows"] == 6
    assert stream["streamed_vs_bare_ratio"] is None
    assert 0.85 < dual["streamed_vs_bare_ratio"] < 1.2
    for name in ("ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms", "output_tokens_per_s"):
        assert dual[name] == pytest.approx(stream[name], rel=0.25), name
