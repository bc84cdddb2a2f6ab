"""Attribution on a real database: what changed next to a verdict, bad hosts, confirm runs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from bench.core.config import RunConfig
from bench.core.hashing import canonical_json, sha256_hex
from bench.core.results import CampaignRef
from bench.regressions import confirm_candidates, detect_campaign
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.queries import run_query
from bench.store.writer import load_result
from tests.conftest import REPO
from tests.store.store_factory import T0, config, environment, requests, result

N_REQ = 64


def env(host: str = "node-1", **changes: Any) -> dict[str, Any]:
    """An environment as capture_environment records it today (image and friends included)."""
    record = environment(host)
    record.pop("fingerprint")
    record.update(image="llm-bench-hpu:stack-1.21", kernel="5.15.0", model_revision="sha256:ab12")
    for key, value in changes.items():
        if key.startswith("packages."):
            record["packages"] = {**record["packages"], key.split(".", 1)[1]: value}
        else:
            record[key] = value
    record["fingerprint"] = sha256_hex(canonical_json(record))
    return record


def nightly(night: int) -> CampaignRef:
    return CampaignRef(f"scheduled__night{night:02d}", dag_id="llm_bench_t", trigger="scheduled")


def load_night(
    engine: sa.Engine,
    night: int,
    configs: Sequence[tuple[RunConfig, float, dict[str, Any]]],
    rng: np.random.Generator,
    *,
    role: str = "primary",
) -> None:
    """One campaign night: each configuration at its level (ms) in its environment."""
    shared = rng.lognormal(0.0, 0.004)  # the night's common part
    for cfg, level, environ in configs:
        ttfts = level * shared * rng.lognormal(0.0, 0.004) * rng.lognormal(0.0, 0.05, N_REQ)
        load_result(
            engine,
            dataclasses.replace(
                result(
                    cfg,
                    reqs=requests(list(ttfts)),
                    started_at=T0 + timedelta(days=night, minutes=30 if role == "confirm" else 0),
                    campaign=nightly(night),
                    env=environ,
                ),
                role=role,
            ),
        )


def rows(engine: sa.Engine, campaign: str) -> list[dict[str, Any]]:
    return run_query(engine, "latest_regressions", verdict="", campaign=campaign, last=1000)


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_a_verdict_carries_exactly_what_changed(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    rng = np.random.default_rng(3)
    cfg = config()
    for night in range(14):
        load_night(engine, night, [(cfg, 50.0, env())], rng)
    tonight = env(**{"packages.torch": "2.14.0", "image": "llm-bench-hpu:stack-1.22"})
    load_night(engine, 14, [(cfg, 56.0, tonight)], rng)
    detect_campaign(engine, nightly(14).dag_run_id)
    (ttft,) = [r for r in rows(engine, nightly(14).dag_run_id) if r["metric"] == "ttft_p50_ms"]
    assert ttft["verdict"] == "suspicious"
    assert ttft["changed"] == {
        "image": {"baseline": ["llm-bench-hpu:stack-1.21"], "runs": [14],
                  "current": "llm-bench-hpu:stack-1.22"},
        "packages.torch": {"baseline": ["2.13.0"], "runs": [14], "current": "2.14.0"},
    }  # fmt: skip
    proc = bench("regressions", "--verdict", "all", "--campaign", nightly(14).dag_run_id)
    assert proc.returncode == 0, proc.stderr
    assert (
        "image llm-bench-hpu:stack-1.21->llm-bench-hpu:stack-1.22, torch 2.13.0->2.14.0"
        in proc.stdout
    )
    full = json.loads(bench("regressions", "--verdict", "all", "--format", "json").stdout)
    assert full[0]["changed_detail"] == ttft["changed"] and full[0]["reason"]
    # the report's "What changed" section has the full difference
    from bench.report.campaign import write_campaign_report

    page = write_campaign_report(engine, nightly(14).dag_run_id, tmp_path / "r.html").read_text()
    section = page[page.index('<section id="changes">') :]
    section = section[: section.index("</section>")]
    assert 'data-key="image"' in section and 'data-key="packages.torch"' in section
    assert "llm-bench-hpu:stack-1.22" in section and "suspicious" in section


def test_keys_older_runs_never_recorded_are_not_changes(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    rng = np.random.default_rng(4)
    cfg = config()
    for night in range(14):
        load_night(engine, night, [(cfg, 50.0, environment())], rng)  # written before image etc.
    load_night(engine, 14, [(cfg, 56.0, env())], rng)  # today's record: image, kernel, revision
    detect_campaign(engine, nightly(14).dag_run_id)
    found = rows(engine, nightly(14).dag_run_id)
    assert found and all(r["changed"] == {} for r in found)


def hosts_campaign(
    engine: sa.Engine, tonight: dict[int, float], *, nights: int = 14
) -> list[tuple[RunConfig, float, dict[str, Any]]]:
    """Six configurations, three on each of two hosts, 14 quiet nights loaded."""
    configs = [config(batch_size=b) for b in range(1, 7)]
    rng = np.random.default_rng(5)
    for night in range(nights):
        load_night(
            engine,
            night,
            [(c, 40.0 + 5 * i, env(f"node-{i % 2 + 1}")) for i, c in enumerate(configs)],
            rng,
        )
    plan = [
        (c, (40.0 + 5 * i) * tonight.get(i, 1.0), env(f"node-{i % 2 + 1}"))
        for i, c in enumerate(configs)
    ]
    load_night(engine, nights, plan, rng)
    return plan


def test_a_bad_host_is_one_host_anomaly_naming_it(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    hosts_campaign(engine, {1: 1.15, 3: 1.15, 5: 1.15})  # everything on node-2 is 15% slower
    detection = detect_campaign(engine, nightly(14).dag_run_id)
    stored = rows(engine, nightly(14).dag_run_id)
    anomalies = [r for r in stored if r["verdict"] == "host_anomaly"]
    assert anomalies and {r["detail"]["scope"] for r in anomalies} == {"node-2"}
    assert all(sorted(r["detail"]["labels"]) == ["tiny/fp32/bs2", "tiny/fp32/bs4", "tiny/fp32/bs6"]
               for r in anomalies)  # fmt: skip
    ttft = next(r for r in anomalies if r["metric"] == "ttft_p50_ms")
    assert 10 < ttft["change_pct"] < 20 and "node-2" in ttft["reason"]
    assert not [
        (r["metric"], r["verdict"], r["change_pct"], r["reason"])
        for r in stored
        if r["verdict"] in ("regression", "suspicious")
    ]
    assert confirm_candidates(engine, nightly(14).dag_run_id) == []  # a bad node is not re-run
    alerts = detection.as_json()
    assert any(a["verdict"] == "host_anomaly" and a["scope"] == "node-2" for a in alerts)


def test_a_confirm_run_makes_a_first_night_regression(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    plan = hosts_campaign(engine, {4: 1.12})  # one configuration 12% slower tonight
    (item,) = confirm_candidates(engine, nightly(14).dag_run_id)
    assert item["label"] == "tiny/fp32/bs5" and item["role"] == "confirm"
    assert RunConfig.from_mapping(item["config"]) == plan[4][0]
    first = {
        (r["metric"], r["verdict"])
        for r in detect_campaign(engine, nightly(14).dag_run_id).as_json()
    }
    assert ("ttft_p50_ms", "suspicious") in first
    # the re-run lands beside the campaign's run, not as a night of its own
    load_night(engine, 14, [plan[4]], np.random.default_rng(8), role="confirm")
    with engine.connect() as conn:
        confirm = conn.execute(
            sa.text("SELECT id, confirm_of, config_id FROM run WHERE confirm_of IS NOT NULL")
        ).one()
    assert confirm.config_id is None
    history = run_query(engine, "metric_series", model="tiny", metric="ttft_p50_ms", last=100)
    assert confirm.id not in {r["run_id"] for r in history} and len(history) == 6 * 15
    detect_campaign(engine, nightly(14).dag_run_id)
    (ttft,) = [r for r in rows(engine, nightly(14).dag_run_id) if r["metric"] == "ttft_p50_ms"]
    assert ttft["verdict"] == "regression" and ttft["label"] == "tiny/fp32/bs5"
    assert ttft["detail"]["confirm_run_id"] == confirm.id
    assert "confirmed by a same-night re-run" in ttft["reason"]
    assert confirm_candidates(engine, nightly(14).dag_run_id) == []  # confirmed once


def test_a_confirm_run_is_replaced_by_its_retry_and_goes_with_its_primary(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    cfg = config()
    rng = np.random.default_rng(9)
    load_night(engine, 0, [(cfg, 50.0, env())], rng)
    load_night(engine, 0, [(cfg, 50.0, env())], rng, role="confirm")
    load_night(engine, 0, [(cfg, 51.0, env())], rng, role="confirm")  # a retried confirm task

    def count(sql: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())

    assert count("SELECT count(*) FROM run WHERE confirm_of IS NOT NULL") == 1
    assert count("SELECT count(*) FROM request_result") == 2 * N_REQ
    load_night(engine, 0, [(cfg, 50.0, env())], rng)  # the campaign's run retried: its confirm goes
    assert count("SELECT count(*) FROM run") == 1
    assert count("SELECT count(*) FROM request_result") == N_REQ


def test_a_confirm_without_a_campaign_run_is_refused(db_url: str) -> None:
    from bench.errors import StoreError

    engine = get_engine(db_url)
    upgrade(engine)
    with pytest.raises(StoreError, match="no run of that configuration to confirm"):
        load_night(engine, 0, [(config(), 50.0, env())], np.random.default_rng(1), role="confirm")
