"""What does Airflow add on top of running the configurations by hand, and where do the seconds go?

Side by side in one run, on the same machine and state dir: the smoke
campaign through Airflow (``airflow dags test llm_bench_smoke``: plan,
mapped benchmark tasks, regressions, report; what ``make demo`` runs) vs
the same configurations through ``bench run`` in a shell-style loop, and
the loop followed by the same gate and report by hand. Prints wall and CPU
time of each (CPU time, summed over every process the run waited for, is
what a busy shared machine distorts least), the ratios, then where the
seconds of the median Airflow round went: the airflow CLI's start and DAG
sync, each task, the gaps between tasks, and inside each benchmark task
the child's phases (interpreter and bench imports, plan, model load with
its torch/transformers import, warmup, measure, store = spool + DB
connect/migrate/load), against the same phases of the loop's children.
Beside them, Airflow's floor: ``airflow dags test`` of a DAG of the same
shape whose tasks do nothing, so what Airflow costs any DAG (the CLI's start,
``dags test``'s in-process task runner, state updates, exit) is told apart
from what this project's tasks add. Last, the DAG parse time of every file in
dags/.

``--baseline DIR`` measures another checkout (say the commit before an
optimisation: ``git worktree add /tmp/base <commit>``) by the same
procedure, interleaved round by round with this one, and prints both:
before/after figures from one run.

    python benchmarks/orchestration.py [--rounds 3] [--limit N] [--gate] [--baseline DIR]

Targets: ratio vs the loop <= 1.3x at the shipped smoke settings (8
requests per configuration); parse time < 0.5 s per DAG file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "llm_bench_smoke"
#: The benchmark task's last line: "<label>: 12.3 s in the child: start-up 2.1 s, plan 0.0 s, ..."
_CHILD_LINE = re.compile(r"(\S+): ([\d.]+) s in the child: (.*?)(?: \[bench\].*)?$", re.M)
_SPAN = re.compile(r"(.+) ([\d.]+) s$")


@dataclass(frozen=True)
class Tree:
    """A checkout to measure: its code runs the children and its dags/ the DAG."""

    name: str
    root: Path

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        return {
            **base,
            "PYTHONPATH": str(self.root),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.root / "plugins"),
        }


@dataclass
class Round:
    """One timed run of one variant."""

    wall_s: float
    cpu_s: float
    #: Named spans in seconds (a breakdown of wall_s); lists summed per round.
    spans: dict[str, float] = field(default_factory=dict)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv``; wall seconds, CPU seconds of it and its waited-for children, output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout + proc.stderr


# -- through Airflow ------------------------------------------------------------------------


def task_spans(env: dict[str, str]) -> list[tuple[str, float, float]]:
    """(task, start, end) in epoch seconds of the newest run of the DAG, from
    Airflow's metadata DB, in start order."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as conn:
            run_id = conn.execute(
                sa.text(
                    "SELECT run_id FROM dag_run WHERE dag_id = :d ORDER BY start_date DESC LIMIT 1"
                ),
                {"d": DAG_ID},
            ).scalar_one()
            rows = conn.execute(
                sa.text(
                    "SELECT task_id, map_index, start_date, end_date FROM task_instance"
                    " WHERE dag_id = :d AND run_id = :r AND start_date IS NOT NULL"
                    " ORDER BY start_date"
                ),
                {"d": DAG_ID, "r": run_id},
            ).all()
    finally:
        engine.dispose()
    return [
        (r.task_id, r.start_date.timestamp(), r.end_date.timestamp())
        for r in rows
        if r.end_date is not None
    ]


def child_phases(output: str) -> list[dict[str, float]]:
    """Each benchmark task's child phases, from the line the task logs."""
    out = []
    for match in _CHILD_LINE.finditer(output):
        spans = {"child": float(match.group(2))}
        for part in match.group(3).split(", "):
            if span := _SPAN.match(part.strip()):
                spans[span.group(1)] = float(span.group(2))
        out.append(spans)
    return out


def airflow_round(env: dict[str, str], conf: dict[str, object]) -> Round:
    from bench.orchestration.airflow_env import airflow_bin

    started = time.time()
    wall, cpu, output = timed(
        [airflow_bin(), "dags", "test", DAG_ID, "--conf", json.dumps(conf)], env
    )
    ended = started + wall
    tasks = task_spans(env)
    spans: dict[str, float] = defaultdict(float)
    spans["airflow CLI start, DAG sync, run created"] = tasks[0][1] - started
    spans["exit after the last task"] = ended - max(end for _, _, end in tasks)
    previous_end = tasks[0][1]
    for task, start, end in tasks:
        spans["between tasks (dags test loop, state updates)"] += max(0.0, start - previous_end)
        previous_end = max(previous_end, end)
        if task != "benchmark":
            spans[f"task {task}"] += end - start
        else:
            spans["benchmark tasks (whole)"] += end - start
    children = child_phases(output)  # from checkouts whose tasks log them
    for child in children:
        for name, seconds in child.items():
            spans[f"  child {name}"] += seconds
    if children:
        spans["  parent side of the benchmark tasks"] = spans["benchmark tasks (whole)"] - sum(
            c["child"] for c in children
        )
    return Round(wall, cpu, dict(spans))


#: Airflow's own floor: a DAG of the smoke campaign's shape whose tasks do
#: nothing (plan -> N mapped tasks -> suspects -> detect -> report), timed the same way.
FLOOR_DAG = """
from datetime import datetime
from airflow.sdk import DAG, task
with DAG(dag_id="bench_floor", start_date=datetime(2025, 1, 1), schedule=None, catchup=False):
    @task
    def plan(): return list(range({n}))
    @task
    def benchmark(item): return item
    @task
    def suspects(): return []
    @task
    def detect_regressions(): return []
    @task
    def report(): return None
    benchmark.expand(item=plan()) >> suspects() >> detect_regressions() >> report()
"""


def floor_round(env: dict[str, str], folder: Path, n: int) -> Round:
    """``airflow dags test`` of :data:`FLOOR_DAG`: what any DAG of this shape
    costs through the same command (the CLI's start, its in-process task
    runner, state updates, exit), none of it this project's code."""
    from bench.orchestration.airflow_env import airflow_bin

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_floor.py").write_text(FLOOR_DAG.replace("{n}", str(n)), encoding="utf-8")
    floor_env = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    wall, cpu, _ = timed([airflow_bin(), "dags", "test", "bench_floor"], floor_env)
    return Round(wall, cpu)


# -- by hand --------------------------------------------------------------------------------


def bench(env: dict[str, str], *args: str) -> tuple[float, float]:
    wall, cpu, _ = timed([sys.executable, "-m", "bench", *args], env)
    return wall, cpu


def loop_round(
    env: dict[str, str], configs: list[dict[str, object]], *, gate: bool, phases: bool
) -> Round:
    """``bench run`` per config, as a shell loop would; with ``gate``, then the
    regression gate and the HTML report (the DAG's last two tasks) by hand.
    With ``phases`` the children also keep an outcome file (where the seconds went)."""
    from bench.orchestration.child import ChildRun, read_outcome
    from bench.orchestration.tasks import PHASE_NAMES

    campaign = f"manual__loop_{time.time_ns()}"
    spans: dict[str, float] = defaultdict(float)
    wall = cpu = 0.0
    outcome = Path(env["BENCH_HOME"]) / "loop.outcome.json"
    extra = ["--outcome", str(outcome)] if phases else []
    for config in configs:
        spawned = time.time()
        w, c = bench(
            env, "run", "--config", json.dumps(config), "-q", "--campaign-run-id", campaign, *extra
        )
        wall, cpu = wall + w, cpu + c
        report = read_outcome(outcome) if phases else None
        if report is not None:
            run = ChildRun(0, report, "", spawned, spawned + w)
            spans["  child"] += w
            for name, seconds in run.timings().items():
                spans[f"  child {PHASE_NAMES.get(name, name)}"] += seconds
    if gate:
        for name, args in (
            ("regressions --detect", ("regressions", "--detect", "--campaign", campaign)),
            ("report", ("report", "--campaign", campaign, "--out", str(Path(env["BENCH_HOME"]) / "loop.html"))),
        ):  # fmt: skip
            w, c = bench(env, *args)
            wall, cpu = wall + w, cpu + c
            spans[f"bench {name}"] += w
    return Round(wall, cpu, dict(spans))


def import_seconds(code: str, env: dict[str, str], n: int = 3) -> float:
    """Median wall seconds of ``python -c code`` (an import's cost, cold process)."""
    return statistics.median(timed([sys.executable, "-c", code], env)[0] for _ in range(n))


def parse_times() -> dict[str, float]:
    """Seconds to parse each DAG file (Airflow itself imported beforehand)."""
    code = (
        "import sys, time, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    t = time.perf_counter(); DagBag(dag_folder=path); out[path] = time.perf_counter() - t\n"
        "print(json.dumps(out))\n"
    )
    files = sorted(str(p) for p in (REPO / "dags").glob("*.py"))
    out = subprocess.run(
        [sys.executable, "-c", code, *files], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- report ---------------------------------------------------------------------------------


def median_spans(rounds: list[Round]) -> dict[str, float]:
    names = list(dict.fromkeys(n for r in rounds for n in r.spans))
    return {n: statistics.median(r.spans.get(n, 0.0) for r in rounds) for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of each (default 3)"
    )
    parser.add_argument(
        "--limit", type=int, help="requests per configuration (default: the campaign's 8)"
    )
    parser.add_argument(
        "--gate", action="store_true", help="also time the loop + bench regressions + bench report"
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="also measure this checkout, interleaved"
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    os.environ["BENCH_HOME"] = str(home)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        measure(args, home)
    finally:  # the embedded Postgres under this run's own BENCH_HOME: nobody else uses it
        from bench.store.db import stop_embedded

        stop_embedded()
        shutil.rmtree(home, ignore_errors=True)


def measure(args: argparse.Namespace, home: Path) -> None:
    """Every variant, interleaved round by round, then the tables."""
    from bench.campaign import load_campaign
    from bench.orchestration.airflow_env import airflow_environ, migrate
    from bench.paths import models_dir
    from bench.tinymodel import build_tiny_model

    build_tiny_model(models_dir() / "tiny-llama")
    base_env = airflow_environ()
    migrate(base_env)
    campaign = load_campaign(REPO / "dags" / "campaigns" / "smoke.yaml")
    conf: dict[str, object] = {"limit": args.limit} if args.limit else {}
    if conf:
        campaign = campaign.with_overrides(conf)
    configs = [c.to_dict() for c in campaign.configs()]
    trees = [Tree("this checkout", REPO)]
    if args.baseline:
        trees.insert(0, Tree(f"baseline {args.baseline}", args.baseline.resolve()))
    envs = {t.name: t.environ(base_env) for t in trees}
    # outcome files (the children's phases) where the checkout has them
    phases = {t.name: (t.root / "bench" / "orchestration" / "child.py").is_file() for t in trees}
    bench(envs[trees[-1].name], "run", "--config", json.dumps(configs[0]), "-q", "--no-db")

    variants = ("airflow", "floor", "loop", "gate") if args.gate else ("airflow", "floor", "loop")
    rounds: dict[tuple[str, str], list[Round]] = defaultdict(list)
    for _ in range(args.rounds):
        for variant in variants:  # interleaved: each tree's turn right after the other's
            for tree in trees:
                env = envs[tree.name]
                if variant == "airflow":
                    measured = airflow_round(env, conf)
                elif variant == "floor":
                    measured = floor_round(env, home / "floor-dags", len(configs))
                else:
                    measured = loop_round(
                        env, configs, gate=variant == "gate", phases=phases[tree.name]
                    )
                rounds[(tree.name, variant)].append(measured)

    n = len(configs)
    print(
        f"smoke campaign, {n} configurations x {campaign.limit} requests, "
        f"{args.rounds} interleaved rounds (median)"
    )
    for tree in trees:
        wall = {v: statistics.median(r.wall_s for r in rounds[(tree.name, v)]) for v in variants}
        cpu = {v: statistics.median(r.cpu_s for r in rounds[(tree.name, v)]) for v in variants}
        print(f"{tree.name}:{'wall':>58}{'CPU':>9}")
        print(f"  through Airflow (airflow dags test: plan, {n} mapped tasks, gate, report)"
              f"{wall['airflow']:6.1f} s{cpu['airflow']:7.1f} s")  # fmt: skip
        print(f"  bench run in a loop{'':<47}{wall['loop']:6.1f} s{cpu['loop']:7.1f} s")
        if args.gate:
            print(f"  the loop + bench regressions --detect + bench report{'':<14}"
                  f"{wall['gate']:6.1f} s{cpu['gate']:7.1f} s")  # fmt: skip
        print(
            f"  ratio vs the loop {wall['airflow'] / wall['loop']:.2f}x wall, "
            f"{cpu['airflow'] / cpu['loop']:.2f}x CPU (target <= 1.3x); Airflow adds "
            f"{(wall['airflow'] - wall['loop']) / n:.1f} s per configuration"
        )
        ours = wall["airflow"] - wall["floor"] - wall["loop"]
        print(
            f"  Airflow's floor (airflow dags test of a no-op DAG of this shape){'':<1}"
            f"{wall['floor']:6.1f} s{cpu['floor']:7.1f} s\n"
            f"  this project's share (through Airflow - floor - loop) {ours:.1f} s, "
            f"{ours / n:.1f} s per configuration; the loop + that share: "
            f"{(wall['loop'] + ours) / wall['loop']:.2f}x the loop"
        )

    print("\nwhere the seconds go (median of each span over the rounds; wall s):")
    columns = [(t.name, v) for t in trees for v in ("airflow", "loop")]  # (the floor: no spans)
    spans = {key: median_spans(rounds[key]) for key in columns}
    names = list(dict.fromkeys(n for key in columns for n in spans[key]))
    index = {t.name: i for i, t in enumerate(trees)}
    print(f"  {'':<50}" + "".join(f"{v if len(trees) == 1 else f'{v}/{index[t]}':>11}"
                                  for t, v in columns))  # fmt: skip
    for name in names:
        cells = "".join(
            f"{spans[key][name]:11.2f}" if name in spans[key] else f"{'':>11}" for key in columns
        )
        print(f"  {name:<50}{cells}")
    if len(trees) > 1:
        print("  (columns /0: " + trees[0].name + "; /1: " + trees[1].name + ")")
    env = envs[trees[-1].name]
    bare = import_seconds("pass", env)
    stack = import_seconds("import torch, transformers", env) - bare
    cli = import_seconds("import bench.cli.run", env) - bare
    print(
        f"  (a bare interpreter starts in {bare:.2f} s; importing bench's CLI costs {cli:.2f} s"
        f" of the child's start-up; torch + transformers {stack:.2f} s of its model load)"
    )

    print("\nDAG parse time per file (target < 0.5 s):")
    for path, seconds in parse_times().items():
        print(f"  {Path(path).name:<32} {seconds:.3f} s")


if __name__ == "__main__":
    main()
