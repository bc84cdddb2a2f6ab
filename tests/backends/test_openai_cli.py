"""``bench run --backend openai`` end to end against the scripted stub: the
printed/written numbers are the script's; the vLLM export and the results DB
carry the same run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.backends.openai.export_vllm import vllm_result
from bench.cli import main
from bench.core.results import read_jsonl
from tests.backends.openai_stub import (
    ITL_SLACK_MS,
    ONE_VALUE_SLACK_MS,
    SCRIPT,
    TTFT_SLACK_MS,
    run_stub,
    script_prompt,
)

RATE_LIMITED = [{"status": 429, "body": {"error": {"message": "slow down"}}}]


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with run_stub() as url:
        yield url


def _prompts(tmp_path: Path, n: int, *, failing: int = 0) -> Path:
    path = tmp_path / "scripted.txt"
    lines = [script_prompt(SCRIPT)] * n + [script_prompt(RATE_LIMITED)] * failing
    path.write_text("\n".join(lines) + "\n")
    return path


def _argv(stub: str, model: Path, prompts: Path, *extra: str) -> list[str]:
    return [
        "run", "--backend", "openai", "--base-url", f"{stub}/v1", "--model", str(model),
        "--concurrency", "4", "--prompts", str(prompts), "--device", "cpu",
        "--max-new-tokens", "3", "-q", *extra,
    ]  # fmt: skip


def test_cli_run_matches_the_script(
    stub: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    argv = _argv(
        stub,
        tiny_model,
        _prompts(tmp_path, 8),
        "--endpoint",
        "chat",
        "--no-db",
        "--output",
        str(out),
    )
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tiny-llama/unknown/c4  backend=openai" in printed  # no --precision: not guessed
    assert "requests: 8 (0 failed)  input tokens: 56  output tokens: 24" in printed
    result = read_jsonl(out)
    m = result.metrics
    assert result.ok and m is not None
    assert result.config.options["endpoint"] == "chat" and result.config.concurrency == 4
    assert m.ttft_p50_ms is not None and m.ttft_p99_ms is not None
    assert 100.0 <= m.ttft_p50_ms <= m.ttft_p99_ms <= 100.0 + TTFT_SLACK_MS
    assert m.itl_p50_ms == pytest.approx(30.0, abs=ITL_SLACK_MS)
    assert m.e2e_p50_ms is not None and 160.0 <= m.e2e_p50_ms <= 160.0 + TTFT_SLACK_MS
    assert m.duration_s == pytest.approx(0.32, abs=0.05)  # two waves of four 160 ms streams
    assert m.requests_per_s == pytest.approx(8 / m.duration_s)
    for r in result.requests:
        assert r.ttft_ms is not None and 100.0 <= r.ttft_ms <= 100.0 + TTFT_SLACK_MS
        assert r.itl_ms == pytest.approx([30.0, 30.0], abs=ONE_VALUE_SLACK_MS)


def test_cli_vllm_export(stub: str, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "vllm.json"
    argv = _argv(
        stub,
        tiny_model,
        _prompts(tmp_path, 6, failing=2),
        "--no-db",
        "--output",
        str(out),
        "--format",
        "vllm",
    )
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["backend"] == data["endpoint_type"] == "openai"
    assert data["model_id"] == str(tiny_model) and data["tokenizer_id"] == str(tiny_model)
    assert (data["request_rate"], data["burstiness"], data["max_concurrency"]) == ("inf", 1.0, 4)
    assert (data["num_prompts"], data["completed"], data["failed"]) == (8, 6, 2)
    assert data["total_output_tokens"] == 18 and data["total_input_tokens"] == 42
    assert data["errors"].count("HTTP 429: slow down") == 2 and data["errors"].count("") == 6
    ok = [i for i, e in enumerate(data["errors"]) if not e]
    for i in ok:  # seconds, as vLLM writes them
        assert 0.100 <= data["ttfts"][i] <= 0.100 + TTFT_SLACK_MS / 1e3
        assert data["itls"][i] == pytest.approx([0.030, 0.030], abs=ONE_VALUE_SLACK_MS / 1e3)
        assert data["output_lens"][i] == 3 and data["input_lens"][i] == 7
    for i in set(range(8)) - set(ok):
        assert (
            data["ttfts"][i],
            data["itls"][i],
            data["latencies"][i],
            data["output_lens"][i],
        ) == (0.0, [], 0.0, 0)
    for metric in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99"):
            assert isinstance(data[f"{stat}_{metric}_ms"], float), (stat, metric)
    assert data["median_ttft_ms"] == data["p50_ttft_ms"]
    assert data["request_throughput"] == pytest.approx(6 / data["duration"])
    assert data["output_throughput"] == pytest.approx(18 / data["duration"])
    assert data["total_token_throughput"] == pytest.approx(60 / data["duration"])
    assert data["llm_bench"]["status"] == "ok"


def test_vllm_export_equals_our_metrics(stub: str, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert (
        main(_argv(stub, tiny_model, _prompts(tmp_path, 4), "--no-db", "--output", str(out))) == 0
    )
    result = read_jsonl(out)
    m = result.metrics
    assert m is not None
    data = vllm_result(result)
    assert data["backend"] == "openai"
    assert data["mean_ttft_ms"] == m.ttft_mean_ms and data["p99_e2el_ms"] == m.e2e_p99_ms
    assert data["median_itl_ms"] == m.itl_p50_ms and data["p90_tpot_ms"] == m.tpot_p90_ms
    assert data["ttfts"] == [r.ttft_ms / 1e3 for r in result.requests if r.ttft_ms is not None]
    assert data["latencies"] == [r.e2e_ms / 1e3 for r in result.requests if r.e2e_ms is not None]
    ttfts = [r.ttft_ms for r in result.requests if r.ttft_ms is not None]
    mean = sum(ttfts) / len(ttfts)
    assert data["std_ttft_ms"] == pytest.approx(
        (sum((t - mean) ** 2 for t in ttfts) / len(ttfts)) ** 0.5
    )


def test_format_needs_output(
    stub: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(stub, tiny_model, _prompts(tmp_path, 1), "--no-db", "--format", "vllm")) == 2
    assert "--format applies to --output" in capsys.readouterr().err


def test_missing_base_url_is_a_one_line_error(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["run", "--backend", "openai", "--model", str(tiny_model), "--device", "cpu", "--no-db"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "bench: error: the openai backend needs base_url (--base-url http://host:8000/v1)"
    )


@pytest.mark.slow
def test_cli_run_is_stored(stub: str, tiny_model: Path, tmp_path: Path, db_url: str) -> None:
    import sqlalchemy as sa

    argv = _argv(
        stub, tiny_model, _prompts(tmp_path, 4), "--request-rate", "50", "--max-concurrency", "2"
    )
    argv.remove("--concurrency")
    argv.remove("4")
    assert main(argv) == 0
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT c.backend, c.precision, c.concurrency, c.request_rate, c.options,"
                    " s.n_requests, s.ttft_p50_ms"
                    " FROM run r JOIN benchmark_config c ON c.id = r.config_id"
                    " JOIN run_summary s ON s.run_id = r.id"
                )
            ).one()
            n_rows = conn.execute(sa.text("SELECT count(*) FROM request_result")).scalar_one()
    finally:
        engine.dispose()
    assert row.backend == "openai" and row.concurrency is None and row.request_rate == 50.0
    assert row.precision == "unknown" and row.options["endpoint"] == "completions"
    assert row.options["max_concurrency"] == 2 and row.options["base_url"] == f"{stub}/v1"
    assert row.n_requests == 4 and n_rows == 4
    assert 100.0 <= row.ttft_p50_ms <= 100.0 + TTFT_SLACK_MS
