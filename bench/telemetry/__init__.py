"""Device and host telemetry over the measured window, summarised per run.

When a verdict says "12% slower", the next question is whether the card was
throttling or the host was busy. A :class:`TelemetrySampler` polls a few
sources on a daemon thread while the requests run (one reading at start and
at stop too, so even a one-second window has two) and keeps, per field, the
minimum, median and maximum, plus every throttle reason it saw:

* ``host`` (always; psutil): CPU utilization, frequency, steal time, load,
  and the kernel's thermal-throttle counters where the CPU exposes them;
* ``nvml`` on CUDA (nvidia-ml-py): SM clock, temperature, power, utilization,
  clock-throttle reasons;
* ``hlml`` on Gaudi (habana-pyhlml, the NVML of Gaudi): SoC clock,
  temperature, power, utilization, clock-throttle reasons.

Device fields share names across vendors (``device_clock_mhz`` ...), so a
report reads Gaudi and NVIDIA runs alike. The summary is stored in
``run.telemetry``; a run with any throttle reason is ``throttled``. The
thread wakes twice a second, far from the token-timing path, and a failed
reading leaves a gap, never an error.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Seconds between readings.
INTERVAL_S = 0.5


@dataclass(frozen=True)
class Reading:
    """One source's fields at one moment (one card, or the host)."""

    values: Mapping[str, float]
    throttle: frozenset[str] = field(default_factory=frozenset)


class Source(Protocol):
    name: str

    def read(self) -> Iterable[Reading]:
        """Readings now: one per card for a device, one for the host."""

    def close(self) -> None: ...


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def summarize(
    readings: Iterable[Reading], *, sources: Sequence[str], interval_s: float
) -> dict[str, Any] | None:
    """The stored summary: ``{"sources", "samples", "interval_s", "fields":
    {name: {"min", "median", "max"}}, "throttle_reasons", "throttled"}``;
    None when nothing was read."""
    per_field: dict[str, list[float]] = {}
    reasons: set[str] = set()
    samples = 0
    for reading in readings:
        samples += 1
        reasons |= reading.throttle
        for name, value in reading.values.items():
            per_field.setdefault(name, []).append(float(value))
    if not samples:
        return None
    return {
        "sources": list(sources),
        "samples": samples,
        "interval_s": interval_s,
        "fields": {
            name: {
                "min": round(min(v), 3),
                "median": round(_median(v), 3),
                "max": round(max(v), 3),
            }
            for name, v in sorted(per_field.items())
        },
        "throttle_reasons": sorted(reasons),
        "throttled": bool(reasons),
    }


class TelemetrySampler:
    """Reads ``sources`` every ``interval_s`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, sources: Sequence[Source], interval_s: float = INTERVAL_S) -> None:
        self.sources = list(sources)
        self.interval_s = interval_s
        self._readings: list[Reading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read_all(self) -> None:
        for source in self.sources:
            with contextlib.suppress(Exception):  # a failed reading leaves a gap
                self._readings.extend(source.read())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read_all()

    def start(self) -> None:
        self._readings.clear()
        self._stop.clear()
        self._read_all()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any] | None:
        """Stop the thread and return the summary (None when nothing was read)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._read_all()
        for source in self.sources:
            with contextlib.suppress(Exception):
                source.close()
        return summarize(
            self._readings, sources=[s.name for s in self.sources], interval_s=self.interval_s
        )


def telemetry_sampler(
    device: str, *, world_size: int = 1, remote: bool = False, interval_s: float = INTERVAL_S
) -> TelemetrySampler | None:
    """The sources for a run on ``device``: the host always, plus NVML on
    cuda or HLML on hpu when their bindings and a driver are present.

    ``remote`` (an HTTP backend) samples the host only: the cards serving
    the requests are not this process's. Tensor-parallel peers other than
    rank 0 sample nothing (rank 0 reports for the job). None when no source
    is available.
    """
    if (os.environ.get("RANK") or "0") != "0":
        return None
    from bench.telemetry.host import host_source

    sources: list[Source] = []
    host = host_source()
    if host is not None:
        sources.append(host)
    if not remote and device == "cuda":
        from bench.telemetry.nvml import nvml_source

        if (gpu := nvml_source()) is not None:
            sources.append(gpu)
    elif not remote and device == "hpu":
        from bench.telemetry.hlml import hlml_source

        if (card := hlml_source(world_size)) is not None:
            sources.append(card)
    return TelemetrySampler(sources, interval_s) if sources else None


def throttle_mark(telemetry: Mapping[str, Any] | None) -> str:
    """``"throttled (hw_thermal, power_cap)"`` for a throttled run, else ``""``."""
    if not telemetry or not telemetry.get("throttled"):
        return ""
    reasons = telemetry.get("throttle_reasons") or []
    return "throttled" + (f" ({', '.join(reasons)})" if reasons else "")


__all__ = [
    "INTERVAL_S",
    "Reading",
    "Source",
    "TelemetrySampler",
    "summarize",
    "telemetry_sampler",
    "throttle_mark",
]
