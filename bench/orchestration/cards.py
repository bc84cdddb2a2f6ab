"""Which Gaudi cards a benchmark task runs on: ``HABANA_VISIBLE_MODULES``.

A Gaudi worker owns every card of its node and runs several benchmark tasks
at once (the ``hpu`` pool caps them across the cluster, one slot per card).
With ``BENCH_HPU_MODULES`` set on the worker (``0-7``, or ``0,1,4``), each
task leases ``world_size`` of those cards for its children: an exclusive
``flock`` on ``$BENCH_HOME/cards/<module>.lock``, held while the children run
and dropped by the kernel if the worker dies. The children get
``HABANA_VISIBLE_MODULES`` set to the leased module ids, so they run on
exactly those cards and ``hl-smi`` energy is read from them
(:func:`bench.backends.habana.hlsmi.run_cards`). Without the variable nothing
is assigned and the cards are whatever the child sees.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from bench.errors import ConfigError, DeviceError

ENV = "BENCH_HPU_MODULES"


def parse_modules(text: str) -> list[int]:
    """``"0-3,6"`` -> ``[0, 1, 2, 3, 6]``; a malformed list is a one-line error."""
    found: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ConfigError(f"{ENV}={text!r}: expected module ids like 0-7 or 0,1,4") from None
        if first < 0 or last < first:
            raise ConfigError(f"{ENV}={text!r}: bad range {part!r}")
        found.update(range(first, last + 1))
    return sorted(found)


def _try_lock(path: Path) -> IO[bytes] | None:
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextmanager
def lease(
    count: int, modules: list[int], lock_dir: Path, *, wait_s: float = 300.0, poll_s: float = 0.5
) -> Iterator[list[int]]:
    """Hold ``count`` of ``modules`` exclusively for the ``with`` block.

    Waits up to ``wait_s`` for enough free cards (the pool should make that
    rare: a lease outlives its task only while the task is being torn down).
    """
    if count > len(modules):
        raise ConfigError(f"{count} cards wanted but {ENV} lists {len(modules)}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    with ExitStack() as held:
        taken: list[int] = []
        while True:
            for module in modules:
                if len(taken) == count:
                    break
                if module in taken:
                    continue
                handle = _try_lock(lock_dir / f"{module}.lock")
                if handle is not None:
                    held.callback(handle.close)  # closing the file drops the lock
                    taken.append(module)
            if len(taken) == count:
                break
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"no {count} free Gaudi card(s) among {ENV} {modules} after {wait_s:.0f} s"
                )
            time.sleep(poll_s)
        yield sorted(taken)


@contextmanager
def cards_for(
    device: str, world_size: int, environ: Mapping[str, str], lock_dir: Path
) -> Iterator[dict[str, str]]:
    """Environment for the task's children: ``HABANA_VISIBLE_MODULES`` when
    the worker lists its cards and the config runs on hpu, else nothing."""
    listed = environ.get(ENV, "").strip()
    if device != "hpu" or not listed:
        yield {}
        return
    with lease(world_size, parse_modules(listed), lock_dir) as modules:
        yield {"HABANA_VISIBLE_MODULES": ",".join(map(str, modules))}


def lock_dir_for(home: Path) -> Path:
    """One lock directory per node: ``$BENCH_HOME`` is per node (docs/gaudi.md)."""
    return home / "cards" / os.uname().nodename
