"""The layering of ``bench`` is a contract checked on every test run, not a
convention remembered: ``[tool.importlinter]`` in pyproject.toml declares it,
import-linter checks it (DAG files' parse-time lightness is checked at run
time in tests/airflow/test_dagbag.py, since a static graph cannot tell a
function-level import from a module-level one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_layering_contracts_hold() -> None:
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_a_violation_fails_the_check(tmp_path: Path) -> None:
    """The check is not vacuous: statistics that reach into the store break it."""
    shutil.copytree(
        REPO / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "bench" / "stats" / "leak.py").write_text("from bench.store.db import get_engine\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "stats is pure statistics: no store, no database driver BROKEN" in proc.stdout
    assert "bench.stats.leak -> bench.store.db" in proc.stdout
