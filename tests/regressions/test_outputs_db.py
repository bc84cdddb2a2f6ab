"""What runs generated, on a real database: drift verdicts, non-determinism,
agreement with the reference precision, and what --no-outputs stores."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bench.core.config import RunConfig
from bench.core.records import RequestResult, output_digest
from bench.core.results import CampaignRef, RunResult
from bench.outputs import cli_agreement
from bench.regressions import detect_campaign
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.queries import run_query
from bench.store.writer import ensure_campaign, load_result
from tests.conftest import REPO
from tests.store.store_factory import T0, config, environment, requests, result

N_REQ, N_TOK = 8, 6
#: What each request generates on a normal night.
BASE = [tuple(100 * i + t for t in range(N_TOK)) for i in range(N_REQ)]


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    eng = get_engine(db_url)
    upgrade(eng)
    return eng


def generated(
    outputs: Sequence[tuple[int, ...]], *, keep: bool = True, ttft: float = 10.0
) -> tuple[RequestResult, ...]:
    """Requests that generated ``outputs`` (their digests always, ids unless ``keep`` is off)."""
    return tuple(
        dataclasses.replace(
            r,
            output_sha=output_digest(ids),
            output_token_ids=ids if keep else None,
        )
        for r, ids in zip(requests([ttft] * len(outputs), n_tokens=N_TOK), outputs, strict=True)
    )


def changed(outputs: Sequence[tuple[int, ...]], at: dict[int, int]) -> list[tuple[int, ...]]:
    """``outputs`` with request i's tokens replaced from position at[i] on."""
    out = [list(o) for o in outputs]
    for i, pos in at.items():
        out[i][pos:] = [9999] * (len(out[i]) - pos)
    return [tuple(o) for o in out]


def night(n: int) -> CampaignRef:
    return CampaignRef(f"scheduled__night{n:02d}", dag_id="llm_bench_t", trigger="scheduled")


def load(
    engine: sa.Engine,
    n: int,
    outputs: Sequence[tuple[int, ...]],
    *,
    cfg: RunConfig | None = None,
    env: dict[str, Any] | None = None,
    keep: bool = True,
) -> RunResult:
    res = result(
        cfg or config(max_new_tokens=N_TOK),
        reqs=generated(outputs, keep=keep),
        started_at=T0 + timedelta(days=n),
        campaign=night(n),
        env=env,
    )
    load_result(engine, res)
    return res


def drift(engine: sa.Engine, n: int) -> list[dict[str, Any]]:
    rows = detect_campaign(engine, night(n).dag_run_id).as_json()
    return [r for r in rows if r["verdict"] == "output_changed"]


def test_changed_tokens_are_an_output_changed_verdict_with_counts_and_position(
    engine: sa.Engine,
) -> None:
    load(engine, 0, BASE)
    load(engine, 1, BASE)
    assert drift(engine, 1) == []  # same tokens: nothing
    load(engine, 2, changed(BASE, {5: 3, 2: 4}))
    (row,) = drift(engine, 2)
    assert row["metric"] == "output" and row["verdict"] == "output_changed"
    assert (row["requests_changed"], row["requests_compared"]) == (2, N_REQ)
    assert (row["first_request"], row["first_position"]) == (2, 4)
    assert row["change_pct"] == -25.0 and row["nondeterministic"] is False
    assert "2 of 8 requests generated other tokens" in row["reason"]
    # the SQL view of it: per model, newest first
    (change,) = run_query(engine, "output_changes", model="tiny")
    assert (change["requests_changed"], change["first_request"], change["first_position"]) == (
        2,
        2,
        4,
    )
    assert change["baseline_run_id"] == row["baseline_run_id"] and not change["nondeterministic"]
    # detection twice converges
    assert len(drift(engine, 2)) == 1
    assert len(run_query(engine, "output_changes", model="tiny")) == 1


def test_bench_regressions_lists_output_changes_by_default(engine: sa.Engine, db_url: str) -> None:
    load(engine, 0, BASE)
    load(engine, 1, changed(BASE, {0: 0}))
    out = subprocess.run(
        [sys.executable, "-m", "bench", "regressions", "--detect", "--campaign",
         night(1).dag_run_id, "--format", "json"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**__import__("os").environ, "BENCH_DB_URL": db_url},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert (row["verdict"], row["metric"], row["label"]) == (
        "output_changed",
        "output",
        "tiny/fp32/bs1",
    )
    assert row["detail"]["first_position"] == 0 and row["detail"]["requests_changed"] == 1


def test_a_sampling_configuration_has_no_drift_verdict(engine: sa.Engine) -> None:
    sampling = config(max_new_tokens=N_TOK, options={"do_sample": True})
    load(engine, 0, BASE, cfg=sampling)
    load(engine, 1, changed(BASE, {0: 0}), cfg=sampling)
    assert drift(engine, 1) == []


def test_outputs_that_keep_changing_are_marked_nondeterministic_until_the_environment_changes(
    engine: sa.Engine,
) -> None:
    load(engine, 0, BASE)
    load(engine, 1, changed(BASE, {1: 5}))
    first = detect_campaign(engine, night(1).dag_run_id)
    (row,) = [r for r in first.as_json() if r["verdict"] == "output_changed"]
    assert row["nondeterministic"] is False and len(first.flagged()) == 1  # news: alarmed
    load(engine, 2, changed(BASE, {3: 2}))  # changed again, nothing else did
    second = detect_campaign(engine, night(2).dag_run_id)
    (row,) = [r for r in second.as_json() if r["verdict"] == "output_changed"]
    assert row["nondeterministic"] is True and second.flagged() == []  # shown, not alarmed
    assert "output-nondeterministic" in row["reason"]
    load(engine, 3, changed(BASE, {3: 2}))  # an identical night keeps the mark
    load(engine, 4, changed(BASE, {4: 1}))
    assert drift(engine, 3) == [] and drift(engine, 4)[0]["nondeterministic"] is True
    upgraded = environment(driver="1.20.0")  # a new driver: the mark is gone
    load(engine, 5, changed(BASE, {6: 0}), env=upgraded)
    fifth = detect_campaign(engine, night(5).dag_run_id)
    (row,) = [r for r in fifth.as_json() if r["verdict"] == "output_changed"]
    assert row["nondeterministic"] is False and len(fifth.flagged()) == 1
    assert "driver 1.19.0->1.20.0" in row["changed"]


def test_agreement_with_the_reference_precision_is_stored_and_trended(engine: sa.Engine) -> None:
    # fp16 parts from fp32 in two requests; bf16 in four, one of them at its first token
    per_precision = {
        "fp32": BASE,
        "fp16": changed(BASE, {1: 3, 2: 3}),
        "bf16": changed(BASE, {1: 3, 2: 3, 5: 0, 7: 4}),
    }
    for precision, outputs in per_precision.items():
        load(engine, 0, outputs, cfg=config(precision=precision, max_new_tokens=N_TOK))
    detect_campaign(engine, night(0).dag_run_id)
    rows = run_query(engine, "metric_series", model="tiny", metric="output_exact_match")
    exact = {r["label"].split("/")[1]: r["value"] for r in rows}
    assert exact == {"fp32": 1.0, "fp16": 6 / 8, "bf16": 4 / 8}
    prefix = {
        r["label"].split("/")[1]: r["value"]
        for r in run_query(engine, "metric_series", model="tiny", metric="output_prefix_match")
    }
    assert prefix["fp32"] == 1.0
    assert prefix["fp16"] == pytest.approx((6 + 2 * 3 / 6) / 8)
    assert prefix["bf16"] == pytest.approx((4 + 2 * 3 / 6 + 0 + 4 / 6) / 8)
    # the reference the plan task recorded wins over the default (fp32)
    ensure_campaign(engine, night(0), params={"reference_precision": "bf16"}, started_at=T0)
    detect_campaign(engine, night(0).dag_run_id)
    exact = {
        r["label"].split("/")[1]: r["value"]
        for r in run_query(engine, "metric_series", model="tiny", metric="output_exact_match")
    }
    assert exact == {"fp32": 4 / 8, "fp16": 6 / 8, "bf16": 1.0}


def test_a_fall_in_agreement_is_judged_worse(engine: sa.Engine) -> None:
    """The gate judges agreement like any metric, higher is better."""
    for n in range(8):
        low = changed(BASE, {1: 3}) if n < 7 else changed(BASE, {1: 3, 2: 0, 3: 0, 4: 0, 5: 0})
        load(engine, n, BASE, cfg=config(precision="fp32", max_new_tokens=N_TOK))
        load(engine, n, low, cfg=config(precision="bf16", max_new_tokens=N_TOK))
        detection = detect_campaign(engine, night(n).dag_run_id)
    rows = [r for r in detection.as_json() if r["metric"] == "output_exact_match"]
    (row,) = rows
    assert row["label"] == "tiny/bf16/bs1" and row["direction"] == "worse"
    assert row["baseline"] == 7 / 8 and row["current"] == 3 / 8
    assert row["verdict"] in ("regression", "suspicious")


def test_no_outputs_keeps_digests_and_no_ids(engine: sa.Engine) -> None:
    kept = load(engine, 0, BASE)
    bare = load(engine, 1, BASE, keep=False, cfg=config(max_new_tokens=N_TOK, no_outputs=True))
    assert kept.fingerprint == bare.fingerprint  # one history: --no-outputs is operational
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.dag_run_id, count(*) AS n, count(rr.output_ids) AS ids,"
                " count(rr.output_sha) AS shas,"
                " bool_and(rr.output_ids IS NULL OR sha256(rr.output_ids) = rr.output_sha) AS ok"
                " FROM request_result rr JOIN run r ON r.id = rr.run_id"
                " JOIN campaign c ON c.id = r.campaign_id GROUP BY c.dag_run_id ORDER BY 1"
            )
        ).all()
        digests = conn.execute(sa.text("SELECT encode(output_sha, 'hex') FROM run")).scalars()
        assert len(set(digests)) == 1  # the same tokens, kept or not
    assert [tuple(r) for r in rows] == [
        (night(0).dag_run_id, N_REQ, N_REQ, N_REQ, True),
        (night(1).dag_run_id, N_REQ, 0, N_REQ, True),
    ]
    # drift is still detected without ids; only the position is unknown
    load(
        engine,
        2,
        changed(BASE, {4: 2}),
        keep=False,
        cfg=config(max_new_tokens=N_TOK, no_outputs=True),
    )
    (row,) = drift(engine, 2)
    assert (row["requests_changed"], row["first_request"], row["first_position"]) == (1, 4, None)


def test_bench_run_agreement_uses_the_most_precise_stored_run(engine: sa.Engine) -> None:
    fp32 = load(engine, 0, BASE, cfg=config(precision="fp32", max_new_tokens=N_TOK))
    load(engine, 1, changed(BASE, {0: 1}), cfg=config(precision="bf16", max_new_tokens=N_TOK))
    fp16 = load(
        engine, 2, changed(BASE, {0: 1, 1: 1}), cfg=config(precision="fp16", max_new_tokens=N_TOK)
    )
    found = cli_agreement(engine, fp16.run_uid)
    assert found is not None and found.precision == "fp32" and found.agreement.exact_match == 6 / 8
    assert found.dag_run_id == fp32.campaign.dag_run_id
    assert cli_agreement(engine, fp32.run_uid) is None  # nothing more precise


def test_output_digests_are_the_sha256_of_the_stored_ids(engine: sa.Engine) -> None:
    res = load(engine, 0, BASE)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT encode(output_sha, 'hex'), output_ids FROM request_result ORDER BY request_index"
            )
        ).all()
    for (sha, ids), req in zip(stored, res.requests, strict=True):
        assert sha == req.output_sha == hashlib.sha256(bytes(ids)).hexdigest()


def test_the_report_has_an_outputs_section(engine: sa.Engine) -> None:
    from bench.report.campaign import build_report_data
    from bench.report.page import render_html

    for n in (0, 1):
        load(engine, n, BASE, cfg=config(precision="fp32", max_new_tokens=N_TOK))
        load(engine, n, changed(BASE, {1: 3} if n else {}), cfg=config(precision="bf16",
             max_new_tokens=N_TOK))  # fmt: skip
        detect_campaign(engine, night(n).dag_run_id)
    data = build_report_data(engine, night(1).dag_run_id)
    assert data.outputs is not None and data.outputs.reference == "fp32"
    (note,) = data.outputs.drift
    assert (note.label, note.requests_changed, note.requests_compared) == ("tiny/bf16/bs1", 1, 8)
    assert note.diff is not None and not note.diff.decoded  # "tiny" has no tokenizer at hand
    assert (note.diff.request_index, note.diff.position) == (1, 3)
    assert (note.diff.common, note.diff.before, note.diff.after) == (
        "100 101 102 ", "103 104 105 ", "9999 9999 9999 ",
    )  # fmt: skip
    agreement = {a.precision: (a.exact_match, a.prefix_match) for a in data.outputs.agreement}
    assert agreement == {"fp32": (1.0, 1.0), "bf16": (7 / 8, pytest.approx((7 + 3 / 6) / 8))}
    page = render_html(data)
    assert '<section id="outputs">' in page and '<a href="#outputs">' in page
    assert 'class="drift" data-label="tiny/bf16/bs1" data-nondeterministic="false"' in page
    assert '<del class="before">103 104 105 </del>' in page
    assert '<tr class="agreement" data-label="tiny/fp32/bs1">' in page


def test_the_benchmarks_page_plots_agreement_and_lists_output_changes(engine: sa.Engine) -> None:
    """What plugins/bench_ui.py serves, through the readers it calls."""
    from bench.errors import ConfigError
    from bench.report import browse

    for n in (0, 1):
        load(engine, n, BASE, cfg=config(precision="fp32", max_new_tokens=N_TOK))
        load(engine, n, changed(BASE, {2: 2} if n else {}), cfg=config(precision="bf16",
             max_new_tokens=N_TOK))  # fmt: skip
        detect_campaign(engine, night(n).dag_run_id)
    view = browse.parse_view(browse.list_models(engine), "tiny", "output_prefix_match", None)
    series = browse.trend(engine, view)
    points = {
        s["label"]: [p["value"] for p in s["points"]] for s in browse.series_json(view, series)
    }
    assert points["tiny/fp32/bs1"] == [1.0, 1.0]
    assert points["tiny/bf16/bs1"] == [1.0, pytest.approx((7 + 2 / 6) / 8)]
    assert browse.figure(view, series).data  # drawn
    (row,) = browse.latest_regressions(engine, verdict=browse.parse_verdict(None))
    assert (row["verdict"], row["label"]) == ("output_changed", "tiny/bf16/bs1")
    assert browse.parse_verdict("output_changed,regression") == "output_changed,regression"
    with pytest.raises(ConfigError, match="unknown verdict 'bad'"):
        browse.parse_verdict("bad")


@pytest.mark.parametrize("tokens", [128, 2048])
def test_stored_ids_cost_four_bytes_a_token(engine: sa.Engine, tokens: int) -> None:
    """What docs/performance.md states: 4 bytes a token plus the 4-byte bytea
    length inline; out of line (TOAST) the value itself is 4 bytes a token."""
    rng = random.Random(tokens)
    ids = tuple(rng.randrange(128_256) for _ in range(tokens))  # random: TOAST cannot compress
    res = result(
        config(max_new_tokens=tokens),
        reqs=tuple(
            dataclasses.replace(r, output_sha=output_digest(ids), output_token_ids=ids)
            for r in requests([10.0] * 2, n_tokens=4)
        ),
        campaign=night(0),
    )
    load_result(engine, res)
    with engine.connect() as conn:
        sizes = conn.execute(
            sa.text(
                "SELECT pg_column_size(output_ids), octet_length(output_ids),"
                " pg_column_size(output_sha) FROM request_result"
            )
        ).all()
    inline = 4 * tokens + 4
    assert {tuple(s) for s in sizes} == {(inline if tokens < 500 else 4 * tokens, 4 * tokens, 33)}
