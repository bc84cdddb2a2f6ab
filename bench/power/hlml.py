"""Gaudi energy through HLML (``habana-pyhlml``, the ``hpu`` extra), hl-smi's library.

HLML is to Gaudi what NVML is to NVIDIA GPUs. Its cumulative energy counter
(``hlmlDeviceGetTotalEnergyConsumption``, millijoules since the driver
loaded) gives a window's energy exactly, as NVML's counter does on CUDA,
where integrating hl-smi's one-second power samples
(:mod:`bench.backends.habana.hlsmi`, the fallback) misses everything between
samples and the edges of a short window.

Cards are named by module id (what ``HABANA_VISIBLE_MODULES`` lists); HLML
enumerates them by index, so each index's module id is read to map one to
the other. Old pyhlml releases returned one shared ctypes handle from every
lookup; each handle is copied here so that several cards never alias.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from bench.power import PowerSampler

log = logging.getLogger(__name__)


def cards_in_use(
    environ: Mapping[str, str], visible: Sequence[int], world_size: int
) -> list[int] | None:
    """The cards (module ids) whose power belongs to this run, or None if unknowable.

    HABANA_VISIBLE_MODULES names them exactly. Without it, all visible cards
    count only when their number equals ``world_size``; otherwise other
    workloads may share the node and their power must not be billed here.
    """
    named = environ.get("HABANA_VISIBLE_MODULES", "").strip()
    if named:
        try:
            return sorted({int(x) for x in named.split(",") if x.strip()})
        except ValueError:
            return None
    if visible and len(visible) == world_size:
        return sorted(visible)
    return None


def _copy(handle: Any) -> Any:
    """A handle of its own (old pyhlml reused one ctypes object for every lookup)."""
    return ctypes.c_void_p(handle.value) if isinstance(handle, ctypes.c_void_p) else handle


def init_hlml() -> Any | None:
    """The initialised ``pyhlml`` module, or None (not installed, no driver)."""
    try:
        import pyhlml

        pyhlml.hlmlInit()
        return pyhlml
    except Exception:
        return None


def card_handles(pyhlml: Any) -> dict[int, Any]:
    """Module id -> device handle for every card HLML sees (index when the
    module id cannot be read)."""
    handles: dict[int, Any] = {}
    for index in range(int(pyhlml.hlmlDeviceGetCount())):
        handle = _copy(pyhlml.hlmlDeviceGetHandleByIndex(index))
        try:
            module = int(pyhlml.hlmlDeviceGetModuleID(handle))
        except Exception:
            module = index
        handles[module] = handle
    return handles


def run_cards(pyhlml: Any, world_size: int) -> dict[int, Any] | None:
    """The handles of the cards this run uses (see
    :func:`cards_in_use`), or None if unknowable."""

    handles = card_handles(pyhlml)
    wanted = cards_in_use(os.environ, sorted(handles), world_size)
    if wanted is None or any(card not in handles for card in wanted):
        return None
    return {card: handles[card] for card in wanted}


class HlmlEnergySampler:
    """Joules over the window from the cards' cumulative energy counters."""

    def __init__(self, pyhlml: Any, handles: Sequence[Any]) -> None:
        self._hlml = pyhlml
        self._handles = list(handles)
        self._start_mj = 0

    def _total_mj(self) -> int:
        return sum(int(self._hlml.hlmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles)

    def start(self) -> None:
        self._start_mj = self._total_mj()

    def stop(self) -> float | None:
        return (self._total_mj() - self._start_mj) / 1000.0


def hlml_energy_sampler(world_size: int) -> PowerSampler | None:
    """An energy-counter sampler for this run's cards, or None (then hl-smi)."""
    pyhlml = init_hlml()
    if pyhlml is None:
        return None
    try:
        cards = run_cards(pyhlml, world_size)
        if not cards:
            return None
        sampler = HlmlEnergySampler(pyhlml, list(cards.values()))
        sampler.start()  # proves every card has the counter
        return sampler
    except Exception as exc:
        log.info("HLML energy counter unavailable (%s); falling back to hl-smi", exc)
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text.strip() or None


def hlml_versions() -> tuple[str | None, str | None]:
    """(driver version, first card's firmware FIT version) from HLML, None where unknown."""
    pyhlml = init_hlml()
    if pyhlml is None:
        return None, None
    driver = firmware = None
    with contextlib.suppress(Exception):
        driver = _text(pyhlml.hlmlGetDriverVersion())
    with contextlib.suppress(Exception):
        handle = _copy(pyhlml.hlmlDeviceGetHandleByIndex(0))
        firmware = _text(pyhlml.hlmlDeviceGetFirmwareFITVersion(handle))
    return driver, firmware
