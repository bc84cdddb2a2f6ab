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
        verdicts = set(conn.execute(sa.text("SELECT name FROM verdict")).scalars())
        foreign = set(
            conn.execute(sa.text("SELECT conname FROM pg_constraint WHERE contype = 'f'")).scalars()
        )
    assert {
        "campaign_dag_run_id_key",
        "benchmark_config_fingerprint_key",
        "environment_fingerprint_key",
        "run_campaign_config_key",
        "run_run_uid_key",
    } <= uniques
    assert "'oom'" in checks and "'timeout'" in checks
    # verdicts are rows of `verdict` (migration 015), enforced by a foreign key
    assert {"regression", "suspicious", "improvement", "host_anomaly", "campaign_shift"} <= verdicts
    assert "regression_verdict_fkey" in foreign


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
    assert {s.name: s for s in migrate.status(engine)}["999_break_things.sql"].applied is False


def test_badly_named_migration_is_rejected(sql_copy: Path) -> None:
    (sql_copy / "migrations" / "8_oops.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match=r"8_oops\.sql is not named"):
        migrate.discover()


#: Migrations that shipped: databases in the field recorded these checksums,
#: and `bench db upgrade` refuses to run when an applied file changed. Never
#: edit one; add a new migration instead.
SHIPPED = {
    "001_create_schema_migrations.sql": "090f4b3f1954fdf2acb3ff798e9e1585e1c99d6976e75d5f3d722bcd121540da",
    "002_create_dimensions.sql": "5463648af7f84018b3a3c2d8ce58b70df376e709a186b110884e201a8fecd14f",
    "003_create_run.sql": "d594491310862365713e827efb9a948b626446b782b9e212381be21a9496abcb",
    "004_create_request_result.sql": "31c13dd9fadbdfa957aedac88e5618ab347acf91a48c67f3d9acb433e9207674",
    "005_create_run_summary.sql": "7b5d5ae4358dc35e4f30f7b0f8bee968a1ab5714e1437aa745391357262ac78b",
    "006_create_regression.sql": "0b6a674f5731467cd501dc72ece4d0005295366fb44c7a8af71b271672248cf6",
    "007_create_v_run_trend.sql": "757b6e86dac593b0aa3c19daac5572178338eacb1bbfc1f6f58b84da86b0d1ae",
    "008_create_run_metric.sql": "186c2a1dfaacd187cef8e1f9af4e5cfef7c53b1d0695bb271358ad4da9859740",
}  # fmt: skip


def test_shipped_migrations_never_change() -> None:
    found = {m.name: m.checksum for m in migrate.discover()}
    assert {name: found.get(name) for name in SHIPPED} == SHIPPED
