"""One history per device model (migration 014) on a real database: a
configuration measured on Gaudi2 and Gaudi3 nodes by turns is two histories,
each judged against itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.core.hashing import canonical_json, sha256_hex
from bench.core.results import CampaignRef
from bench.regressions import detect_campaign, flagged
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.queries import run_query
from bench.store.writer import load_result
from tests.regressions.test_detect_db import night_ttfts
from tests.store.store_factory import T0, config, environment, requests, result

#: Two device models of one fleet and their TTFT levels (ms): 40% apart, far
#: beyond any threshold, so one shared baseline would flag every night.
LEVELS = {"HL-225": 50.0, "HL-325L": 30.0}


def node(device_model: str, cards: int = 8) -> dict[str, Any]:
    env = environment(host=f"node-{device_model.lower()}")
    env.pop("fingerprint")
    env |= {"device": "hpu", "device_name": device_model, "device_count": cards}
    env["fingerprint"] = sha256_hex(canonical_json(env))
    return env


def load_alternating(engine: sa.Engine, nights: int, step_from: int | None = None) -> list[Any]:
    """Night n runs on HL-225 when n is even, HL-325L when odd; from night
    ``step_from`` on, the HL-325L nights are 10% slower."""
    upgrade(engine)
    rng = np.random.default_rng(3)
    out = []
    for night in range(nights):
        model = "HL-225" if night % 2 == 0 else "HL-325L"
        level = LEVELS[model]
        if model == "HL-325L" and step_from is not None and night >= step_from:
            level *= 1.10
        ref = CampaignRef(dag_run_id=f"scheduled__n{night:02d}", dag_id="llm_bench_t")
        load_result(
            engine,
            result(
                config(),
                reqs=requests(night_ttfts(rng, level)),
                started_at=T0 + timedelta(days=night),
                campaign=ref,
                env=node(model),
            ),
        )
        out.append((ref, model))
    return out


def test_alternating_device_models_never_share_a_baseline(db_url: str) -> None:
    engine = get_engine(db_url)
    nights = load_alternating(engine, 24)
    for ref, _ in nights:
        assert flagged(detect_campaign(engine, ref.dag_run_id)) == []
    rows = run_query(engine, "latest_vs_previous", model="tiny", metric="ttft_p50_ms", last=7)
    assert sorted(r["device_model"] for r in rows) == ["HL-225", "HL-325L"]
    for r in rows:  # each compared with its own device model's nights only
        assert abs(r["median_change_pct"]) < 5, r


def test_a_10pct_step_on_one_device_model_is_still_caught(db_url: str) -> None:
    engine = get_engine(db_url)
    nights = load_alternating(engine, 32, step_from=28)
    verdicts: dict[str, list[str]] = {"HL-225": [], "HL-325L": []}
    for ref, model in nights[24:]:
        found = {
            f.metric: f.verdict
            for j in detect_campaign(engine, ref.dag_run_id).judged
            for f in j.findings
        }
        verdicts[model].append(found.get("ttft_p50_ms", "-"))
    assert verdicts["HL-225"] == ["-"] * 4  # the other model's nights stay quiet
    assert verdicts["HL-325L"][:2] == ["-", "-"]
    assert verdicts["HL-325L"][2:] == ["suspicious", "regression"]  # then confirmed


def test_trend_queries_keep_device_models_apart(db_url: str) -> None:
    engine = get_engine(db_url)
    load_alternating(engine, 8)
    series = run_query(engine, "metric_series", model="tiny", metric="ttft_p50_ms", last=30)
    assert {(r["device_model"], r["cards"]) for r in series} == {("HL-225", 8), ("HL-325L", 8)}
    assert len(series) == 8
    one = run_query(
        engine, "metric_series", model="tiny", metric="ttft_p50_ms", device_model="HL-325L"
    )
    assert len(one) == 4 and all(r["value"] < 40 for r in one)
    best = run_query(engine, "best_batch_size", slo_ttft_p99_ms=1000.0, model="tiny")
    assert sorted(r["device_model"] for r in best) == ["HL-225", "HL-325L"]
    devices = run_query(engine, "device_models", model="tiny")
    assert [(d["device_model"], d["cards"], d["n_configs"]) for d in devices] == [
        ("HL-225", 8, 1),
        ("HL-325L", 8, 1),
    ]


def load_two_targets(engine: sa.Engine, nights: int = 3) -> list[CampaignRef]:
    """A fleet campaign: bs1 and bs2 on a Gaudi2 target and a Gaudi3 target
    (Gaudi3 40% faster), ``nights`` nights."""
    upgrade(engine)
    rng = np.random.default_rng(5)
    refs = []
    for night in range(nights):
        ref = CampaignRef(dag_run_id=f"scheduled__fleet{night}", dag_id="llm_bench_fleet")
        for target, model in (("gaudi2", "HL-225"), ("gaudi3", "HL-325L")):
            for bs in (1, 2):
                load_result(
                    engine,
                    result(
                        config(batch_size=bs, target=target, device_model=model),
                        reqs=requests(night_ttfts(rng, LEVELS[model])),
                        started_at=T0 + timedelta(days=night, minutes=bs),
                        campaign=ref,
                        env=node(model),
                    ),
                )
        refs.append(ref)
    return refs


def test_bench_compare_puts_two_targets_of_one_campaign_side_by_side(db_url: str) -> None:
    from tests.regressions.test_attribution_db import bench

    refs = load_two_targets(get_engine(db_url), nights=1)
    proc = bench(
        "compare", refs[0].dag_run_id, "--a", "target=gaudi2", "--b", "target=gaudi3",
        "--format", "csv",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    verdicts = {line.split(",")[0]: line.split(",")[8] for line in lines[1:]}
    assert verdicts == {"tiny/fp32/bs1": "faster", "tiny/fp32/bs2": "faster"}


def test_the_report_shows_targets_side_by_side_and_one_history_each(db_url: str) -> None:
    from bench.report.campaign import build_report_data
    from bench.report.page import render_html

    engine = get_engine(db_url)
    refs = load_two_targets(engine)
    for ref in refs:
        assert flagged(detect_campaign(engine, ref.dag_run_id)) == []
    data = build_report_data(engine, refs[-1].dag_run_id)
    assert [(r.config, sorted(r.devices.values())) for r in data.targets] == [
        ("tiny/fp32/bs1", ["HL-225", "HL-325L"]),
        ("tiny/fp32/bs2", ["HL-225", "HL-325L"]),
    ]
    assert {s.config for s in data.series} == {
        f"tiny/fp32/bs{bs} on {model} x8" for bs in (1, 2) for model in LEVELS
    }
    assert all(len(s.nights) == 3 for s in data.series)
    assert {row.config for row in data.table} == {
        f"tiny/fp32/bs{bs}@{t}" for bs in (1, 2) for t in ("gaudi2", "gaudi3")
    }
    page = render_html(data)
    assert '<section id="targets"' in page and "ttft_p50_ms @gaudi3" in page
