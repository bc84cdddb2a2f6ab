"""Trend-query latency as the history grows: 30, 120, then 365 nights.

Synthesizes a nightly campaign history in SQL (generate_series, so millions
of rows take seconds, not hours): ``--configs`` configurations (10 per
model), ``--requests`` request rows per run, one run per config per night,
about 1% of runs failed. After each stage it times every named query from
sql/queries/ through ``bench.store.queries.run_query`` (median of
``--repeat`` runs after a warm-up) and prints one column per stage. With the
indexes doing their job the columns stay about flat: a query's cost follows
the rows it returns, not the years stored.

``--baseline-queries DIR`` times, beside each shipped query, the file of the
same name in DIR (another version of it, e.g. ``git show REV:sql/queries/X.sql``
saved there) on the same database, the two alternating run by run, and
prints both and their ratio: whether a rewrite made a query slower.

Defaults (365 nights x 100 configs x 200 requests = 7.3M request rows) need
~2 GB of disk in a temp dir. Usage::

    python benchmarks/trend_queries.py [--nights 30,120,365] [--configs 100] [--requests 200]
        [--baseline-queries DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import scratch_database

from bench.store.queries import bind_params, load_query, parse_file

T0 = "2024-01-01 02:00:00+00"
PER_MODEL = 10  # 2 precisions x 5 batch sizes

SETUP_SQL = """
INSERT INTO environment (fingerprint, host, device, device_name, device_count, packages)
VALUES ('synthetic-env', 'gaudi-01', 'hpu', 'GAUDI2', 8, '{"optimum-habana": "1.21.2"}');

INSERT INTO benchmark_config (fingerprint, model, precision, batch_size, max_new_tokens, backend, device,
                              prompt_set_sha, n_requests, label, identity)
SELECT md5('config-' || c), 'model-' || (c / :per_model),
       CASE WHEN c % 2 = 0 THEN 'bf16' ELSE 'fp8' END,
       (2 ^ ((c % :per_model) / 2))::int, 128, 'habana', 'hpu', 'synthetic', :requests,
       'model-' || (c / :per_model) || '/' || CASE WHEN c % 2 = 0 THEN 'bf16' ELSE 'fp8' END
           || '/bs' || (2 ^ ((c % :per_model) / 2))::int,
       jsonb_build_object('c', c)
FROM generate_series(0, :configs - 1) AS c;
"""

STAGE_SQL = """
INSERT INTO campaign (dag_id, dag_run_id, trigger, started_at, finished_at)
SELECT 'llm_bench_nightly', 'scheduled__' || to_char(CAST(:t0 AS timestamptz) + n * interval '1 day',
       'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00', 'scheduled',
       CAST(:t0 AS timestamptz) + n * interval '1 day', CAST(:t0 AS timestamptz) + n * interval '1 day' + interval '3 hours'
FROM generate_series(:first, :last - 1) AS n;

INSERT INTO run (run_uid, campaign_id, config_id, environment_id, status, error, started_at, finished_at, config)
SELECT md5(c.id || '-' || bc.id), c.id, bc.id, e.id,
       CASE WHEN (c.id * 31 + bc.id) % 97 = 0 THEN 'oom' ELSE 'ok' END,
       CASE WHEN (c.id * 31 + bc.id) % 97 = 0 THEN 'OutOfMemoryError: synthetic' END,
       c.started_at + bc.id * interval '1 minute', c.started_at + bc.id * interval '1 minute' + interval '50 seconds',
       '{}'
FROM campaign c CROSS JOIN benchmark_config bc CROSS JOIN environment e
WHERE c.started_at >= CAST(:t0 AS timestamptz) + :first * interval '1 day';

INSERT INTO run_summary (run_id, n_requests, n_failed, input_tokens_total, output_tokens_total, duration_s,
    output_tokens_per_s, requests_per_s,
    ttft_mean_ms, ttft_p50_ms, ttft_p90_ms, ttft_p95_ms, ttft_p99_ms,
    tpot_mean_ms, tpot_p50_ms, tpot_p90_ms, tpot_p95_ms, tpot_p99_ms,
    itl_mean_ms, itl_p50_ms, itl_p90_ms, itl_p95_ms, itl_p99_ms,
    e2e_mean_ms, e2e_p50_ms, e2e_p90_ms, e2e_p95_ms, e2e_p99_ms, peak_memory_bytes)
SELECT r.id, :requests, 0, 100 * :requests, 128 * :requests, 50.0,
       x.tput, :requests / 50.0,
       x.ttft, x.ttft, x.ttft * 1.2, x.ttft * 1.3, x.ttft * 1.5,
       x.tpot, x.tpot, x.tpot * 1.1, x.tpot * 1.15, x.tpot * 1.3,
       x.tpot, x.tpot, x.tpot * 1.2, x.tpot * 1.3, x.tpot * 1.6,
       x.ttft + 127 * x.tpot, x.ttft + 127 * x.tpot, x.ttft + 140 * x.tpot, x.ttft + 150 * x.tpot, x.ttft + 170 * x.tpot,
       (bc.batch_size * 2)::bigint << 30
FROM run r
JOIN benchmark_config bc ON bc.id = r.config_id
CROSS JOIN LATERAL (
    SELECT 20 + bc.batch_size * 3 + random() * 2 AS ttft,
           8 + bc.batch_size * 0.1 + random() * 0.2 AS tpot,
           bc.batch_size * 100 * (0.95 + random() * 0.1) AS tput
) x
WHERE r.status = 'ok' AND r.started_at >= CAST(:t0 AS timestamptz) + :first * interval '1 day';

INSERT INTO request_result (run_id, request_index, prompt_sha, input_tokens, output_tokens,
                            ttft_ms, tpot_ms, e2e_ms, itl_ms)
SELECT r.id, i, lpad(to_hex(i), 64, '0'), 100, :gaps + 1,
       s.ttft_p50_ms * (0.8 + random() * 0.4), s.tpot_p50_ms, s.e2e_p50_ms,
       array_fill((s.tpot_p50_ms * (0.9 + random() * 0.2))::real, ARRAY[:gaps])
FROM run r
JOIN run_summary s ON s.run_id = r.id
CROSS JOIN generate_series(0, :requests - 1) AS i
WHERE r.started_at >= CAST(:t0 AS timestamptz) + :first * interval '1 day'
ORDER BY r.id, i;
"""


def execute_script(conn: sa.Connection, script: str, params: dict[str, Any]) -> None:
    for statement in (s.strip() for s in script.split(";\n")):
        if statement:
            conn.execute(sa.text(statement), params)


Call = Callable[[], list[dict[str, Any]]]


def timed(fns: Sequence[Call], repeat: int) -> tuple[list[float], int]:
    """Median milliseconds of ``repeat`` calls of each of ``fns`` after one
    warm-up each, the variants alternating call by call (so a busy neighbour
    slows them alike); rows returned by the first."""
    rows = fns[0]()
    for fn in fns[1:]:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, samples, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(s) for s in samples], len(rows)


def runner(engine: sa.Engine, sql: str, params: dict[str, Any]) -> Call:
    """A call of ``sql`` as ``run_query`` makes it (one connection checkout, rows as dicts)."""

    def call() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(sa.text(sql), params).mappings()]

    return call


def variants(
    engine: sa.Engine, name: str, params: dict[str, Any], baseline: Path | None
) -> list[Call]:
    """The shipped query, then (when ``baseline`` has one) its other version."""
    bound = bind_params(name, **params)
    calls = [runner(engine, load_query(name), bound)]
    if baseline is not None and (baseline / f"{name}.sql").is_file():
        calls.append(runner(engine, parse_file(baseline / f"{name}.sql").bind_sql, bound))
    return calls


def workload(engine: sa.Engine) -> dict[str, tuple[str, dict[str, Any]]]:
    """The questions asked of the history, as label -> (query name, parameters)."""
    with engine.connect() as conn:
        fingerprint = conn.execute(
            sa.text("SELECT fingerprint FROM benchmark_config ORDER BY id LIMIT 1")
        ).scalar_one()
        latest = conn.execute(
            sa.text("SELECT dag_run_id FROM campaign ORDER BY started_at DESC LIMIT 1")
        ).scalar_one()
        week = conn.execute(
            sa.text("SELECT max(started_at) - interval '7 days' FROM campaign")
        ).scalar_one()

    def q(name: str, **params: Any) -> tuple[str, dict[str, Any]]:
        return name, params

    return {
        "metric_series: one config, last 30 nights": q(
            "metric_series", model="model-0", fingerprint=fingerprint, last=30
        ),
        "metric_series: one model (10 configs), last 30": q(
            "metric_series", model="model-0", last=30
        ),
        "latest_vs_previous: one model, median of 7": q(
            "latest_vs_previous", model="model-0", last=7
        ),
        "latest_vs_previous: every config, median of 7": q("latest_vs_previous", last=7),
        "campaign_vs_baseline: latest night, median of 7": q(
            "campaign_vs_baseline", campaign=latest, last=7
        ),
        "campaign_vs_baseline: latest night, median of 30": q(
            "campaign_vs_baseline", campaign=latest, last=30
        ),
        "best_batch_size: every model": q("best_batch_size", slo_ttft_p99_ms=60),
        "latest_per_config: one model": q("latest_per_config", model="model-0"),
        "request_percentiles: one config, last 7 nights": q(
            "request_percentiles", model="model-0", fingerprint=fingerprint, since=week
        ),
        "request_percentiles: one model, last 7 nights": q(
            "request_percentiles", model="model-0", since=week
        ),
        "request_percentiles: one model, itl, last 7 nights": q(
            "request_percentiles", model="model-0", metric="itl_ms", since=week
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nights",
        default="30,120,365",
        help="history sizes to stop and measure at (default 30,120,365)",
    )
    parser.add_argument(
        "--configs", type=int, default=100, help="configurations, 10 per model (default 100)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="request rows per run (default 200)"
    )
    parser.add_argument(
        "--gaps", type=int, default=16, help="itl_ms entries per request row (default 16)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=7,
        help="timed runs per query; the median is shown (default 7)",
    )
    parser.add_argument(
        "--db-url", help="use a scratch database on this server instead of an embedded one"
    )
    parser.add_argument(
        "--baseline-queries",
        type=Path,
        metavar="DIR",
        help="also time DIR/<name>.sql beside each shipped query and print the ratio",
    )
    args = parser.parse_args(argv)
    stages = sorted({int(n) for n in args.nights.split(",")})
    params = {
        "t0": T0,
        "configs": args.configs,
        "per_model": PER_MODEL,
        "requests": args.requests,
        "gaps": args.gaps,
    }

    results: dict[str, list[list[float]]] = {}
    sizes = []
    with scratch_database(args.db_url) as engine:
        with engine.begin() as conn:
            execute_script(conn, SETUP_SQL, params)
        done = 0
        for nights in stages:
            t0 = time.perf_counter()
            with engine.begin() as conn:
                execute_script(conn, STAGE_SQL, {**params, "first": done, "last": nights})
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
                rows = conn.execute(sa.text("SELECT count(*) FROM request_result")).scalar_one()
                runs = conn.execute(sa.text("SELECT count(*) FROM run")).scalar_one()
            print(
                f"{nights} nights: {runs:,} runs, {rows:,} request rows (built in {time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            sizes.append((nights, rows))
            done = nights
            for label, (name, query_params) in workload(engine).items():
                calls = variants(engine, name, query_params, args.baseline_queries)
                ms, n = timed(calls, args.repeat)
                results.setdefault(label, []).append(ms)
                shown = " / ".join(f"{v:.1f}" for v in ms)
                print(f"  {label}: {shown} ms ({n} rows)", file=sys.stderr, flush=True)

    print_table(results, sizes, args)
    return 0


def print_table(
    results: dict[str, list[list[float]]], sizes: list[tuple[int, int]], args: argparse.Namespace
) -> None:
    """One column per stage; with a baseline, "now / before = ratio" in each cell."""
    width = max(len(k) for k in results)
    cell = 27 if args.baseline_queries else 13
    print(
        f"{args.configs} configs x {args.requests} requests per run; median of {args.repeat} runs, milliseconds"
        + (f"; cells: now / {args.baseline_queries} = ratio" if args.baseline_queries else "")
    )
    print(f"{'query':<{width}}" + "".join(f"{f'{n} nights':>{cell}}" for n, _ in sizes))
    print(
        f"{'(request rows)':<{width}}" + "".join(f"{f'{r / 1e6:.2f}M':>{cell}}" for _, r in sizes)
    )
    for label, stages in results.items():
        cells = [
            f"{v[0]:.1f} / {v[1]:.1f} = {v[0] / v[1]:.2f}x" if len(v) == 2 else f"{v[0]:.1f}"
            for v in stages
        ]
        print(f"{label:<{width}}" + "".join(f"{c:>{cell}}" for c in cells))


if __name__ == "__main__":
    raise SystemExit(main())
