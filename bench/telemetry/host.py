"""The host's side of a run: CPU utilization, frequency, steal time, load, thermal throttling.

Steal time is what a hypervisor took from this VM (a noisy neighbour on a
cloud node); utilization and steal are read since the previous reading, so
each reading covers one interval. Thermal throttling is the growth of the
kernel's per-core ``thermal_throttle/core_throttle_count`` over the window
(Intel CPUs on bare metal; absent in most VMs, where nothing is claimed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bench.telemetry import Reading

THROTTLE_GLOB = "cpu[0-9]*/thermal_throttle/core_throttle_count"
CPU_SYSFS = Path("/sys/devices/system/cpu")


def throttle_count(root: Path = CPU_SYSFS) -> int | None:
    """Sum of every core's thermal-throttle events since boot; None where not exposed."""
    total, found = 0, False
    for path in root.glob(THROTTLE_GLOB):
        try:
            total += int(path.read_text().strip())
            found = True
        except (OSError, ValueError):
            continue
    return total if found else None


class HostSource:
    name = "host"

    def __init__(self, sysfs: Path = CPU_SYSFS) -> None:
        import psutil

        self._psutil = psutil
        self._sysfs = sysfs
        psutil.cpu_percent(interval=None)  # the first call only sets the reference point
        psutil.cpu_times_percent(interval=None)
        self._throttle_start = throttle_count(sysfs)

    def read(self) -> Iterable[Reading]:
        psutil = self._psutil
        values: dict[str, float] = {"cpu_utilization_pct": psutil.cpu_percent(interval=None)}
        times = psutil.cpu_times_percent(interval=None)
        if hasattr(times, "steal"):
            values["cpu_steal_pct"] = times.steal
        freq = psutil.cpu_freq()
        if freq is not None and freq.current > 0:
            values["cpu_frequency_mhz"] = freq.current
        if hasattr(os, "getloadavg"):
            values["load_1m"] = os.getloadavg()[0]
        throttle: frozenset[str] = frozenset()
        now = throttle_count(self._sysfs)
        if self._throttle_start is not None and now is not None and now > self._throttle_start:
            throttle = frozenset({"cpu_thermal"})
        return [Reading(values, throttle)]

    def close(self) -> None:
        pass


def host_source() -> HostSource | None:
    try:
        return HostSource()
    except Exception:  # psutil missing or broken on this platform: no host telemetry
        return None
