"""`bench run` and `bench tiny-model` as a user runs them: real processes, real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.orchestration.child import PHASES
from tests.conftest import REPO


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_tiny_model_run_end_to_end(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    outcome = tmp_path / "outcome.json"
    proc = bench(
        "run",
        "--model",
        str(tiny_model),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "16",
        "--limit",
        "8",
        "--device",
        "cpu",
        "--no-db",
        "--output",
        str(out),
        "--outcome",
        str(outcome),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    requests, summary = rows[:-1], rows[-1]
    assert len(requests) == 8 and summary["kind"] == "summary"
    for i, row in enumerate(requests):
        assert row["request_index"] == i and row["output_tokens"] == 16
        assert row["input_tokens"] > 1 and len(row["itl_ms"]) == 15
        assert 0 < row["ttft_ms"] <= row["e2e_ms"]
        assert row["tpot_ms"] == pytest.approx((row["e2e_ms"] - row["ttft_ms"]) / 15)
    m = summary["metrics"]
    assert summary["status"] == "ok" and m["n_requests"] == 8 and m["output_tokens_total"] == 128
    assert m["ttft_p50_ms"] > 0 and m["output_tokens_per_s"] > 0 and m["peak_memory_bytes"] > 0
    assert m["energy_j_per_token"] is None  # no power source on CPU: null, never 0
    assert summary["config"]["precision"] == "bf16" and summary["config"]["device"] == "cpu"
    assert summary["environment"]["packages"]["transformers"]
    # the printed summary carries the same numbers
    assert f"{m['ttft_p50_ms']:.2f}" in proc.stdout and "ttft_ms" in proc.stdout
    assert "8/8 requests" in proc.stderr  # progress on a pipe: plain lines
    # what a parent process reads: the plan, every phase, the status, the same numbers
    report = json.loads(outcome.read_text())
    assert report["fingerprint"] == summary["fingerprint"] and report["status"] == "ok"
    assert report["prompt_set"] == summary["prompt_set"] and report["exit_code"] == 0
    assert tuple(report["phase_started"]) == PHASES
    assert report["metrics"] == m and report["result_path"] == str(out)
    assert report["recorded"] is False  # --no-db: nothing spooled


@pytest.mark.slow
def test_stop_at_eos_and_chat_template(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    proc = bench(
        "run",
        "--model",
        str(tiny_model),
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        "--stop-at-eos",
        "--option",
        "chat_template=true",
        "--no-db",
        "--output",
        str(out),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["config"]["ignore_eos"] is False
    assert summary["config"]["options"] == {"chat_template": True}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "fp64"], "invalid choice: 'fp64'"),
        (["--batch-size", "0"], "batch_size must be >= 1"),
        (["--batch-size", "-2"], "batch_size must be >= 1"),
        (["--precision", "fp8"], "fp8 is supported on hpu only"),
        (["--model", "/nonexistent/model"], "model directory /nonexistent/model does not exist"),
        (["--prompts", "EMPTY"], "holds no prompts"),
        (["--prompts", "LATIN1"], "is not UTF-8"),
        (["--max-new-tokens", "5000"], "exceeds the model's context of 2048 tokens"),
        (["--max-new-tokens", "100000"], "max_new_tokens must be <= 32768"),
        (["--warmup", "101"], "warmup must be <= 100"),
        (["--model-path", "${AWS_SECRET_ACCESS_KEY}"], "refers to ${AWS_SECRET_ACCESS_KEY}"),
        (["--option", "bogus=1"], "unknown hf option 'bogus'"),
        # a worker of the wrong pool: refused before the model loads (issue 14)
        (["--target", "gaudi9", "--device-model", "HL-999"], "target gaudi9 expects device model"),
    ],
)
def test_bad_input_one_line_error_no_output(
    tiny_model: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 au lait\n")
    args = [
        str(tmp_path / "empty.txt")
        if a == "EMPTY"
        else str(tmp_path / "latin1.txt")
        if a == "LATIN1"
        else a
        for a in args
    ]
    out = tmp_path / "out.jsonl"
    outcome = tmp_path / "outcome.json"
    base = [
        "run",
        "--model",
        str(tiny_model),
        "--device",
        "cpu",
        "--limit",
        "2",
        "--output",
        str(out),
        "--outcome",
        str(outcome),
    ]
    proc = bench(*base, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert not out.exists()
    if args[0] != "--precision" or args[1] != "fp64":  # argparse refuses before the run starts
        report = json.loads(outcome.read_text())
        assert report["status"] == "failed" and report["exit_code"] == 2
        assert lines[0] == f"bench: error: {report['error']}" and not report["recorded"]
    assert not (Path(os.environ["BENCH_HOME"]) / "spool").exists()


def test_tiny_model_refuses_to_overwrite_unrelated_content(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    proc = bench("tiny-model", str(tmp_path))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_run_flags_come_from_the_config_declarations() -> None:
    """Every RunConfig field has its flag, in its section's group, with the
    default and bounds (units included) in the help."""
    from bench.core.config import FIELDS

    proc = bench("run", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    for field in FIELDS:
        assert f"{field.flag} " in text, field.flag
    for group in ("model and device:", "load:", "goodput SLOs:", "openai backend", "results:"):
        assert group in text
    for help_text in (
        "--batch-size N sequences per generate() call (in-process backends) (default 1; 1 to 4096 sequences)",
        "--max-new-tokens N output tokens per request",
        "(default 128; 1 to 32768 tokens)",
        "--limit N measured requests per configuration; the set is cycled when shorter "
        "(default: the whole prompt set; at least 1)",
        "--slo-ttft-ms X a good request's time to first token is at most this (goodput) "
        "(default: none; above 0 ms)",
        "--stop-at-eos let each sequence end at its own EOS",
    ):
        assert help_text in text, help_text
