"""NVIDIA power through NVML (``nvidia-ml-py``), for the CUDA device in use.

Prefers the driver's cumulative energy counter (Volta and newer: exact, no
sampling error); falls back to polling instantaneous power.
"""

from __future__ import annotations

import os
from typing import Any

from bench.power import PowerSampler
from bench.power.polling import PollingSampler


def nvml_handle(pynvml: Any, cuda_index: int) -> Any:
    """NVML numbers GPUs physically; CUDA_VISIBLE_DEVICES may renumber them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        entry = visible.split(",")[cuda_index].strip()
        if entry.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(entry))
        return pynvml.nvmlDeviceGetHandleByUUID(entry)
    return pynvml.nvmlDeviceGetHandleByIndex(cuda_index)


class NvmlEnergySampler:
    def __init__(self, pynvml: Any, handle: Any) -> None:
        self._nvml = pynvml
        self._handle = handle
        self._start_mj = 0

    def start(self) -> None:
        self._start_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)

    def stop(self) -> float | None:
        end_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        return (end_mj - self._start_mj) / 1000.0


def nvml_sampler(cuda_index: int = 0) -> PowerSampler | None:
    """A sampler for one CUDA device, or None when NVML is unavailable."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = nvml_handle(pynvml, cuda_index)
    except Exception:
        return None
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return NvmlEnergySampler(pynvml, handle)
    except Exception:
        pass
    try:
        pynvml.nvmlDeviceGetPowerUsage(handle)
    except Exception:
        return None
    return PollingSampler(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)


def nvml_driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None
