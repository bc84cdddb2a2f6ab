"""Which process runs a config, and which rank records its result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.backends.habana.launch import (
    free_port,
    is_primary_rank,
    launch_command,
    rank,
    rendezvous_token,
)
from bench.core.config import RunConfig
from bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_one_card_runs_bench_in_a_plain_child() -> None:
    config = RunConfig(model="m", device="hpu", backend="habana")
    args = ["--config", '{"model": "m"}', "--quiet"]
    assert launch_command(config, args) == [sys.executable, "-m", "bench", "run", *args]


def test_cpu_configs_launch_the_same_way() -> None:
    config = RunConfig(model="m", device="cpu", backend="hf", precision="fp32")
    assert launch_command(config, ["--model", "m"]) == [
        sys.executable,
        "-m",
        "bench",
        "run",
        "--model",
        "m",
    ]


def test_eight_cards_use_the_deepspeed_launcher() -> None:
    config = RunConfig(model="llama-2-70b", device="hpu", backend="habana", world_size=8)
    args = ["--model", "llama-2-70b", "--world-size", "8"]
    assert launch_command(config, args, master_port=29611) == [
        sys.executable, "-m", "deepspeed.launcher.runner",
        "--num_nodes", "1", "--num_gpus", "8", "--no_local_rank", "--master_port", "29611",
        "--module", "bench", "run", *args,
    ]  # fmt: skip


def test_each_tensor_parallel_launch_gets_its_own_port() -> None:
    config = RunConfig(model="m", device="hpu", backend="habana", world_size=2)
    argv = launch_command(config, [])
    port = int(argv[argv.index("--master_port") + 1])
    assert 1024 <= port <= 65535
    assert 1024 <= free_port() <= 65535


def test_multi_card_needs_habana() -> None:
    with pytest.raises(ConfigError, match="world_size > 1"):
        RunConfig(model="m", device="cpu", backend="hf", world_size=2)


def test_rank_helpers() -> None:
    assert rank({}) == 0 and is_primary_rank({})
    assert rank({"RANK": "3"}) == 3 and not is_primary_rank({"RANK": "3"})
    assert is_primary_rank({"RANK": "0", "LOCAL_RANK": "0"})
    assert rendezvous_token(8, {"MASTER_PORT": "29611"}) == "p29611"
    assert rendezvous_token(1, {"MASTER_PORT": "29611"}) == f"pid{os.getpid()}"


@pytest.mark.slow
@pytest.mark.parametrize(("rank_env", "records"), [("1", False), ("0", True)])
def test_only_rank_zero_records(
    tiny_model: Path, tmp_path: Path, rank_env: str, records: bool
) -> None:
    """Every rank runs the benchmark; a peer prints and writes nothing."""
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "RANK": rank_env, "WORLD_SIZE": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--model", str(tiny_model), "--device", "cpu",
         "--precision", "fp32", "--limit", "2", "--max-new-tokens", "2", "--warmup", "0",
         "--output", str(out), "--no-db", "--quiet"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.exists() is records
    assert ("result written to" in proc.stdout) is records
