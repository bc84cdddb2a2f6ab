"""The hub token for gated models: from the ``bench_hf`` connection into the
benchmark child's environment, and nowhere else (logs, result files, the
Airflow metadata DB, the results DB)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.backends.inprocess import load_error
from tests.airflow.test_dag_run import FAST

TOKEN = "hf_NeverLogMe0123456789abcdefABCDEF"
CONN = json.dumps({"conn_type": "generic", "password": TOKEN})


def test_the_connection_gives_hf_token(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
    from bench_hub import hub_secrets

    monkeypatch.delenv("AIRFLOW_CONN_BENCH_HF", raising=False)
    assert hub_secrets() == {}
    monkeypatch.setenv("AIRFLOW_CONN_BENCH_HF", CONN)
    assert hub_secrets() == {"HF_TOKEN": TOKEN}


def test_a_gated_model_without_a_token_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no token stored by a login either
    refused = OSError(
        "You are trying to access a gated repo.\nMake sure to have access to it at ..."
    )
    message = str(load_error("meta-llama/Llama-2-7b-hf", refused))
    assert message.startswith("cannot load model 'meta-llama/Llama-2-7b-hf': You are trying")
    assert "no Hugging Face token: set HF_TOKEN, or the Airflow connection bench_hf" in message
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    message = str(load_error("meta-llama/Llama-2-7b-hf", refused))
    assert "has its account accepted the model's license?" in message and TOKEN not in message
    assert str(load_error("m", OSError("disk full"))) == "cannot load model 'm': disk full"


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_the_token_appears_in_no_log_result_or_database(  # type: ignore[no-untyped-def]
    dag_test, smoke_home: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BENCH_HF", CONN)
    outcome = dag_test("llm_bench_smoke", {**FAST, "batch_sizes": [2]})
    assert outcome.state == "success", outcome.log[-3000:]
    assert TOKEN not in outcome.log
    # BENCH_HOME (spool, result files, reports) and the Airflow home (task logs, metadata DB)
    assert list((smoke_home / "runs").rglob("*.jsonl")), "the run left its result file"
    assert _files_holding(tmp_path, TOKEN.encode()) == []
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            for table in tables:
                dump = conn.execute(sa.text(f'SELECT t::text FROM "{table}" t')).scalars().all()
                assert not any(TOKEN in row for row in dump), table
    finally:
        engine.dispose()
