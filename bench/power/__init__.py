"""Power sampling: energy over the measured window, or None (never 0).

A sampler is started right before the measured window and stopped right
after it; ``stop()`` returns the energy in joules, or None when the device
offers no reading. Sources: NVML's energy counter on CUDA
(``bench.power.nvml``), HLML's on Gaudi (``bench.power.hlml``) with hl-smi
power samples as the fallback (``bench.backends.habana.hlsmi``); CPUs have
none here. Clocks, temperatures and throttling are ``bench.telemetry``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class PowerSampler(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float | None:
        """Energy in joules consumed since ``start()``, or None if unknown."""


def integrate_energy(
    samples: Sequence[tuple[float, float]], start: float, stop: float
) -> float | None:
    """Joules from ``(time_s, watts)`` samples over ``[start, stop]``.

    Trapezoids between samples; the power at the window's edges is linearly
    interpolated (or held from the nearest sample when the window extends
    beyond the trace). Needs at least one sample inside or around the window.
    """
    if stop <= start or not samples:
        return None
    import numpy as np

    pts = np.array(sorted(samples), dtype=np.float64)
    times, watts = pts[:, 0], pts[:, 1]
    inside = times[(times > start) & (times < stop)]
    grid = np.concatenate(([start], inside, [stop]))
    power = np.interp(grid, times, watts)  # holds the edge values beyond the trace
    return float(np.sum(np.diff(grid) * (power[1:] + power[:-1]) / 2))
