"""Fleets in the store: migration 014 on a database that already holds mixed
history, and the run slot of a campaign with several targets."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bench.store import migrate
from bench.store.db import get_engine
from bench.store.queries import run_query
from bench.store.writer import load_result
from tests.regressions.test_device_models_db import node
from tests.store.store_factory import T0, config, nightly, result

FLEETS = "014_add_run_device_model.sql"

#: Old-style history as the writer stored it before 014: one configuration,
#: nights on a Gaudi2 node and a Gaudi3 node by turns, one failed night whose
#: child died before it captured an environment.
OLD_HISTORY = """
INSERT INTO campaign (dag_run_id, trigger, started_at)
SELECT 'scheduled__n' || n, 'scheduled', :t0 + n * interval '1 day' FROM generate_series(0, 5) n;
INSERT INTO benchmark_config (fingerprint, model, precision, batch_size, max_new_tokens, backend,
                              device, label, identity)
VALUES ('f1', 'llama', 'bf16', 8, 128, 'habana', 'hpu', 'llama/bf16/bs8', '{}');
INSERT INTO environment (fingerprint, host, device, device_name, device_count)
VALUES ('e2', 'g2-node', 'hpu', 'HL-225', 8), ('e3', 'g3-node', 'hpu', 'HL-325L', 8);
INSERT INTO run (run_uid, campaign_id, config_id, environment_id, status, started_at,
                 finished_at, config)
SELECT 'r' || c.dag_run_id, c.id, bc.id,
       CASE WHEN c.dag_run_id = 'scheduled__n5' THEN NULL
            ELSE (SELECT id FROM environment
                  WHERE fingerprint = CASE WHEN right(c.dag_run_id, 1)::int % 2 = 0
                                           THEN 'e2' ELSE 'e3' END) END,
       CASE WHEN c.dag_run_id = 'scheduled__n5' THEN 'failed' ELSE 'ok' END,
       c.started_at, c.started_at + interval '1 minute', '{}'
FROM campaign c CROSS JOIN benchmark_config bc;
INSERT INTO run_summary (run_id, n_requests, n_failed, input_tokens_total, output_tokens_total,
                         duration_s, ttft_p50_ms)
SELECT r.id, 8, 0, 80, 1024, 60,
       CASE e.device_name WHEN 'HL-225' THEN 50 ELSE 30 END + r.id * 0.01
FROM run r JOIN environment e ON e.id = r.environment_id
WHERE r.status = 'ok';
"""


def test_014_derives_the_history_key_of_existing_mixed_history(db_url: str) -> None:
    engine = get_engine(db_url)
    with engine.connect() as conn:  # the database as it was before 014 ...
        for m in migrate.discover():
            if m.name != FLEETS:
                migrate._apply(conn, m)
        with conn.begin():
            for statement in OLD_HISTORY.split(";\n"):
                if statement.strip():
                    conn.execute(sa.text(statement), {"t0": T0})
    assert migrate.upgrade(engine) == [FLEETS]  # ... and after
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT run_uid, device_model, cards, target FROM run ORDER BY run_uid")
        ).all()
        histories = conn.execute(
            sa.text("SELECT device_model, cards FROM history ORDER BY device_model")
        ).all()
    assert [tuple(r) for r in runs] == [
        ("rscheduled__n0", "HL-225", 8, ""),
        ("rscheduled__n1", "HL-325L", 8, ""),
        ("rscheduled__n2", "HL-225", 8, ""),
        ("rscheduled__n3", "HL-325L", 8, ""),
        ("rscheduled__n4", "HL-225", 8, ""),
        ("rscheduled__n5", "", 0, ""),  # no environment: not known, in no history
    ]
    assert [tuple(h) for h in histories] == [("HL-225", 8), ("HL-325L", 8)]
    rows = run_query(engine, "campaign_vs_baseline", campaign="scheduled__n4", last=7)
    (night4,) = rows
    assert night4["device_model"] == "HL-225"
    assert night4["n_baseline"] == 2  # nights 0 and 2: never the HL-325L nights
    assert abs(night4["median_change_pct"]) < 1


def test_two_targets_of_one_campaign_are_two_runs_of_one_configuration(db_url: str) -> None:
    engine = get_engine(db_url)
    migrate.upgrade(engine)
    campaign = nightly(0)
    for target, device_model in (("gaudi2", "HL-225"), ("gaudi3", "HL-325L")):
        load_result(
            engine,
            result(
                config(target=target, device_model=device_model),
                campaign=campaign,
                env=node(device_model),
            ),
        )
    retry = result(
        config(target="gaudi3", device_model="HL-325L"),
        campaign=campaign,
        env=node("HL-325L"),
        started_at=T0 + timedelta(minutes=5),
    )
    load_result(engine, retry)  # a retry replaces its target's run only
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text(
                "SELECT r.target, r.device_model, r.run_uid, bc.label FROM run r"
                " JOIN benchmark_config bc ON bc.id = r.config_id ORDER BY r.target"
            )
        ).all()
        n_configs = conn.execute(sa.text("SELECT count(*) FROM benchmark_config")).scalar()
    assert n_configs == 1  # the target is not in the fingerprint
    assert [(r.target, r.device_model, r.label) for r in runs] == [
        ("gaudi2", "HL-225", "tiny/fp32/bs1"),
        ("gaudi3", "HL-325L", "tiny/fp32/bs1"),
    ]
    assert runs[1].run_uid == retry.run_uid
