"""Every campaign file parses into a DAG; a broken one becomes a named import error."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from bench.campaign import campaign_files
from tests.conftest import REPO


def test_no_import_errors_and_one_dag_per_campaign(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    stems = [p.stem for p in campaign_files(REPO / "dags" / "campaigns")]
    assert {"smoke", "nightly"} <= set(stems)
    assert sorted(dagbag.dag_ids) == sorted(f"llm_bench_{s}" for s in stems)
    for stem in stems:
        dag = dagbag.dags[f"llm_bench_{stem}"]
        assert dag.doc_md and dag.tags and dag.max_active_runs == 1


def test_dag_files_import_nothing_heavy(dagbag) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    code = (
        "import sys, runpy; runpy.run_path('dags/llm_bench.py');"
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'habana_frameworks', 'numpy', 'scipy', 'plotly') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_broken_campaign_is_an_import_error_naming_file_field_and_problem(dags_copy: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    broken = dags_copy / "campaigns" / "typo.yaml"
    smoke = yaml.safe_load((dags_copy / "campaigns" / "smoke.yaml").read_text())
    broken.write_text(yaml.safe_dump({**smoke, "precisions": ["bf16", "fp9"]}))
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(dags_copy))
    assert time.perf_counter() - started < 10
    # the good campaigns keep their DAGs...
    assert {"llm_bench_smoke", "llm_bench_nightly"} <= set(bag.dag_ids)
    assert "llm_bench_typo" not in bag.dag_ids
    # ...and the bad file is reported once, by the checker, with file, field and problem
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("llm_bench_campaign_check.py")
    assert str(broken) in message and "precisions" in message and "'fp9'" in message
