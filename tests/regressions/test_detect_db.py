"""The nightly gate on a real database: history in, verdicts stored, retries converge."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from bench.core.results import CampaignRef
from bench.regressions import detect_campaign, flagged
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.writer import load_result
from tests.store.store_factory import T0, config, requests, result

N_REQ = 64


def night_ttfts(rng: np.random.Generator, level_ms: float) -> list[float]:
    night = level_ms * rng.lognormal(0.0, 0.01)  # night-to-night noise, CV ~1%
    return list(night * rng.lognormal(0.0, 0.10, N_REQ))  # request-to-request noise


def load_nights(engine: sa.Engine, levels: list[float], seed: int = 1) -> list[CampaignRef]:
    upgrade(engine)
    rng = np.random.default_rng(seed)
    campaigns = []
    for night, level in enumerate(levels):
        ref = CampaignRef(
            dag_run_id=f"scheduled__night{night:02d}", dag_id="llm_bench_t", trigger="scheduled"
        )
        load_result(
            engine,
            result(
                config(),
                reqs=requests(night_ttfts(rng, level)),
                started_at=T0 + timedelta(days=night),
                campaign=ref,
            ),
        )
        campaigns.append(ref)
    return campaigns


def verdicts(engine: sa.Engine, ref: CampaignRef) -> dict[str, str]:
    return {
        f.metric: f.verdict
        for j in detect_campaign(engine, ref.dag_run_id).judged
        for f in j.findings
    }


def test_a_10pct_ttft_slowdown_is_suspicious_then_a_regression(db_url: str) -> None:
    engine = get_engine(db_url)
    nights = load_nights(engine, [50.0] * 14 + [55.0, 55.0], seed=2)
    assert verdicts(engine, nights[13]) == {}  # a quiet night: nothing to say
    first = verdicts(engine, nights[14])
    assert first.get("ttft_p50_ms") == "suspicious"
    second = verdicts(engine, nights[15])
    assert second.get("ttft_p50_ms") == "regression"  # persisted: the second night confirms
    stored = run_sql(
        engine,
        "SELECT metric, verdict, change_pct, p_value FROM regression WHERE verdict = 'regression'",
    )
    assert ("ttft_p50_ms", "regression") in {(r[0], r[1]) for r in stored}
    ttft = next(r for r in stored if r[0] == "ttft_p50_ms")
    assert 5 < ttft[2] < 16 and ttft[3] is not None and ttft[3] < 0.001


def test_pure_noise_gives_no_regression_and_detection_converges(db_url: str) -> None:
    engine = get_engine(db_url)
    nights = load_nights(engine, [50.0] * 20, seed=7)
    for ref in nights:
        judged = detect_campaign(engine, ref.dag_run_id)
        assert flagged(judged) == []
    before = run_sql(engine, "SELECT count(*) FROM regression")
    detect_campaign(engine, nights[-1].dag_run_id)  # a retried task: same rows, not more
    assert run_sql(engine, "SELECT count(*) FROM regression") == before


def test_too_little_history_gives_no_verdict(db_url: str) -> None:
    engine = get_engine(db_url)
    nights = load_nights(engine, [50.0, 50.0, 80.0])
    (judged,) = detect_campaign(engine, nights[-1].dag_run_id).judged
    assert judged.findings == () and judged.baseline_nights == 2


def test_bad_thresholds_are_rejected_before_anything_is_read(db_url: str) -> None:
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="ttft_p5_ms"):
        detect_campaign(get_engine(db_url), "whatever", thresholds={"ttft_p5_ms": 0.05})


def run_sql(engine: sa.Engine, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]
