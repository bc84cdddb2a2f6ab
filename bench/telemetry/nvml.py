"""NVIDIA telemetry through NVML (``nvidia-ml-py``, the ``cuda`` extra).

:func:`nvml_reading` turns one poll's raw NVML values into a
:class:`~bench.telemetry.Reading`; it is pure and tested on recorded values
(``tests/data/nvml/``). The clock-event mask names why clocks are below
their maximum; idle, application-clock settings, sync boost and display
clocks are not throttling and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench.telemetry import Reading

#: NVML clock-event (throttle) bits that mean the GPU ran slower than it could.
THROTTLE_BITS: Mapping[int, str] = {
    0x4: "power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "power_brake",
}
#: Raw NVML keys of one poll and the reading field each becomes (with its scale).
_FIELDS: Mapping[str, tuple[str, float]] = {
    "sm_clock_mhz": ("device_clock_mhz", 1.0),
    "temperature_c": ("device_temperature_c", 1.0),
    "power_mw": ("device_power_w", 1e-3),
    "utilization_pct": ("device_utilization_pct", 1.0),
}


def throttle_reasons(mask: int | None, bits: Mapping[int, str] = THROTTLE_BITS) -> frozenset[str]:
    if not mask:
        return frozenset()
    return frozenset(name for bit, name in bits.items() if mask & bit)


def nvml_reading(raw: Mapping[str, Any]) -> Reading:
    """One GPU's poll (``sm_clock_mhz``, ``temperature_c``, ``power_mw``,
    ``utilization_pct``, ``throttle_mask``; any may be missing) as a reading."""
    values = {
        name: float(raw[key]) * scale
        for key, (name, scale) in _FIELDS.items()
        if raw.get(key) is not None
    }
    return Reading(values, throttle_reasons(raw.get("throttle_mask")))


def _poll(pynvml: Any, handle: Any) -> dict[str, Any]:
    """Raw values; a query the GPU does not support is left out."""
    queries = {
        "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(
            handle, pynvml.NVML_TEMPERATURE_GPU
        ),
        "power_mw": lambda: pynvml.nvmlDeviceGetPowerUsage(handle),
        "utilization_pct": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "throttle_mask": lambda: _event_reasons(pynvml, handle),
    }
    raw: dict[str, Any] = {}
    for key, query in queries.items():
        try:
            raw[key] = query()
        except Exception:
            continue
    return raw


def _event_reasons(pynvml: Any, handle: Any) -> int:
    reader = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
        pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    return int(reader(handle))


class NvmlSource:
    name = "nvml"

    def __init__(self, pynvml: Any, handle: Any) -> None:
        self._nvml = pynvml
        self._handle = handle

    def read(self) -> Iterable[Reading]:
        return [nvml_reading(_poll(self._nvml, self._handle))]

    def close(self) -> None:
        pass


def nvml_source(cuda_index: int | None = None) -> NvmlSource | None:
    """The GPU this process uses (CUDA's current device), or None without NVML."""
    try:
        import pynvml

        from bench.power.nvml import nvml_handle

        pynvml.nvmlInit()
        if cuda_index is None:
            import torch

            cuda_index = torch.cuda.current_device()
        return NvmlSource(pynvml, nvml_handle(pynvml, cuda_index))
    except Exception:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.strip() or None


def nvml_firmware_version(cuda_index: int = 0) -> str | None:
    """The GPU's VBIOS version, or None without NVML."""
    try:
        import pynvml

        from bench.power.nvml import nvml_handle

        pynvml.nvmlInit()
        return _text(pynvml.nvmlDeviceGetVbiosVersion(nvml_handle(pynvml, cuda_index)))
    except Exception:
        return None
