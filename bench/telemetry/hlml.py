"""Gaudi telemetry through HLML (``habana-pyhlml``): clock, temperature, power, utilization, throttling.

:func:`hlml_reading` turns one card's raw HLML values into a
:class:`~bench.telemetry.Reading`; it is pure and tested on recorded values
(``tests/data/hlml/``). HLML's clock-throttle mask has two reasons, power
and thermal. The cards are this run's (module ids, as for energy: see
:mod:`bench.power.hlml`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench.telemetry import Reading
from bench.telemetry.nvml import throttle_reasons

#: HLML_CLOCKS_THROTTLE_REASON_* bits.
THROTTLE_BITS: Mapping[int, str] = {0x1: "power", 0x2: "thermal"}
#: HLML_CLOCK_SOC and HLML_TEMPERATURE_ON_AIP.
CLOCK_SOC, TEMPERATURE_ON_AIP = 0, 0
_FIELDS: Mapping[str, tuple[str, float]] = {
    "soc_clock_mhz": ("device_clock_mhz", 1.0),
    "temperature_c": ("device_temperature_c", 1.0),
    "power_mw": ("device_power_w", 1e-3),
    "utilization_pct": ("device_utilization_pct", 1.0),
}


def hlml_reading(raw: Mapping[str, Any]) -> Reading:
    """One card's poll (``soc_clock_mhz``, ``temperature_c``, ``power_mw``,
    ``utilization_pct``, ``throttle_mask``; any may be missing) as a reading."""
    values = {
        name: float(raw[key]) * scale
        for key, (name, scale) in _FIELDS.items()
        if raw.get(key) is not None
    }
    return Reading(values, throttle_reasons(raw.get("throttle_mask"), THROTTLE_BITS))


def _utilization(pyhlml: Any, handle: Any) -> float:
    util = pyhlml.hlmlDeviceGetUtilizationRates(handle)
    return float(getattr(util, "aip", util))  # a struct in current pyhlml, an int in old ones


def _poll(pyhlml: Any, handle: Any) -> dict[str, Any]:
    queries = {
        "soc_clock_mhz": lambda: pyhlml.hlmlDeviceGetClockInfo(handle, CLOCK_SOC),
        "temperature_c": lambda: pyhlml.hlmlDeviceGetTemperature(handle, TEMPERATURE_ON_AIP),
        "power_mw": lambda: pyhlml.hlmlDeviceGetPowerUsage(handle),
        "utilization_pct": lambda: _utilization(pyhlml, handle),
        "throttle_mask": lambda: pyhlml.hlmlDeviceGetCurrentClocksThrottleReasons(handle),
    }
    raw: dict[str, Any] = {}
    for key, query in queries.items():
        try:
            raw[key] = query()
        except Exception:
            continue
    return raw


class HlmlSource:
    name = "hlml"

    def __init__(self, pyhlml: Any, handles: Iterable[Any]) -> None:
        self._hlml = pyhlml
        self._handles = list(handles)

    def read(self) -> Iterable[Reading]:
        return [hlml_reading(_poll(self._hlml, h)) for h in self._handles]

    def close(self) -> None:
        pass


def hlml_source(world_size: int) -> HlmlSource | None:
    """This run's cards, or None (no pyhlml or driver, or cards unknowable)."""
    from bench.power.hlml import init_hlml, run_cards

    pyhlml = init_hlml()
    if pyhlml is None:
        return None
    try:
        cards = run_cards(pyhlml, world_size)
    except Exception:
        return None
    return HlmlSource(pyhlml, cards.values()) if cards else None
