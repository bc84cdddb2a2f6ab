"""The Habana bridge's environment is in place before its first import.

The bridge reads PT_HPU_LAZY_MODE, PT_HPUGRAPH_DISABLE_TENSOR_CACHE and
friends once, when ``habana_frameworks`` loads, and device detection is the
first thing that loads it. A stand-in ``habana_frameworks`` package (no card:
``is_available()`` is False) records the environment it was imported with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

STAND_IN = """
import json, os
with open(os.environ["HABANA_IMPORT_ENV"], "w") as fh:
    json.dump({k: v for k, v in os.environ.items() if k.startswith(("PT_HPU", "EXPERIMENTAL"))}, fh)
"""


def test_bridge_and_graph_defaults_are_set_before_device_detection(tmp_path: Path) -> None:
    hpu = tmp_path / "site" / "habana_frameworks" / "torch" / "hpu"
    hpu.mkdir(parents=True)
    (hpu.parent.parent / "__init__.py").write_text(STAND_IN)
    (hpu.parent / "__init__.py").write_text("")
    (hpu / "__init__.py").write_text("def is_available():\n    return False\n")
    seen = tmp_path / "env.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PT_HPU", "EXPERIMENTAL"))} | {
        "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}",
        "HABANA_IMPORT_ENV": str(seen),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--model", "m", "--device", "hpu",
         "--option", "limit_hpu_graphs=true", "--option", "bucket_size=128",
         "--option", "bucket_internal=true", "--no-db"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: error: device hpu requested but habana_frameworks is installed but no Gaudi "
        "card is visible; see the 'Gaudi' section of README.md and docs/gaudi.md"
    ]
    assert json.loads(seen.read_text()) == {
        "PT_HPU_LAZY_MODE": "1",
        "EXPERIMENTAL_WEIGHT_SHARING": "FALSE",
        # run_generation.py's rule for graphs + limit_hpu_graphs + bucket_internal
        "PT_HPUGRAPH_DISABLE_TENSOR_CACHE": "1",
    }
