"""`bench db` and `bench trend` from the command line, and `bench run` end to end."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import store_factory as f
from store_helpers import count

from bench.cli import main
from bench.core.results import read_jsonl
from bench.paths import loaded_dir
from bench.store import writer


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_db_upgrade_and_status(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "db", "status")
    assert rc == 0 and "PENDING" in out and "pending: run `bench db upgrade`" in out
    rc, out, _ = run_cli(capsys, "db", "upgrade")
    assert rc == 0 and "applied 001_create_schema_migrations.sql" in out
    rc, out, _ = run_cli(capsys, "db", "upgrade")
    assert rc == 0 and "schema up to date" in out
    rc, out, _ = run_cli(capsys, "db", "status")
    assert (
        rc == 0 and "PENDING" not in out and "0 ok runs" in out and "spool:      0 result(s)" in out
    )


@pytest.fixture
def loaded(engine: sa.Engine) -> list:
    results = [
        f.result(
            f.config(batch_size=bs),
            ttfts=[10.0 * bs + night] * 4,
            campaign=f.nightly(night),
            started_at=f.T0 + timedelta(days=night, minutes=bs),
        )
        for night in range(3)
        for bs in (1, 2)
    ]
    for r in results:
        writer.load(engine, r)
    return results


def test_trend_table(loaded: list, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "trend", "--model", "tiny", "--last", "2")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == [
        "label",
        "fingerprint",
        "device_model",
        "cards",
        "run_id",
        "started_at",
        "dag_run_id",
        "value",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["tiny/fp32/bs1"] * 2 + ["tiny/fp32/bs2"] * 2
    assert [line.split()[-1] for line in lines[1:]] == ["11.000", "12.000", "21.000", "22.000"]
    assert "2025-01-03 02:01:00" in out


def test_trend_csv_and_json(loaded: list, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(
        capsys, "trend", "--model", "tiny", "--metric", "ttft_p99_ms", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and len(rows) == 6 and rows[0]["fingerprint"] == loaded[0].fingerprint
    assert float(rows[0]["value"]) == 10.0
    rc, out, _ = run_cli(
        capsys, "trend", "--query", "latest_vs_previous", "--model", "tiny", "--format", "json"
    )
    data = json.loads(out)
    assert rc == 0 and [(d["label"], d["latest"], d["previous"]) for d in data] == [
        ("tiny/fp32/bs1", 12.0, 11.0),
        ("tiny/fp32/bs2", 22.0, 21.0),
    ]
    assert data[0]["started_at"] == "2025-01-03T02:01:00+00:00"


def test_trend_other_queries(loaded: list, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(
        capsys, "trend", "--query", "best_batch_size", "--slo-ttft-p99-ms", "15", "--format", "csv"
    )
    (best,) = csv.DictReader(io.StringIO(out))
    assert rc == 0 and best["best_batch_size"] == "1"
    rc, out, _ = run_cli(
        capsys, "trend", "--query", "campaign_vs_baseline", "--campaign", f.nightly(2).dag_run_id
    )
    assert rc == 0 and len(out.splitlines()) == 3
    rc, out, _ = run_cli(
        capsys,
        "trend",
        "--query",
        "request_percentiles",
        "--model",
        "tiny",
        "--since",
        "2025-01-03",
        "--format",
        "csv",
    )
    first = next(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and (first["n_runs"], first["n_values"]) == ("1", "4")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model", "tiny", "--metric", "ttft_p50"],
            "unknown metric 'ttft_p50'; choose one of: n_requests,",
        ),
        (["--metric", "ttft_p50_ms"], "query metric_series needs --model"),
        (["--query", "best_batch_size"], "needs --slo-ttft-p99-ms"),
        (["--query", "campaign_vs_baseline", "--campaign", "c", "--model", "m"], "has no --model"),
        (["--query", "nope", "--model", "m"], "unknown query 'nope'"),
        (["--model", "m", "--last", "0"], "--last must be a positive integer"),
    ],
)
def test_trend_bad_input_is_one_line(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "BENCH_DB_URL", f"postgresql+psycopg2://u:p@/x?host={tmp_path}"
    )  # never reached
    rc, out, err = run_cli(capsys, "trend", *argv)
    assert rc == 2 and out == ""
    assert err.startswith("bench: error: ") and err.count("\n") == 1 and message in err


def test_trend_with_no_rows(engine: sa.Engine, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(capsys, "trend", "--model", "never-ran")
    assert rc == 0 and out == "" and "no successful run of model 'never-ran'" in err
    rc, out, _ = run_cli(capsys, "trend", "--model", "never-ran", "--format", "json")
    assert json.loads(out) == []


@pytest.mark.slow
def test_bench_run_then_trend_then_reload(
    tiny_model: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run_cli(
        capsys,
        "run",
        "--model",
        str(tiny_model),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--max-new-tokens",
        "4",
        "--limit",
        "4",
        "-q",
    )
    assert rc == 0, err
    assert "result stored in the results DB as run " in err
    [spooled] = loaded_dir().glob("*.jsonl")
    printed = read_jsonl(spooled).metrics
    assert f"{printed.ttft_p50_ms:9.2f}" in out  # what `bench run` printed is what was stored
    rc, out, _ = run_cli(capsys, "trend", "--model", str(tiny_model), "--format", "json")
    [row] = json.loads(out)
    assert rc == 0 and row["label"] == "tiny-llama/fp32/bs1" and row["value"] == printed.ttft_p50_ms
    rc, out, _ = run_cli(capsys, "trend", "--model", str(tiny_model))
    assert rc == 0 and out.splitlines()[1].startswith("tiny-llama/fp32/bs1")

    engine = sa.create_engine(db_url)
    before = [
        count(engine, f"SELECT count(*) FROM {t}")
        for t in ("run", "request_result", "run_summary", "campaign")
    ]
    assert before == [1, 4, 1, 1]
    rc, out, _ = run_cli(capsys, "db", "load", str(spooled))
    assert rc == 0 and "0 loaded, 1 unchanged" in out
    assert [
        count(engine, f"SELECT count(*) FROM {t}")
        for t in ("run", "request_result", "run_summary", "campaign")
    ] == before
    engine.dispose()
