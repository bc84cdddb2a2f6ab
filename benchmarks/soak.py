"""Soak: many configurations through a real Airflow, every row present, memory flat.

Matrix row 6 of docs/reliability.md. One campaign of ``--configs``
configurations of the offline tiny Llama (``--configs / 4`` model entries x
fp32, bf16 x batch sizes 1, 2; ``--requests`` requests of ``--tokens``
tokens each, so a configuration is mostly a child loading the model) runs
through a standalone scheduler (LocalExecutor, ``[core] parallelism``
``--parallelism``). Meanwhile the resident memory of the scheduler, of its
LocalExecutor workers (summed), of its log server and of the
dag-processor is sampled every ``--sample-s`` seconds. At the end it checks
that the results DB holds exactly one run per configuration, all ``ok``,
and prints each component's RSS first (once the first result is stored:
every worker started), peak and last, so "flat" is a number, not a claim.

    python benchmarks/soak.py                  # 200 configurations, parallelism 4
    python benchmarks/soak.py --configs 12     # the small variant CI runs
                                               # (tests/reliability/test_soak.py)

Uses ``$BENCH_HOME`` (default: a temporary directory) for the tiny model,
the embedded Postgres (unless ``BENCH_DB_URL`` is set) and Airflow's home.
Exit status 0 only when every row is present and ok.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from anywhere: the script belongs to this checkout

from tests.airflow.cluster import Cluster, airflow_cluster  # noqa: E402

DAG = "llm_bench_soak"
PRECISIONS = ("fp32", "bf16")
BATCH_SIZES = (1, 2)
#: Configurations per model entry: precisions x batch sizes.
PER_MODEL = len(PRECISIONS) * len(BATCH_SIZES)
MIB = 2**20


def write_campaign(dags: Path, configs: int, *, requests: int, tokens: int) -> None:
    """dags/ with one campaign, ``soak``: the smoke campaign widened to
    ``configs`` configurations (the other campaigns removed: only this one parses)."""
    if configs <= 0 or configs % PER_MODEL:
        raise SystemExit(f"--configs must be a positive multiple of {PER_MODEL}, not {configs}")
    campaigns = dags / "campaigns"
    smoke = yaml.safe_load((campaigns / "smoke.yaml").read_text(encoding="utf-8"))
    model = smoke["models"][0]
    smoke.update(
        description=f"**Soak.** {configs} configurations of the tiny model (benchmarks/soak.py).",
        precisions=list(PRECISIONS),
        batch_sizes=list(BATCH_SIZES),
        limit=requests,
        max_new_tokens=tokens,
        warmup=0,
        models=[{**model, "name": f"tiny-{i:03d}"} for i in range(configs // PER_MODEL)],
    )
    for old in campaigns.glob("*.yaml"):
        old.unlink()
    (campaigns / "soak.yaml").write_text(yaml.safe_dump(smoke), encoding="utf-8")


@dataclass
class Memory:
    """RSS samples (bytes) of one component, taken while the campaign ran."""

    samples: list[int] = field(default_factory=list)
    #: Index of the first sample taken after the first result was stored.
    warm: int = 0

    def figures(self) -> dict[str, float]:
        """first (warm), peak, last and last - first, in MiB."""
        if not self.samples:
            return {}
        first, last = self.samples[min(self.warm, len(self.samples) - 1)], self.samples[-1]
        return {
            "first_mib": first / MIB,
            "peak_mib": max(self.samples) / MIB,
            "last_mib": last / MIB,
            "growth_mib": (last - first) / MIB,
        }


@dataclass
class Soak:
    configs: int
    parallelism: int
    wall_s: float
    state: str
    #: status -> run rows of the campaign; rows and distinct configurations.
    statuses: dict[str, int]
    rows: int
    distinct: int
    memory: dict[str, Memory]
    workers: int

    @property
    def complete(self) -> bool:
        return (
            self.state == "success"
            and self.rows == self.distinct == self.configs
            and self.statuses == {"ok": self.configs}
        )

    def report(self) -> str:
        lines = [
            f"soak: {self.configs} configurations at parallelism {self.parallelism}: "
            f"DAG run {self.state} in {self.wall_s:.0f} s "
            f"({self.configs / self.wall_s * 60:.1f} configurations/min)",
            f"rows: {self.rows}/{self.configs} present, {self.distinct} distinct configurations, "
            f"{self.rows - self.distinct} duplicated; statuses "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())),
            f"RSS in MiB ({len(self.memory['scheduler'].samples)} samples; first = once the "
            f"first result was stored; workers = {self.workers} LocalExecutor processes, summed):",
            f"  {'component':<14}{'first':>8}{'peak':>8}{'last':>8}{'last-first':>12}",
        ]
        for name, memory in self.memory.items():
            f = memory.figures()
            if f:
                lines.append(
                    f"  {name:<14}{f['first_mib']:>8.0f}{f['peak_mib']:>8.0f}"
                    f"{f['last_mib']:>8.0f}{f['growth_mib']:>+12.0f}"
                )
        lines.append("every row present and ok" if self.complete else "INCOMPLETE")
        return "\n".join(lines)


def _rss(pid: int) -> tuple[int, dict[str, list[int]]]:
    """RSS of ``pid`` and of its direct children by kind: ``workers`` (the
    LocalExecutor's, titled ``airflow worker -- LocalExecutor: ...``) and
    ``serve-logs`` (the scheduler's log server). 0 / {} when gone."""
    import psutil

    children: dict[str, list[int]] = {"workers": [], "serve-logs": []}
    try:
        proc = psutil.Process(pid)
        for child in proc.children(recursive=False):
            try:
                title = " ".join(child.cmdline())
                kind = "workers" if "LocalExecutor" in title else "serve-logs"
                children[kind].append(child.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return proc.memory_info().rss, children
    except psutil.NoSuchProcess:
        return 0, children


def _stored(db_url: str, run_id: str) -> tuple[dict[str, int], int, int]:
    """The campaign's run rows: per status, in all, distinct configurations."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.status, r.config_id FROM run r JOIN campaign c"
                    " ON c.id = r.campaign_id WHERE c.dag_run_id = :run_id"
                ),
                {"run_id": run_id},
            ).all()
    except sa.exc.ProgrammingError:  # before the first result created the tables
        return {}, 0, 0
    finally:
        engine.dispose()
    statuses: dict[str, int] = {}
    for status, _ in rows:
        statuses[status] = statuses.get(status, 0) + 1
    return statuses, len(rows), len({config for _, config in rows})


def _state(af: Cluster, run_id: str) -> str | None:
    quoted = urllib.parse.quote(run_id, safe="")
    try:
        return str(af.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{quoted}")["state"])
    except (TimeoutError, OSError):
        return None  # a busy api-server answers late: ask again at the next sample


def run_soak(
    dags: Path,
    logs: Path,
    *,
    configs: int,
    parallelism: int,
    requests: int,
    tokens: int,
    sample_s: float = 2.0,
    timeout_s: float = 7200.0,
    log: Any = print,
) -> Soak:
    """Run the soak campaign in ``dags`` (a copy of dags/ this rewrites) on a
    cluster of its own; the results DB is ``$BENCH_DB_URL`` or the embedded one."""
    write_campaign(dags, configs, requests=requests, tokens=tokens)
    env = {
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
    }
    memory = {name: Memory() for name in ("scheduler", "workers", "serve-logs", "dag-processor")}
    workers = 0
    with airflow_cluster(logs, dags_folder=dags, extra_env=env) as af:
        db_url = af.env["BENCH_DB_URL"]
        af.wait_for_dag(DAG)
        started = time.monotonic()
        run_id = af.trigger(DAG, {})
        state, stored, last_log = None, 0, 0.0
        while time.monotonic() - started < timeout_s:
            scheduler, children = _rss(af.procs["scheduler"].pid)
            processor, _ = _rss(af.procs["dag-processor"].pid)
            for name, value in (
                ("scheduler", scheduler),
                ("workers", sum(children["workers"])),
                ("serve-logs", sum(children["serve-logs"])),
                ("dag-processor", processor),
            ):
                memory[name].samples.append(value)
            workers = max(workers, len(children["workers"]))
            if not stored:
                stored = _stored(db_url, run_id)[1]
                for m in memory.values():
                    m.warm = len(m.samples) - 1
            state = _state(af, run_id)
            if state in ("success", "failed"):
                break
            af.check_alive()
            if time.monotonic() - last_log > 60:
                last_log = time.monotonic()
                log(
                    f"  {time.monotonic() - started:.0f} s: {_stored(db_url, run_id)[1]}/{configs}"
                    f" stored; scheduler {scheduler / MIB:.0f} MiB,"
                    f" workers {sum(children['workers']) / MIB:.0f} MiB"
                )
            time.sleep(sample_s)
        wall_s = time.monotonic() - started
        statuses, rows, distinct = _stored(db_url, run_id)
    return Soak(
        configs, parallelism, wall_s, state or "unknown", statuses, rows, distinct, memory, workers
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", type=int, default=200, help="configurations, a multiple of 4 (default 200)"
    )
    parser.add_argument(
        "--parallelism", type=int, default=4, help="Airflow's [core] parallelism (default 4)"
    )
    parser.add_argument(
        "--requests", type=int, default=2, help="requests per configuration (default 2)"
    )
    parser.add_argument("--tokens", type=int, default=2, help="tokens per request (default 2)")
    parser.add_argument(
        "--sample-s", type=float, default=2.0, help="seconds between RSS samples (default 2)"
    )
    parser.add_argument(
        "--timeout-s", type=float, default=7200.0, help="give up after S seconds (default 7200)"
    )
    args = parser.parse_args()

    from bench.paths import bench_home
    from bench.tinymodel import build_tiny_model

    temporary = None
    if not os.environ.get("BENCH_HOME"):
        temporary = tempfile.mkdtemp(prefix="bench-soak-")
        os.environ["BENCH_HOME"] = temporary
    home = bench_home()
    build_tiny_model(home / "models" / "tiny-llama")
    work = Path(tempfile.mkdtemp(prefix="soak-", dir=home))
    shutil.copytree(REPO / "dags", work / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        soak = run_soak(
            work / "dags",
            work / "logs",
            configs=args.configs,
            parallelism=args.parallelism,
            requests=args.requests,
            tokens=args.tokens,
            sample_s=args.sample_s,
            timeout_s=args.timeout_s,
        )
    finally:
        if temporary is not None and not os.environ.get("BENCH_DB_URL"):
            from bench.store.db import stop_embedded

            stop_embedded()
    print(soak.report())
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)
    return 0 if soak.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
