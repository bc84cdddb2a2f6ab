"""How a benchmark child process is started, and which rank records results.

One card: ``python -m bench run ...``. Several cards (tensor parallel,
``world_size > 1``): the DeepSpeed launcher starts one ``bench run`` per card,
as optimum-habana's ``gaudi_spawn.py --use_deepspeed`` does for
run_generation.py. Every rank loads its shard and runs the same
``generate()`` calls in lockstep; only rank 0 prints, writes and stores the
result (:func:`is_primary_rank`). ``bench fp8-measure`` (INC's measure pass,
its own process before the benchmark's) is launched the same way.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

from bench.core.config import RunConfig
from bench.errors import ConfigError


def free_port() -> int:
    """A TCP port free right now, for the ranks' rendezvous (MASTER_PORT).

    Concurrent tensor-parallel jobs on one node need different ports; the
    small window before DeepSpeed binds it is accepted.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(
    config: RunConfig,
    bench_run_args: list[str],
    *,
    master_port: int | None = None,
    command: str = "run",
) -> list[str]:
    """argv of the child process that runs ``bench <command> *bench_run_args``.

    ``bench_run_args`` must describe ``config`` (the caller renders it); the
    config decides the launcher. The DAG sets ``pool_slots = world_size``.
    """
    if config.world_size == 1:
        return [sys.executable, "-m", "bench", command, *bench_run_args]
    if config.backend != "habana":
        raise ConfigError(
            f"world_size {config.world_size} needs the habana backend, not {config.backend}"
        )
    port = master_port if master_port is not None else free_port()
    return [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_nodes",
        "1",
        "--num_gpus",
        str(config.world_size),
        "--no_local_rank",
        "--master_port",
        str(port),
        "--module",
        "bench",
        command,
        *bench_run_args,
    ]


def rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's global rank (RANK, set by the launcher); 0 when alone."""
    env = os.environ if environ is None else environ
    try:
        return int(env.get("RANK") or "0")
    except ValueError:
        return 0


def is_primary_rank(environ: Mapping[str, str] | None = None) -> bool:
    return rank(environ) == 0


def rendezvous_token(world_size: int, environ: Mapping[str, str] | None = None) -> str:
    """Same on every rank of one job, different between concurrent jobs on a
    node: the launcher's MASTER_PORT, or this pid when running alone."""
    env = os.environ if environ is None else environ
    if world_size > 1 and env.get("MASTER_PORT"):
        return f"p{env['MASTER_PORT']}"
    return f"pid{os.getpid()}"
