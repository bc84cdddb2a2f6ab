"""What does Airflow add on top of running the configurations by hand?

Side by side in one run, on the same machine and state dir: the smoke
campaign through Airflow (``airflow dags test llm_bench_smoke``: plan,
mapped benchmark tasks, regressions, report) vs the same configurations
through ``bench run`` in a shell-style loop. Prints both wall times, the
ratio, and Airflow's overhead per configuration; then the DAG parse time
of every file in dags/.

    python benchmarks/orchestration.py [--rounds 2]

Targets: ratio <= 1.3x; parse time < 0.5 s per DAG file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def airflow_run(env: dict[str, str], conf: dict[str, object]) -> float:
    from bench.orchestration.airflow_env import airflow_bin

    t0 = time.perf_counter()
    subprocess.run(
        [airflow_bin(), "dags", "test", "llm_bench_smoke", "--conf", json.dumps(conf)],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def bench(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "bench", *args], env=env, check=True, capture_output=True)


def loop_run(env: dict[str, str], configs: list[dict[str, object]], *, gate: bool) -> float:
    """``bench run`` per config, as a shell loop would; with ``gate``, then the
    regression gate and the HTML report (the DAG's last two tasks) by hand."""
    t0 = time.perf_counter()
    campaign = f"manual__loop_{time.time_ns()}"
    for config in configs:
        bench(env, "run", "--config", json.dumps(config), "-q", "--campaign-run-id", campaign)
    if gate:
        bench(env, "regressions", "--detect", "--campaign", campaign)
        out = os.path.join(env["BENCH_HOME"], "loop.html")
        bench(env, "report", "--campaign", campaign, "--out", out)
    return time.perf_counter() - t0


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds of each (default 2)"
    )
    parser.add_argument(
        "--limit", type=int, help="requests per configuration (default: the campaign's 8)"
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    os.environ["BENCH_HOME"] = str(home)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from bench.campaign import load_campaign
    from bench.orchestration.airflow_env import airflow_environ, migrate
    from bench.paths import models_dir
    from bench.tinymodel import build_tiny_model

    build_tiny_model(models_dir() / "tiny-llama")
    env = airflow_environ()
    migrate(env)
    campaign = load_campaign(REPO / "dags" / "campaigns" / "smoke.yaml")
    conf: dict[str, object] = {"limit": args.limit} if args.limit else {}
    if conf:
        campaign = campaign.with_overrides(conf)
    configs = [c.to_dict() for c in campaign.configs()]

    timings: dict[str, list[float]] = {"airflow": [], "loop": [], "gate": []}
    for _ in range(args.rounds):
        timings["airflow"].append(airflow_run(env, conf))
        timings["loop"].append(loop_run(env, configs, gate=False))
        timings["gate"].append(loop_run(env, configs, gate=True))
    a, b, g = (statistics.median(timings[k]) for k in ("airflow", "loop", "gate"))
    n = len(configs)
    print(
        f"smoke campaign, {n} configurations x {campaign.limit} requests, {args.rounds} interleaved rounds (median)"
    )
    print(
        f"  through Airflow (airflow dags test: plan, {n} mapped tasks, gate, report)  {a:7.1f} s"
    )
    print(f"  bench run in a loop                                                  {b:7.1f} s")
    print(f"  bench run in a loop + bench regressions --detect + bench report       {g:7.1f} s")
    print(
        f"  ratio vs the loop {a / b:.2f}x (target <= 1.3x); Airflow adds {(a - b) / n:.1f} s per configuration"
    )
    print(
        f"  ratio vs the same work by hand {a / g:.2f}x; orchestration alone adds {(a - g) / n:.1f} s per configuration"
    )
    print("DAG parse time per file (target < 0.5 s):")
    for path, seconds in parse_times().items():
        print(f"  {Path(path).name:<32} {seconds:.3f} s")


if __name__ == "__main__":
    main()
