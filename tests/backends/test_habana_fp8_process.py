"""fp8's two passes in two processes, as optimum-habana's reference runs them.

The benchmark task starts INC's measure pass (``bench fp8-measure``) as a
child of its own, waits for it, then starts the benchmark (the quantize pass)
in a fresh child. Stand-in children (no Gaudi here) log their process ids and
order; the measure stand-in writes statistics the quantize stand-in requires.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.backends.habana import fp8
from bench.core.config import RunConfig
from bench.core.prompts import load_prompt_set
from bench.core.results import CampaignRef
from bench.errors import ModelLoadError
from bench.orchestration.tasks import benchmark, child_env
from bench.runner import Plan
from tests.airflow.test_dag_run import rows
from tests.conftest import REPO

CHILD = """
import json, os, sys, time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, {repo!r})
log, stats = Path({log!r}), Path({stats!r})
command, args = sys.argv[1], sys.argv[2:]
config = json.loads(args[args.index("--config") + 1])
with log.open("a") as fh:
    fh.write(json.dumps({{"command": command, "pid": os.getpid(), "at": time.time(),
                         "precision": config["precision"],
                         "cards": os.environ.get("HABANA_VISIBLE_MODULES"),
                         "token": os.environ.get("HF_TOKEN") == "hf_secret"}}) + "\\n")
if command == "fp8-measure":
    if {fail!r}:
        print("bench: error: fp8 measurement of m failed: observers found no module")
        sys.exit(2)
    time.sleep(0.3)
    stats.mkdir(parents=True, exist_ok=True)
    (stats / "done-rank0.json").write_text("{{}}")
    sys.exit(0)
assert command == "run" and (stats / "done-rank0.json").is_file(), "quantize without statistics"
time.sleep(float(os.environ.get("STAND_IN_SLEEP_S", "0")))
from bench.core.config import RunConfig
from bench.core.results import CampaignRef, RunResult, write_jsonl
now = datetime.now(timezone.utc)
out = Path(args[args.index("--output") + 1])
result = RunResult(run_uid="u", config=RunConfig.from_mapping(config), fingerprint="f",
                   status="ok", started_at=now, finished_at=now,
                   campaign=CampaignRef(dag_run_id="manual__fp8"))
write_jsonl(result, out)
from bench.orchestration.child import OutcomeWriter
OutcomeWriter(Path(args[args.index("--outcome") + 1])).finished(
    result, result_path=out, recorded=True)
"""


def _item(precision: str) -> dict[str, Any]:
    config = RunConfig(model="m", device="hpu", backend="habana", precision=precision)
    plan = Plan(config, load_prompt_set("default"))
    return {
        "label": config.label,
        "config": config.to_dict(),
        "fingerprint": plan.fingerprint,
        "prompt_set": plan.prompt_set_json(),
        "world_size": 1,
    }


def _stand_in(tmp_path: Path, *, fail: bool = False) -> tuple[Any, Path, Path]:
    log, stats = tmp_path / "children.jsonl", tmp_path / "stats"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO), log=str(log), stats=str(stats), fail=fail))

    def launch(config: RunConfig, args: list[str], command: str = "run") -> list[str]:
        return [sys.executable, str(script), command, *args]

    return launch, log, stats


def _children(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_measure_then_quantize_in_two_fresh_processes(tmp_path: Path) -> None:
    launch, log, _ = _stand_in(tmp_path)
    lines: list[str] = []
    outcome = benchmark(
        _item("fp8"), campaign=CampaignRef(dag_run_id="manual__fp8"), db_url=None,
        timeout_s=120, log=lines.append, secrets={"HF_TOKEN": "hf_secret"}, launch=launch,
    )  # fmt: skip
    assert outcome.status == "ok", lines
    measure, run = _children(log)
    assert (measure["command"], run["command"]) == ("fp8-measure", "run")
    assert measure["pid"] != run["pid"] and run["at"] > measure["at"] + 0.3  # after it ended
    assert measure["precision"] == run["precision"] == "fp8"
    assert measure["token"] and run["token"]  # the secret reached both children
    assert any(line.startswith("$ bench fp8-measure m/fp8/bs1") for line in lines)
    assert not any("hf_secret" in line for line in lines)


def test_other_precisions_start_no_measure_child(tmp_path: Path) -> None:
    launch, log, stats = _stand_in(tmp_path)
    stats.mkdir()
    (stats / "done-rank0.json").write_text("{}")
    outcome = benchmark(
        _item("bf16"), campaign=CampaignRef(dag_run_id="manual__bf16"), db_url=None,
        timeout_s=120, log=lambda _: None, launch=launch,
    )  # fmt: skip
    assert outcome.status == "ok"
    assert [c["command"] for c in _children(log)] == ["run"]


@pytest.mark.slow
def test_a_failed_measurement_is_recorded_and_nothing_is_benchmarked(
    tmp_path: Path, db_url: str
) -> None:
    from bench.store.db import get_engine
    from bench.store.migrate import upgrade

    upgrade(get_engine(db_url))  # the DAG's plan task migrates before any benchmark runs
    launch, log, _ = _stand_in(tmp_path, fail=True)
    outcome = benchmark(
        _item("fp8"), campaign=CampaignRef(dag_run_id="manual__fp8bad"), db_url=db_url,
        timeout_s=120, log=lambda _: None, launch=launch,
    )  # fmt: skip
    assert outcome.status == "failed" and not outcome.retryable  # exit 2: deterministic
    assert (
        outcome.error == "fp8 measurement: fp8 measurement of m failed: observers found no module"
    )
    assert [c["command"] for c in _children(log)] == ["fp8-measure"]
    (run,) = rows(
        db_url,
        "SELECT r.status, r.error FROM run r JOIN campaign c ON c.id = r.campaign_id"
        " WHERE c.dag_run_id = 'manual__fp8bad'",
    )
    assert run == {"status": "failed", "error": outcome.error}


def test_the_backend_measures_in_a_child_and_reports_its_error(tmp_path: Path) -> None:
    config = RunConfig(model="m", device="hpu", backend="habana", precision="fp8")
    assert fp8.measure_command(config)[:4] == [sys.executable, "-m", "bench", "fp8-measure"]
    tp = config.replace(world_size=8, options={})
    assert fp8.measure_command(tp)[-4:-1] == ["bench", "fp8-measure", "--config"]
    marker = tmp_path / "measured"
    fp8.measure_in_child(config, [sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    assert marker.is_file()
    failing = [sys.executable, "-c", "import sys; print('bench: error: no card', file=sys.stderr); sys.exit(2)"]  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"^fp8 measurement failed in its own process: no card$"):  # fmt: skip
        fp8.measure_in_child(config, failing)


def test_secrets_travel_in_the_environment_only() -> None:
    env = child_env({"PATH": "/bin"}, db_url="postgresql://x", secrets={"HF_TOKEN": "t"})
    assert env == {
        "PATH": "/bin",
        "HF_TOKEN": "t",
        "BENCH_DB_URL": "postgresql://x",
    }


def test_tasks_running_at_once_get_cards_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker listing its cards (BENCH_HPU_MODULES) leases one per task."""
    import threading

    launch, log, stats = _stand_in(tmp_path)
    stats.mkdir()
    (stats / "done-rank0.json").write_text("{}")
    monkeypatch.setenv("BENCH_HPU_MODULES", "4-5")
    monkeypatch.setenv("STAND_IN_SLEEP_S", "1.5")  # both children run at the same time
    outcomes: list[Any] = []

    def task(n: int) -> None:
        campaign = CampaignRef(dag_run_id=f"manual__cards{n}")
        outcome = benchmark(
            _item("bf16"), campaign=campaign, db_url=None, timeout_s=120, log=lambda _: None,
            launch=launch,
        )  # fmt: skip
        outcomes.append(outcome)

    threads = [threading.Thread(target=task, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert sorted(c["cards"] for c in _children(log)) == ["4", "5"]


@pytest.mark.skipif(importlib.util.find_spec("habana_frameworks") is not None, reason="Gaudi")
def test_fp8_measure_without_the_gaudi_stack_is_one_line() -> None:
    from tests.core.test_cli_run import bench

    proc = bench("fp8-measure", "--model", "m")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: error: device hpu requested but habana_frameworks is not installed (Intel Gaudi "
        "software stack); see the 'Gaudi' section of README.md and docs/gaudi.md"
    ]
