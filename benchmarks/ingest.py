"""Request rows per second into ``request_result``: the writer vs a row-by-row ORM.

Both run in one process against the same throwaway Postgres (an embedded
server in a temp dir unless ``--db-url`` names a server, where a scratch
database is created and dropped), one after the other, and the ratio is
printed:

* writer: ``bench.store.writer.load`` of whole runs (run row, binary COPY of
  the request rows, summary) in one transaction per run, as ``bench run``
  and ``bench db load`` do;
* baseline: a SQLAlchemy ORM class mapped onto the same table (declared
  here only) and ``session.add`` per request, one commit per run: the code
  one writes first.

Rows are realistic: ``--gaps`` inter-token gaps per request (``itl_ms``;
127 = 128 new tokens, 15 = 16), the bulk of a row's bytes, and, as ``bench
run`` keeps them, the generated token ids (``output_ids``, 4 bytes a token)
and their digest (``output_sha``); ``--no-ids`` loads the rows of ``bench
run --no-outputs`` (digest only). The ORM baseline writes the same columns.

Then the storage the outputs cost: ``request_result``'s size (heap, TOAST
and indexes, ``pg_total_relation_size``) grown by 1,000 requests of 128 and
2,048 tokens, with ids and digest against digest only. Usage::

    python benchmarks/ingest.py [--runs 8] [--requests 8000] [--gaps 127,15] [--baseline-rows 3000]
                                [--no-ids] [--storage-tokens 128,2048]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bench.core.config import RunConfig
from bench.core.metrics import summarize
from bench.core.records import RequestResult, output_digest, pack_token_ids
from bench.core.results import CampaignRef, RunResult
from bench.store import writer
from bench.store.db import display_url, start_embedded, stop_embedded
from bench.store.migrate import upgrade


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    """The baseline's ORM mapping of request_result (benchmark only: the
    schema's one definition is sql/migrations)."""

    __tablename__ = "request_result"
    run_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    request_index: Mapped[int] = mapped_column(primary_key=True)
    prompt_sha: Mapped[str]
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    ttft_ms: Mapped[float | None] = mapped_column(sa.Double)
    tpot_ms: Mapped[float | None] = mapped_column(sa.Double)
    e2e_ms: Mapped[float | None] = mapped_column(sa.Double)
    itl_ms: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    success: Mapped[bool]
    error: Mapped[str | None]
    output_sha: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    output_ids: Mapped[bytes | None] = mapped_column(sa.LargeBinary)


#: Token ids are drawn from a vocabulary this size (Llama 3's is 128,256).
VOCAB = 128_256


def synth_requests(
    n: int, gaps: int, seed: int = 0, *, ids: bool = True
) -> tuple[RequestResult, ...]:
    """``n`` requests of ``gaps + 1`` tokens; each keeps its ids unless ``ids`` is
    off (then only their digest, as with ``--no-outputs``)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        itl = tuple(8.0 + rng.random() * 4 for _ in range(gaps))
        ttft = 20.0 + rng.random() * 30
        tokens = tuple(rng.randrange(VOCAB) for _ in range(gaps + 1))
        out.append(
            RequestResult(
                request_index=i,
                prompt_sha=f"{rng.getrandbits(256):064x}",
                input_tokens=rng.randint(20, 400),
                output_tokens=gaps + 1,
                ttft_ms=ttft,
                tpot_ms=sum(itl) / gaps if gaps else None,
                e2e_ms=ttft + sum(itl),
                itl_ms=itl,
                output_sha=output_digest(tokens),
                output_token_ids=tokens if ids else None,
            )
        )
    return tuple(out)


def synth_result(
    requests: tuple[RequestResult, ...], batch_size: int, campaign: CampaignRef
) -> RunResult:
    config = RunConfig(
        model="ingest-bench", precision="bf16", batch_size=batch_size, device="cpu", backend="hf"
    )
    prompt_set = {
        "name": "synthetic",
        "sha": "0" * 64,
        "n_prompts": len(requests),
        "n_requests": len(requests),
    }
    started = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=batch_size)
    return RunResult(
        run_uid=uuid.uuid4().hex,
        config=config,
        fingerprint=config.fingerprint(prompt_set_sha="0" * 64, n_requests=len(requests)),
        status="ok",
        started_at=started,
        finished_at=started + timedelta(seconds=60),
        campaign=campaign,
        prompt_set=prompt_set,
        environment={"host": "bench", "device": "cpu", "packages": {}, "fingerprint": "e" * 64},
        metrics=summarize(requests, duration_s=60.0),
        requests=requests,
    )


@contextmanager
def scratch_database(db_url: str | None) -> Iterator[sa.Engine]:
    """A fresh database: on ``db_url``'s server, else on a temp embedded server."""
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        pgdata = Path(tmp) / "pgdata"
        server_url = db_url or start_embedded(pgdata)
        name = f"bench_perf_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(
            server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(server_url).set(database=name)
        engine = sa.create_engine(
            url, pool_size=1, max_overflow=0
        )  # one backend: its CPU time is measurable
        try:
            print(f"database: {display_url(url)}", file=sys.stderr)
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            if db_url is None:
                stop_embedded(pgdata)


class CpuClock:
    """Wall seconds plus CPU seconds of this process and of the one Postgres
    backend serving ``engine``: CPU time per row is what a busy neighbour on
    a shared machine disturbs least, wall time is what a user waits."""

    def __init__(self, engine: sa.Engine) -> None:
        with engine.connect() as conn:
            self._backend = psutil.Process(
                conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            )

    def now(self) -> tuple[float, float, float]:
        server = self._backend.cpu_times()
        return time.perf_counter(), time.process_time(), server.user + server.system


def time_writer(
    engine: sa.Engine, requests: tuple[RequestResult, ...], runs: int
) -> list[tuple[float, float, float]]:
    """(wall, client CPU, server CPU) seconds per run loaded (each a new config of one campaign)."""
    campaign = CampaignRef(
        dag_run_id=f"ingest__{uuid.uuid4().hex}", dag_id="ingest", trigger="manual"
    )
    results = [synth_result(requests, bs, campaign) for bs in range(1, runs + 2)]
    writer.load(engine, results[0])  # warm up: campaign/environment rows, connection, caches
    clock = CpuClock(engine)
    samples = []
    for result in results[1:]:
        start = clock.now()
        report = writer.load(engine, result)
        samples.append(tuple(b - a for a, b in zip(start, clock.now(), strict=True)))
        assert report.action == writer.INSERTED
    return samples  # type: ignore[return-value]


def time_orm(
    engine: sa.Engine, requests: tuple[RequestResult, ...], run_id: int
) -> tuple[float, float, float]:
    """(wall, client CPU, server CPU) seconds to insert ``requests`` with session.add per row, one commit."""
    clock = CpuClock(engine)
    start = clock.now()
    with Session(engine) as session:
        for r in requests:
            session.add(
                RequestRow(
                    run_id=run_id,
                    request_index=r.request_index,
                    prompt_sha=r.prompt_sha,
                    input_tokens=r.input_tokens,
                    output_tokens=r.output_tokens,
                    ttft_ms=r.ttft_ms,
                    tpot_ms=r.tpot_ms,
                    e2e_ms=r.e2e_ms,
                    itl_ms=list(r.itl_ms),
                    success=r.success,
                    error=r.error,
                    output_sha=None if r.output_sha is None else bytes.fromhex(r.output_sha),
                    output_ids=None
                    if r.output_token_ids is None
                    else pack_token_ids(r.output_token_ids),
                )
            )
        session.commit()
    return tuple(b - a for a, b in zip(start, clock.now(), strict=True))  # type: ignore[return-value]


def table_bytes(engine: sa.Engine) -> int:
    """``request_result`` on disk: heap, TOAST and indexes."""
    with engine.connect() as conn:
        return int(
            conn.execute(sa.text("SELECT pg_total_relation_size('request_result')")).scalar_one()
        )


def storage_growth(engine: sa.Engine, tokens: int, rows: int = 4000) -> tuple[float, float]:
    """Bytes ``request_result`` grows per ``rows`` requests of ``tokens`` tokens:
    (ids and digest kept, digest only). Each loads into a fresh campaign."""
    out = []
    for keep in (True, False):
        requests = synth_requests(rows, tokens - 1, seed=tokens, ids=keep)
        campaign = CampaignRef(f"storage__{uuid.uuid4().hex}", dag_id="ingest", trigger="manual")
        before = table_bytes(engine)
        writer.load(engine, synth_result(requests, 1000 + tokens + keep, campaign))
        with engine.connect() as conn:
            conn.execute(sa.text("CHECKPOINT"))
        out.append((table_bytes(engine) - before) * 1000 / rows)
    return out[0], out[1]


def per_row(samples: list[tuple[float, float, float]], rows: int) -> tuple[float, float, float]:
    """Median wall rows/s, and median client / server CPU microseconds per row."""
    wall, client, server = (statistics.median(s[i] for s in samples) for i in range(3))
    return rows / wall, client / rows * 1e6, server / rows * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=8, help="runs loaded by the writer per shape (default 8)"
    )
    parser.add_argument(
        "--requests", type=int, default=8000, help="requests per run (default 8000)"
    )
    parser.add_argument(
        "--gaps",
        default="127,15",
        help="row shapes: itl_ms entries per request, comma-separated (default 127,15)",
    )
    parser.add_argument(
        "--baseline-rows", type=int, default=3000, help="rows per ORM baseline round (default 3000)"
    )
    parser.add_argument(
        "--no-ids", action="store_true", help="rows without token ids (bench run --no-outputs)"
    )
    parser.add_argument(
        "--storage-tokens",
        default="128,2048",
        help="output lengths whose storage per 1,000 requests is measured (default 128,2048; "
        "'' = none)",
    )
    parser.add_argument(
        "--db-url", help="use a scratch database on this server instead of an embedded one"
    )
    args = parser.parse_args(argv)

    lines, storage = [], []
    with scratch_database(args.db_url) as engine:
        for tokens in (int(t) for t in args.storage_tokens.split(",") if t):
            kept, bare = storage_growth(engine, tokens)
            storage.append(
                f"{tokens:>8}  {kept / 1024:>9,.0f} KB  {bare / 1024:>9,.0f} KB"
                f"  {(kept - bare) / 1024:>6,.0f} KB  {(kept - bare) / 1000 / tokens:>5.2f} B"
            )
        for gaps in (int(g) for g in args.gaps.split(",")):
            requests = synth_requests(args.requests, gaps, ids=not args.no_ids)
            w_rate, w_client, w_server = per_row(
                time_writer(engine, requests, args.runs), args.requests
            )
            baseline = requests[: args.baseline_rows]
            orm = [time_orm(engine, baseline, run_id=-1 - i - 10 * gaps) for i in range(3)]
            o_rate, o_client, o_server = per_row(orm, len(baseline))
            lines.append(
                f"{gaps:>8}  {w_rate:>13,.0f}  {o_rate:>11,.0f}  {w_rate / o_rate:>6.1f}x"
                f"  {w_client:>8.1f} + {w_server:<6.1f}  {o_client:>8.1f} + {o_server:<6.1f}"
                f"  {(o_client + o_server) / (w_client + w_server):>6.1f}x"
            )
    print(
        f"request rows ({'digest only' if args.no_ids else 'with token ids and digest'}) into"
        f" request_result; medians: writer over {args.runs} runs of {args.requests} rows,"
    )
    print(f"ORM over 3 rounds of {args.baseline_rows} rows; same server, same process, one backend")
    print(f"{'':8}  {'wall-clock rows/s':^33}  {'CPU us per row (client + server)':^46}")
    print(
        f"{'itl gaps':>8}  {'writer (COPY)':>13}  {'ORM add/row':>11}  {'ratio':>7}"
        f"  {'writer':>17}  {'ORM':>17}  {'ratio':>7}"
    )
    print("\n".join(lines))
    if storage:
        print("\nrequest_result growth per 1,000 requests (heap + TOAST + indexes)")
        print(
            f"{'tokens':>8}  {'ids + digest':>12}  {'digest only':>12}  {'ids cost':>9}  per token"
        )
        print("\n".join(storage))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
