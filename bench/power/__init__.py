"""Power sampling: energy over the measured window, or None (never 0).

A sampler is started right before the measured window and stopped right
after it; ``stop()`` returns the energy in joules, or None when the device
offers no reading. Sources: NVML on CUDA (``bench.power.nvml``), hl-smi on
Gaudi (``bench.power.hlsmi``); CPUs have none here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class PowerSampler(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float | None:
        """Energy in joules consumed since ``start()``, or None if unknown."""


def integrate_energy(samples: Sequence[tuple[float, float]], start: float, stop: float) -> float | None:
    """Joules from ``(time_s, watts)`` samples over ``[start, stop]``.

    Trapezoids between samples; the power at the window's edges is linearly
    interpolated (or held from the nearest sample when the window extends
    beyond the trace). Needs at least one sample inside or around the window.
    """
    if stop <= start or not samples:
        return None
    pts = sorted(samples)

    def watts_at(t: float) -> float:
        if t <= pts[0][0]:
            return pts[0][1]
        if t >= pts[-1][0]:
            return pts[-1][1]
        for (t0, w0), (t1, w1) in zip(pts, pts[1:]):
            if t0 <= t <= t1:
                return w0 if t1 == t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)
        raise AssertionError("unreachable")

    inside = [(t, w) for t, w in pts if start < t < stop]
    trace = [(start, watts_at(start)), *inside, (stop, watts_at(stop))]
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(trace, trace[1:]))
