"""``python -m bench.orchestration.pools`` (airflow-init): the pools campaigns
name exist before the first night, through the real ``airflow pools`` CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from bench.orchestration.pools import create_missing, main, needed_pools, run_airflow

pytestmark = pytest.mark.slow


def slots() -> dict[str, int]:
    rows = json.loads(run_airflow(["pools", "list", "--output", "json"]))
    return {row["pool"]: int(row["slots"]) for row in rows}


def test_missing_pools_are_created_and_an_operators_size_is_kept(
    dags_copy: Path,
    migrated_sqlite: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(migrated_sqlite, home / "airflow.db")
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    campaigns = dags_copy / "campaigns"
    fleet = yaml.safe_load((campaigns / "smoke.yaml").read_text())
    fleet["targets"] = [{"name": "a", "pool": "pool_a"}, {"name": "b"}]  # b: the campaign's pool
    (campaigns / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    (campaigns / "broken.yaml").write_text(yaml.safe_dump({**fleet, "precisions": ["fp9"]}))

    lines: list[str] = []
    needed = needed_pools(dags_copy, lines.append)
    assert needed == {
        "default_pool": (1, "fleet, smoke"),
        "pool_a": (1, "fleet"),
        "hpu": (8, "nightly"),  # its tensor-parallel model takes 8 cards in one task
    }
    assert [line.split(":")[0] for line in lines] == ["skipped broken.yaml"]

    assert create_missing(needed, run_airflow, lines.append) == ["hpu", "pool_a"]
    assert {k: v for k, v in slots().items() if k in needed} == {
        "default_pool": 128,
        "hpu": 8,
        "pool_a": 1,
    }
    assert "created pool pool_a with 1 slot(s)" in lines[-1]

    run_airflow(["pools", "set", "pool_a", "4", "two 2-card nodes"])
    assert main([str(dags_copy)]) == 0  # the next `up`: nothing to create
    assert "every pool the campaigns name exists" in capsys.readouterr().out
    assert slots()["pool_a"] == 4
