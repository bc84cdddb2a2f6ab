"""benchmarks/cuda_check.py and benchmarks/hpu_check.py, as far as they run here.

cuda_check runs for real on CPU (``--shape tiny --device cpu``: the smoke run
of the script the GPU machine runs). hpu_check cannot run without a Gaudi
card: what runs anywhere is tested (its arguments, its help text with the
first-card procedure, its refusal without the Gaudi stack, its verdict).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hpu_check_help_is_the_first_card_procedure() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "hpu_check.py"), "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0
    for step in (
        "First-card procedure",
        "--runtime=habana",
        "HABANA_VISIBLE_MODULES",
        "h.device_count()",
        "hpu_check.py --out",
        'section\n     "Measured on hardware"',
        "--quick",
        "--bench-run-model",
    ):
        assert step in proc.stdout, step


@pytest.mark.skipif(importlib.util.find_spec("habana_frameworks") is not None, reason="Gaudi")
def test_hpu_check_without_the_gaudi_stack_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "hpu_check.py"), "--quick"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "hpu_check: habana_frameworks is not installed: run it inside the Gaudi image "
        "(see --help and docs/gaudi.md)"
    ]


def test_hpu_check_arguments() -> None:
    hpu = _script("hpu_check")
    args = hpu.parse_args([])
    assert args.batches == [1, 8, 64] and args.input_tokens == args.output_tokens == 128
    assert args.variants == ["bare", "stream", "events", "dual"] and args.rounds == 3
    quick = hpu.parse_args(["--quick", "--budget-s", "2000"])
    assert quick.rounds == 1 and quick.budget_s == 420.0
    assert hpu.parse_args(["--quick", "--budget-s", "100"]).budget_s == 100.0
    with pytest.raises(SystemExit):
        hpu.parse_args(["--batches", "0"])


def _row(batch: int, stream_vs_bare: float | None) -> dict[str, object]:
    stream = {} if stream_vs_bare is None else {"vs_bare": stream_vs_bare}
    return {"batch": batch, "variants": {"bare": {"vs_bare": 1.0}, "stream": stream}}


def test_hpu_check_verdict_keeps_dual_unless_stream_is_within_two_percent() -> None:
    verdict = _script("hpu_check").stream_verdict
    assert verdict([_row(1, 1.01), _row(64, 1.015)]).startswith("stream within 2% of bare")
    keep = verdict([_row(1, 1.18), _row(64, 1.01)])
    assert "costs up to 18.0%" in keep and keep.endswith("keep dual as the HPU default")
    assert verdict([_row(1, None)]).startswith("no verdict")
    assert verdict([]).startswith("no verdict")


@pytest.mark.slow
def test_cuda_check_smoke_run_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cuda_check.py"), "--shape", "tiny",
         "--device", "cpu", "--batches", "1", "2", "--input-tokens", "8", "--output-tokens", "8",
         "--rounds", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == [] and [r["batch"] for r in report["rows"]] == [1, 2]
    for row in report["rows"]:
        assert set(row["variants"]) == {"bare", "stream", "dual"}  # cpu has no events
        assert all(v["rounds"] == 1 and v["error"] is None for v in row["variants"].values())
    cli = report["cli"]
    assert cli["stream"]["ok"] and cli["dual"]["ok"], cli
    assert cli["dual"]["config"]["timing"] == "dual"
    assert cli["dual"]["metrics"]["streamed_vs_bare_ratio"] > 0
    assert "events: skipped (cpu has no timing events)" in proc.stdout
