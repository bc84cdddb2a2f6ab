"""A background thread that polls a watts reading and integrates it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from bench.power import integrate_energy


class PollingSampler:
    """Calls ``read_watts()`` every ``interval_s`` on a daemon thread.

    Used where the device exposes instantaneous power only. The thread costs
    one wake-up per interval, far from the token-timing path.
    """

    def __init__(self, read_watts: Callable[[], float], interval_s: float = 0.05) -> None:
        self._read = read_watts
        self._interval = interval_s
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a failed reading leaves a gap, not a crash
                self._samples.append((time.perf_counter(), float(self._read())))
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._samples.clear()
        self._stop.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        t1 = time.perf_counter()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return integrate_energy(self._samples, self._t0, t1)
