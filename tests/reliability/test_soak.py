"""Matrix row 6, small: the soak of ``benchmarks/soak.py`` at 12 configurations.

The full soak (200 configurations at parallelism 4) is a benchmark script
that runs for an hour; this runs the same code on 12, through a real
scheduler (LocalExecutor, parallelism 4): every configuration has exactly
one run row, all ``ok``, the DAG run green, and the scheduler's memory was
sampled throughout. Flatness is judged on the full soak's figures
(docs/reliability.md): 12 configurations are too few for a trend.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]

CONFIGS = 12


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    return module


def test_every_configuration_of_a_small_soak_lands_once(
    smoke_home: Path, db_url: str, dags_copy: Path, tmp_path: Path
) -> None:
    soak = _soak().run_soak(
        dags_copy, tmp_path / "logs", configs=CONFIGS, parallelism=4, requests=2, tokens=2,
        timeout_s=600,
    )  # fmt: skip
    print("\n" + soak.report())
    assert soak.state == "success"
    assert (soak.rows, soak.distinct, soak.statuses) == (CONFIGS, CONFIGS, {"ok": CONFIGS})
    assert soak.complete
    scheduler = soak.memory["scheduler"].figures()
    assert len(soak.memory["scheduler"].samples) >= 3 and scheduler["peak_mib"] > 50
    assert 1 <= soak.workers <= 4  # LocalExecutor's workers, bounded by the parallelism
