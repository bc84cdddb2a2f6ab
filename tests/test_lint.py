"""The code base stays lint-clean and type-checked (what `make lint` runs), in CI too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_ruff_check_and_format() -> None:
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [str(BIN / "ruff"), *args, "bench", "tests", "dags", "plugins", "benchmarks"],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_on_bench() -> None:
    proc = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
