"""Migrations: from empty, idempotent, concurrent, and the schema contract."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_helpers import REPO, bench_proc, count

from bench.core.metrics import RunMetrics
from bench.errors import StoreError
from bench.store import migrate
from bench.store.db import get_engine
from bench.store.queries import RUN_METRICS

#: DESIGN.md "Results tables": table -> contract columns (additions allowed).
CONTRACT = {
    "campaign": "id dag_id dag_run_id trigger started_at finished_at params",
    "benchmark_config": "id fingerprint model precision batch_size max_new_tokens backend device options",
    "environment": "id fingerprint host device_name device_count driver_version runtime_version packages",
    "run": "id campaign_id config_id environment_id status error started_at finished_at",
    "request_result": "run_id request_index prompt_sha input_tokens output_tokens ttft_ms tpot_ms e2e_ms itl_ms",
    "run_summary": "run_id n_requests ttft_p50_ms ttft_p90_ms ttft_p99_ms tpot_p50_ms tpot_p99_ms itl_p50_ms "
    "itl_p99_ms e2e_p50_ms e2e_p99_ms output_tokens_per_s requests_per_s peak_memory_bytes energy_j_per_token",
    "regression": "run_id metric baseline current change_pct p_value verdict",
}


def columns(engine: sa.Engine, table: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = :t"
            ),
            {"t": table},
        )
        return dict(rows.all())


def test_upgrade_from_empty_then_noop(db_url: str) -> None:
    engine = get_engine(db_url)
    names = [m.name for m in migrate.discover()]
    assert migrate.upgrade(engine) == names
    assert names[0] == "001_create_schema_migrations.sql"
    assert migrate.upgrade(engine) == []
    assert count(engine, "SELECT count(*) FROM schema_migrations") == len(names)
    assert all(s.applied and s.drift is None for s in migrate.status(engine))


def test_status_of_an_empty_database_lists_everything_pending(db_url: str) -> None:
    states = migrate.status(get_engine(db_url))
    assert states and not any(s.applied for s in states)


def test_schema_has_the_contract_columns(engine: sa.Engine) -> None:
    for table, names in CONTRACT.items():
        have = columns(engine, table)
        missing = set(names.split()) - set(have)
        assert not missing, f"{table} lacks {missing}"
    assert columns(engine, "request_result")["itl_ms"] == "_float4"  # real[]
    # every RunMetrics field is stored and visible to trend queries
    fields = {f.name for f in dataclasses.fields(RunMetrics)}
    assert fields <= set(columns(engine, "run_summary"))
    assert set(RUN_METRICS) <= set(columns(engine, "v_run_trend"))


def test_unique_keys_and_checks(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        uniques = set(
            conn.execute(
                sa.text("SELECT conname FROM pg_constraint WHERE contype IN ('u', 'p')")
            ).scalars()
        )
        checks = " ".join(
            conn.execute(
                sa.text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c'")
            ).scalars()
        )
    assert {
        "campaign_dag_run_id_key",
        "benchmark_config_fingerprint_key",
        "environment_fingerprint_key",
        "run_campaign_config_key",
        "run_run_uid_key",
    } <= uniques
    assert "'oom'" in checks and "'timeout'" in checks and "'suspicious'" in checks


def test_concurrent_upgrades_apply_each_migration_once(db_url: str) -> None:
    procs = [bench_proc("db", "upgrade") for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    applied = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")
    ]
    names = [m.name for m in migrate.discover()]
    assert sorted(applied) == sorted(f"applied {n}" for n in names)  # each exactly once, by someone
    assert count(get_engine(db_url), "SELECT count(*) FROM schema_migrations") == len(names)


@pytest.fixture
def sql_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(REPO / "sql", target)
    monkeypatch.setenv("BENCH_SQL_DIR", str(target))
    return target


def test_status_reports_a_migration_edited_after_it_was_applied(
    db_url: str, sql_copy: Path
) -> None:
    engine = get_engine(db_url)
    migrate.upgrade(engine)
    path = sql_copy / "migrations" / "006_create_regression.sql"
    path.write_text(path.read_text() + "\n-- edited\n")
    drift = {s.name: s.drift for s in migrate.status(engine)}
    assert drift["006_create_regression.sql"] == "file changed since it was applied"
    assert migrate.upgrade(engine) == []  # never re-applied


def test_a_failing_migration_leaves_nothing_behind(db_url: str, sql_copy: Path) -> None:
    engine = get_engine(db_url)
    migrate.upgrade(engine)
    (sql_copy / "migrations" / "999_break_things.sql").write_text(
        "CREATE TABLE half_done (x int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(
        StoreError, match=r"migration 999_break_things.sql failed: .*no_such_function"
    ):
        migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('half_done')")).scalar() is None
    assert not migrate.status(engine)[-1].applied


def test_badly_named_migration_is_rejected(sql_copy: Path) -> None:
    (sql_copy / "migrations" / "8_oops.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match=r"8_oops\.sql is not named"):
        migrate.discover()
