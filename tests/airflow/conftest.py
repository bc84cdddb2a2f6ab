"""Airflow fixtures: a migrated metadata DB and a DagBag over this repo's dags/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.orchestration.airflow_env import TASK_LOG_LEVELS
from tests.conftest import REPO


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata DB migrated once per session; tests run on copies."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    return home / "airflow.db"


@dataclass
class DagTest:
    """The outcome of ``dag.test()`` run in a child process."""

    state: str
    run_id: str
    tis: list[dict[str, Any]]
    log: str

    def states(self, task_id: str) -> dict[str, str]:
        return {
            t["label"] or str(t["map_index"]): t["state"]
            for t in self.tis
            if t["task_id"] == task_id
        }


@pytest.fixture
def dag_test(migrated_sqlite: Path, tmp_path: Path) -> Callable[..., DagTest]:
    """``dag_test(dag_id, conf, dags_folder=REPO/dags)`` on a private metadata DB."""

    def run(
        dag_id: str, conf: dict[str, Any] | None = None, dags_folder: Path = REPO / "dags"
    ) -> DagTest:
        home = tmp_path / f"airflow-{dag_id}-{len(list(tmp_path.glob('airflow-*')))}"
        home.mkdir()
        shutil.copy(migrated_sqlite, home / "airflow.db")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": TASK_LOG_LEVELS,  # as make demo/airflow
        }
        proc = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).parent / "dag_test_runner.py"),
                str(dags_folder),
                dag_id,
                json.dumps(conf or {}),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            cwd=REPO,
        )
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-5000:]
        outcome = json.loads(proc.stdout.strip().splitlines()[-1])
        return DagTest(outcome["state"], outcome["run_id"], outcome["tis"], log)

    return run


@pytest.fixture(scope="session")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture
def smoke_home(bench_home: Path, tiny_model: Path) -> Path:
    """BENCH_HOME holding the tiny model where the smoke campaign expects it."""
    target = bench_home / "models" / "tiny-llama"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(tiny_model, target_is_directory=True)
    return bench_home


@pytest.fixture
def dags_copy(tmp_path: Path) -> Iterator[Path]:
    """A private copy of dags/ whose campaigns a test can edit."""
    folder = tmp_path / "dags"
    shutil.copytree(REPO / "dags", folder, ignore=shutil.ignore_patterns("__pycache__"))
    yield folder
