"""Named trend queries against a synthetic history with known answers."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import subprocess
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
import store_factory as f
from store_helpers import REPO, libpq_url, psql_binary

from bench.core.results import RunResult
from bench.errors import ConfigError
from bench.store import queries, writer

NIGHTS = 10
BATCH_SIZES = (1, 2, 4)


def ttft(bs: int, night: int) -> float:
    """Every request of (bs, night) has this TTFT, so every TTFT percentile equals it."""
    return 10.0 * bs + night


def nightly_result(bs: int, night: int, model: str = "m") -> RunResult:
    """Throughput = 100 * bs output tokens per second."""
    reqs = f.requests([ttft(bs, night)] * 4, n_tokens=5)
    return f.result(
        f.config(model=model, batch_size=bs),
        reqs=reqs,
        campaign=f.nightly(night),
        started_at=f.T0 + timedelta(days=night, minutes=bs),
        duration_s=sum(r.output_tokens for r in reqs) / (100.0 * bs),
    )


@pytest.fixture
def history(engine: sa.Engine) -> dict[tuple[int, int], RunResult]:
    """Model "m": 3 batch sizes x 10 nights; on the last night bs 8 ran out of
    memory. Model "other" has one night (must never leak into "m")."""
    loaded = {}
    for night in range(NIGHTS):
        for bs in BATCH_SIZES:
            loaded[bs, night] = nightly_result(bs, night)
            writer.load(engine, loaded[bs, night])
    oom = f.result(
        f.config(model="m", batch_size=8),
        campaign=f.nightly(NIGHTS - 1),
        status="oom",
        error="OutOfMemoryError",
        reqs=(),
        started_at=f.T0 + timedelta(days=NIGHTS - 1, minutes=8),
    )
    writer.load(engine, oom)
    writer.load(engine, nightly_result(1, 3, model="other"))
    return loaded


def test_metric_series(engine: sa.Engine, history: dict) -> None:
    rows = queries.run_query(engine, "metric_series", model="m", last=3)
    assert [(r["label"], r["value"]) for r in rows] == [
        (f"m/fp32/bs{bs}", ttft(bs, n)) for bs in BATCH_SIZES for n in (7, 8, 9)
    ]
    assert rows[0]["dag_run_id"] == f.nightly(7).dag_run_id and rows[0]["run_id"]
    one = queries.run_query(
        engine,
        "metric_series",
        model="m",
        fingerprint=history[2, 0].fingerprint,
        metric="output_tokens_per_s",
        last=100,
    )
    assert [r["value"] for r in one] == pytest.approx([200.0] * NIGHTS)
    assert [r["started_at"] for r in one] == [history[2, n].started_at for n in range(NIGHTS)]


def test_latest_vs_previous(engine: sa.Engine, history: dict) -> None:
    rows = queries.run_query(engine, "latest_vs_previous", model="m", last=5)
    assert [r["label"] for r in rows] == [
        "m/fp32/bs1",
        "m/fp32/bs2",
        "m/fp32/bs4",
    ]  # the oom config has no ok run
    for bs, row in zip(BATCH_SIZES, rows, strict=True):
        latest, previous, median = ttft(bs, 9), ttft(bs, 8), ttft(bs, 6)  # median of nights 4..8
        assert (row["latest"], row["previous"], row["rolling_median"], row["n_baseline"]) == (
            latest,
            previous,
            median,
            5,
        )
        assert row["previous_change_pct"] == pytest.approx(100 * (latest - previous) / previous)
        assert row["median_change_pct"] == pytest.approx(100 * (latest - median) / median)
    every_model = queries.run_query(engine, "latest_vs_previous")
    assert {r["model"] for r in every_model} == {"m", "other"}
    [other] = [r for r in every_model if r["model"] == "other"]
    assert other["previous"] is None and other["n_baseline"] == 0


def test_campaign_vs_baseline(engine: sa.Engine, history: dict) -> None:
    rows = queries.run_query(
        engine, "campaign_vs_baseline", campaign=f.nightly(9).dag_run_id, last=3
    )
    by_label = {r["label"]: r for r in rows}
    assert set(by_label) == {"m/fp32/bs1", "m/fp32/bs2", "m/fp32/bs4", "m/fp32/bs8"}
    assert (by_label["m/fp32/bs8"]["status"], by_label["m/fp32/bs8"]["current"]) == ("oom", None)
    assert by_label["m/fp32/bs8"]["error"] == "OutOfMemoryError"
    row = by_label["m/fp32/bs4"]
    assert (row["current"], row["previous"], row["baseline_median"], row["n_baseline"]) == (
        49.0,
        48.0,
        47.0,
        3,
    )
    # an old campaign is judged against what came before it, not after
    early = queries.run_query(
        engine, "campaign_vs_baseline", campaign=f.nightly(1).dag_run_id, metric="requests_per_s"
    )
    assert {r["n_baseline"] for r in early} == {1}


def test_best_batch_size(engine: sa.Engine, history: dict) -> None:
    def best(slo: float) -> dict:
        [row] = queries.run_query(engine, "best_batch_size", model="m", slo_ttft_p99_ms=slo)
        return row

    # latest night: ttft p99 = 19 (bs1), 29 (bs2), 49 (bs4); throughput 100/200/400 tok/s
    assert (best(30)["best_batch_size"], best(30)["output_tokens_per_s"]) == (
        2,
        pytest.approx(200.0),
    )
    assert (best(30)["n_within_slo"], best(30)["n_batch_sizes"]) == (2, 3)
    assert best(1000)["best_batch_size"] == 4
    assert best(19)["best_batch_size"] == 1  # the SLO bound is inclusive
    nothing = best(5)
    assert nothing["best_batch_size"] is None and nothing["n_within_slo"] == 0
    assert nothing["ttft_p99_ms"] == pytest.approx(19.0)  # the closest it came
    assert len(queries.run_query(engine, "best_batch_size", slo_ttft_p99_ms=30)) == 2  # m and other


def test_request_percentiles_match_the_run_summary(engine: sa.Engine, history: dict) -> None:
    run = history[4, 9]
    rows = queries.run_query(
        engine,
        "request_percentiles",
        model="m",
        fingerprint=run.fingerprint,
        since=run.started_at,
        until=run.finished_at,
    )
    [row] = rows
    assert (row["n_runs"], row["n_values"]) == (1, 4)
    assert (row["p50"], row["p90"], row["p99"]) == (
        run.metrics.ttft_p50_ms,
        run.metrics.ttft_p90_ms,
        run.metrics.ttft_p99_ms,
    )
    [itl] = queries.run_query(
        engine,
        "request_percentiles",
        model="m",
        metric="itl_ms",
        fingerprint=run.fingerprint,
        since=run.started_at.isoformat(),
        until=run.finished_at,
    )
    assert itl["n_values"] == 16
    assert (itl["p50"], itl["p90"], itl["p99"]) == pytest.approx(
        (run.metrics.itl_p50_ms, run.metrics.itl_p90_ms, run.metrics.itl_p99_ms), rel=1e-6
    )


def test_request_percentiles_over_a_window(engine: sa.Engine, history: dict) -> None:
    rows = queries.run_query(
        engine, "request_percentiles", model="m", since="2025-01-03", until="2025-01-06"
    )
    assert [r["n_runs"] for r in rows] == [3, 3, 3]  # nights 2, 3, 4
    for bs, row in zip(BATCH_SIZES, rows, strict=True):
        values = np.repeat([ttft(bs, n) for n in (2, 3, 4)], 4)
        assert (row["p50"], row["p90"], row["p99"]) == pytest.approx(
            tuple(np.percentile(values, [50, 90, 99]))
        )
        assert row["mean"] == pytest.approx(values.mean())
    everything = queries.run_query(engine, "request_percentiles", model="m", metric="e2e_ms")
    assert [r["n_runs"] for r in everything] == [NIGHTS] * 3


@pytest.mark.parametrize(
    ("name", "params"),
    [
        (
            "metric_series",
            {
                "model": "m",
                "metric": "ttft_p50_ms",
                "last": "3",
                "fingerprint": "",
                "device_model": "",
            },
        ),
        ("latest_vs_previous", {"model": "m", "metric": "ttft_p50_ms", "last": "5"}),
        (
            "campaign_vs_baseline",
            {"campaign": f.nightly(9).dag_run_id, "metric": "ttft_p50_ms", "last": "3"},
        ),
        ("best_batch_size", {"slo_ttft_p99_ms": "30", "model": "", "shape": ""}),
        ("latest_per_config", {"model": "m"}),
    ],
)
def test_queries_are_runnable_with_psql(
    engine: sa.Engine, history: dict, name: str, params: dict[str, str]
) -> None:
    """psql, given the header's variables, returns what run_query returns."""
    url = libpq_url(engine.url.render_as_string(hide_password=False))
    argv = [psql_binary(), url, "--csv", "-v", "ON_ERROR_STOP=1"]
    for var, value in params.items():
        argv += ["-v", f"{var}={value}"]
    argv += ["-f", str(REPO / f"sql/queries/{name}.sql")]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    from_psql = list(csv.DictReader(io.StringIO(out)))
    from_python = queries.run_query(engine, name, **params)
    assert from_psql and len(from_psql) == len(from_python)
    for text_row, row in zip(from_psql, from_python, strict=True):
        assert list(text_row) == list(row)
        for key, value in row.items():
            if isinstance(value, float):
                assert float(text_row[key]) == pytest.approx(value), (name, key)
            elif isinstance(value, str | int) and not isinstance(value, bool):
                assert text_row[key] == str(value), (name, key)


def test_the_shared_sql_pieces_as_psql_users_call_them(engine: sa.Engine, history: dict) -> None:
    """config_runs / config_baseline / v_latest_run (migrations 009, 014), as README shows them."""
    with engine.connect() as conn:
        config_id = conn.execute(
            sa.text("SELECT id FROM benchmark_config WHERE label = 'm/fp32/bs2'")
        ).scalar_one()
        key = {"c": config_id, "m": "Test CPU", "k": 2}  # store_factory's environment
        night7 = history[2, 7].started_at
        runs = conn.execute(
            sa.text("SELECT * FROM config_runs(:c, :m, :k, 'ttft_p50_ms', :t, 3)"),
            {**key, "t": night7},
        ).all()
        assert [r.value for r in runs] == [ttft(2, n) for n in (6, 5, 4)]  # newest first, before t
        base = conn.execute(
            sa.text("SELECT * FROM config_baseline(:c, :m, :k, 'ttft_p50_ms', :t, 3)"),
            {**key, "t": night7},
        ).one()
        assert (base.previous, base.median, base.n_baseline) == (ttft(2, 6), ttft(2, 5), 3)
        first = conn.execute(
            sa.text("SELECT * FROM config_baseline(:c, :m, :k, 'ttft_p50_ms', :t, 3)"),
            {**key, "t": history[2, 0].started_at},
        ).one()
        assert (first.previous, first.median, first.n_baseline) == (None, None, 0)
        latest = conn.execute(
            sa.text(
                "SELECT label, run_id, ttft_p99_ms FROM v_latest_run WHERE model = 'm' ORDER BY label"
            )
        ).all()
    assert [(r.label, r.ttft_p99_ms) for r in latest] == [
        (f"m/fp32/bs{bs}", ttft(bs, NIGHTS - 1)) for bs in BATCH_SIZES
    ]  # the oom configuration has no successful run


@pytest.mark.parametrize("name", ["campaign_vs_baseline", "latest_vs_previous"])
def test_the_shared_functions_are_inlined(engine: sa.Engine, history: dict, name: str) -> None:
    """config_runs / config_baseline (migration 009) cost what the subqueries
    written out by hand cost: the planner inlines them, so the plan holds index
    scans of run_config_ok_started_idx and no opaque Function Scan."""
    params = {"campaign": f.nightly(9).dag_run_id} if name == "campaign_vs_baseline" else {}
    with engine.connect() as conn:
        plan = "\n".join(
            conn.execute(
                sa.text("EXPLAIN " + queries.load_query(name)), queries.bind_params(name, **params)
            ).scalars()
        )
    assert "Function Scan" not in plan, plan
    assert "run_config_ok_started_idx" in plan, plan


def test_config_slos_come_from_the_newest_run(engine: sa.Engine, history: dict) -> None:
    assert queries.run_query(engine, "config_slos", model="m") == []  # no SLO set
    with_slo = f.config(model="m", batch_size=2, slo_ttft_ms=25.0)
    later = f.result(with_slo, campaign=f.nightly(NIGHTS), started_at=f.T0 + timedelta(days=NIGHTS))
    writer.load(engine, later)
    [row] = queries.run_query(engine, "config_slos", model="m")
    assert (row["label"], row["fingerprint"]) == ("m/fp32/bs2", later.fingerprint)
    assert (row["slo_ttft_ms"], row["slo_tpot_ms"]) == (25.0, None)


def test_every_query_header_matches_its_sql() -> None:
    assert {
        "best_batch_size",
        "campaign_vs_baseline",
        "latest_vs_previous",
        "metric_series",
        "request_percentiles",
    } <= set(queries.available())
    for name in queries.available():
        q = queries.query(name)
        assert q.question and q.columns and q.index and q.psql.startswith("psql ")
        declared = {p.name for p in q.params}
        binds = set(sa.text(queries.load_query(name)).compile().params)
        assert binds == declared, name
        psql_vars = set(re.findall(r"-v (\w+)=", q.psql)) - {"ON_ERROR_STOP"}
        assert psql_vars == declared, f"{name}: the psql example must set every parameter"


def test_parameters_are_validated_before_any_sql() -> None:
    with pytest.raises(ConfigError, match=r"^unknown metric 'ttft'; choose one of: n_requests, "):
        queries.bind_params("metric_series", model="m", metric="ttft")
    with pytest.raises(ConfigError, match="needs parameter model"):
        queries.bind_params("metric_series")
    with pytest.raises(ConfigError, match="has no parameter campaign"):
        queries.bind_params("metric_series", model="m", campaign="x")
    with pytest.raises(ConfigError, match="positive integer"):
        queries.bind_params("metric_series", model="m", last=0)
    with pytest.raises(ConfigError, match="ISO date"):
        queries.bind_params("request_percentiles", model="m", since="yesterday")
    with pytest.raises(ConfigError, match="unknown query 'nope'"):
        queries.load_query("nope")
    assert queries.bind_params("metric_series", model="m") == {
        "model": "m",
        "metric": "ttft_p50_ms",
        "last": 30,
        "fingerprint": "",
        "device_model": "",
    }


def test_hostile_values_are_data(engine: sa.Engine) -> None:
    name = "x'); DROP TABLE run; --"
    writer.load(engine, nightly_result(1, 0, model=name))
    [row] = queries.run_query(engine, "metric_series", model=name)
    assert row["value"] == ttft(1, 0)
    assert queries.run_query(engine, "metric_series", model="m'; --") == []


def test_run_metric_resolves_every_run_metric(engine: sa.Engine) -> None:
    """run_metric(s, name) (migration 008) covers every RunMetrics field, so a
    metric the CLI accepts is never silently NULL in a trend."""
    result = f.result(ttfts=(1.0, 2.0, 3.0, 4.0))
    run_id = writer.load_result(engine, result)
    expected = dataclasses.asdict(result.metrics)
    with engine.connect() as conn:
        for name in queries.RUN_METRICS:
            value = conn.execute(
                sa.text("SELECT run_metric(s, :name) FROM run_summary s WHERE run_id = :id"),
                {"name": name, "id": run_id},
            ).scalar_one()
            assert value == (None if expected[name] is None else pytest.approx(expected[name])), (
                name
            )
