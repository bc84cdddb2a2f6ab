"""`bench run` asking for Gaudi on a machine without it: one line, exit 2,
nothing written (through the real CLI, in a child process)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("habana_frameworks") is not None,
    reason="this machine has the Gaudi stack",
)


def bench_run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "run", "--output", str(tmp_path / "out.jsonl"), *args],
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=120,
    )  # fmt: skip


def assert_one_line_and_nothing_written(
    proc: subprocess.CompletedProcess[str], tmp_path: Path, bench_home: Path
) -> str:
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()
    assert not bench_home.exists() or not any(bench_home.rglob("*"))  # no spool, no DB
    return lines[0]


def test_device_hpu_without_the_gaudi_stack(tmp_path: Path, bench_home: Path) -> None:
    proc = bench_run(
        "--model",
        "meta-llama/Llama-2-7b-hf",
        "--device",
        "hpu",
        "--backend",
        "habana",
        tmp_path=tmp_path,
    )
    line = assert_one_line_and_nothing_written(proc, tmp_path, bench_home)
    assert line.startswith(
        "bench: error: device hpu requested but habana_frameworks is not installed"
    )
    assert "'Gaudi' section of README.md" in line


def test_device_hpu_picks_the_habana_backend_and_says_what_is_missing(
    tmp_path: Path, bench_home: Path
) -> None:
    proc = bench_run("--model", "m", "--device", "hpu", tmp_path=tmp_path)
    line = assert_one_line_and_nothing_written(proc, tmp_path, bench_home)
    assert "device hpu requested but habana_frameworks is not installed" in line
    assert "'Gaudi' section of README.md" in line


def test_hpu_with_a_cpu_backend_names_the_right_one(tmp_path: Path, bench_home: Path) -> None:
    proc = bench_run("--model", "m", "--device", "hpu", "--backend", "hf", tmp_path=tmp_path)
    line = assert_one_line_and_nothing_written(proc, tmp_path, bench_home)
    assert "use --backend habana for hpu" in line


def test_habana_backend_on_auto_means_hpu(tmp_path: Path, bench_home: Path) -> None:
    proc = bench_run("--model", "m", "--backend", "habana", tmp_path=tmp_path)
    line = assert_one_line_and_nothing_written(proc, tmp_path, bench_home)
    assert "device hpu requested but habana_frameworks is not installed" in line
