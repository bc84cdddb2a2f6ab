"""HLML's energy counter and card mapping, against a stand-in ``pyhlml`` (no Gaudi here).

The stand-in behaves like the old pyhlml releases where it matters: every
handle lookup fills one shared ctypes object, so a caller that keeps handles
without copying them reads the last card for all of them.
"""

from __future__ import annotations

import ctypes
import sys
import types

import pytest

from bench.power.hlml import (
    HlmlEnergySampler,
    card_handles,
    hlml_energy_sampler,
    run_cards,
)
from bench.telemetry.hlml import HlmlSource


def stand_in(modules: list[int], energy_mj: dict[int, int]) -> types.ModuleType:
    """Cards by index, each with a module id and a cumulative energy counter (mJ)."""
    shared = ctypes.c_void_p()  # the old pyhlml bug: one object for every handle
    module = types.ModuleType("pyhlml")

    def handle(index: int) -> ctypes.c_void_p:
        shared.value = 1000 + index
        return shared

    def index_of(h: ctypes.c_void_p) -> int:
        return int(h.value or 0) - 1000

    module.hlmlInit = lambda: None  # type: ignore[attr-defined]
    module.hlmlDeviceGetCount = lambda: len(modules)  # type: ignore[attr-defined]
    module.hlmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    module.hlmlDeviceGetModuleID = lambda h: modules[index_of(h)]  # type: ignore[attr-defined]
    module.hlmlDeviceGetTotalEnergyConsumption = lambda h: energy_mj[index_of(h)]  # type: ignore[attr-defined]
    module.hlmlDeviceGetClockInfo = lambda h, t: 1800  # type: ignore[attr-defined]
    module.hlmlDeviceGetCurrentClocksThrottleReasons = lambda h: 2 if index_of(h) == 1 else 0  # type: ignore[attr-defined]
    return module


def test_cards_are_mapped_by_module_id_and_never_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    energy = {0: 0, 1: 0, 2: 0, 3: 0}
    pyhlml = stand_in([2, 3, 0, 1], energy)
    handles = card_handles(pyhlml)
    assert sorted(handles) == [0, 1, 2, 3]
    assert handles[2].value == 1000 and handles[1].value == 1003  # copies, not the shared object
    monkeypatch.setenv("HABANA_VISIBLE_MODULES", "3,1")
    assert [h.value for h in run_cards(pyhlml, world_size=2).values()] == [1003, 1001]  # type: ignore[union-attr]
    monkeypatch.delenv("HABANA_VISIBLE_MODULES")
    assert run_cards(pyhlml, world_size=2) is None  # 4 cards, 2 used, none named: unknowable
    assert run_cards(pyhlml, world_size=4) is not None


def test_energy_is_the_counter_difference_of_the_run_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    energy = {0: 5_000_000, 1: 7_000_000}
    pyhlml = stand_in([0, 1], energy)
    monkeypatch.setitem(sys.modules, "pyhlml", pyhlml)
    monkeypatch.setenv("HABANA_VISIBLE_MODULES", "1")
    sampler = hlml_energy_sampler(world_size=1)
    assert isinstance(sampler, HlmlEnergySampler)
    sampler.start()
    energy[0] += 999_000  # another job's card: not billed here
    energy[1] += 412_500  # 412.5 J on ours
    assert sampler.stop() == pytest.approx(412.5)


def test_no_pyhlml_means_the_hl_smi_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyhlml", None)  # not installed: import fails
    assert hlml_energy_sampler(world_size=1) is None


def test_hlml_source_reads_each_card(monkeypatch: pytest.MonkeyPatch) -> None:
    pyhlml = stand_in([0, 1], {0: 0, 1: 0})
    source = HlmlSource(pyhlml, card_handles(pyhlml).values())
    readings = list(source.read())
    assert [r.values["device_clock_mhz"] for r in readings] == [1800.0, 1800.0]
    assert [sorted(r.throttle) for r in readings] == [[], ["thermal"]]
