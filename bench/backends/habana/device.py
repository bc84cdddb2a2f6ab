"""The Gaudi card as a device: is one visible, and how much memory the run held.

Kept apart from :mod:`bench.backends.devices` so that device discovery can
ask about HPUs without importing the habana backend, and the habana backend
needs nothing from generic device code. Habana's bridge reads its settings
once, when ``habana_frameworks`` first loads: the env defaults are applied
before that import, here.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from typing import Any

from bench.backends.smi import DeviceFacts, clean, tool_output

GAUDI_DOCS = "see the 'Gaudi' section of README.md and docs/gaudi.md"


def hpu_available() -> tuple[bool, str]:
    """(available, reason-if-not) without raising."""
    if importlib.util.find_spec("habana_frameworks") is None:
        return False, "habana_frameworks is not installed (Intel Gaudi software stack)"
    apply_habana_env_defaults()
    try:
        import habana_frameworks.torch.hpu as hthpu

        if not hthpu.is_available() or hthpu.device_count() < 1:
            return False, "habana_frameworks is installed but no Gaudi card is visible"
    except Exception as exc:  # the driver stack can fail in many ways
        return False, f"habana_frameworks failed to initialise: {exc}".splitlines()[0]
    return True, ""


def apply_habana_env_defaults(options: Mapping[str, Any] | None = None) -> None:
    """The bridge reads its settings when habana_frameworks first loads: set
    the defaults (lazy mode as optimum-habana's examples run, and with a habana
    config's ``options`` the HPU-graph ones) before that. ``runner.prepare``
    calls this before device detection, the first Habana import."""
    from bench.backends.habana.options import bridge_env_defaults, graph_env_defaults

    os.environ.update(bridge_env_defaults(os.environ))
    if options is not None:
        os.environ.update(graph_env_defaults(options, os.environ))


def reset_hpu_peak_memory() -> None:
    """Start a fresh peak (``MaxInUse``) for the measured window."""
    import habana_frameworks.torch.hpu as hthpu

    hthpu.synchronize()
    hthpu.reset_peak_memory_stats()


def hpu_peak_memory_bytes() -> int | None:
    """Peak device memory held by tensors since the last reset (this process's card)."""
    import habana_frameworks.torch.hpu as hthpu

    hthpu.synchronize()
    stats = hthpu.memory_stats()
    peak = stats.get("MaxInUse") if isinstance(stats, dict) else None
    return int(peak) if peak is not None else int(hthpu.max_memory_allocated())


# -- card facts from hl-smi -q -------------------------------------------------------------

_HL_SMI_KEY = re.compile(r"^\s*([^:]+?)\s*:\s?(.*)$")


def parse_hl_smi_query(text: str) -> DeviceFacts:
    """``hl-smi -q``: ``Key : value`` lines, the driver once, then one block
    per card; the first card's product name and firmware (FIT) version."""
    driver = name = firmware = None
    cards = 0
    for line in text.splitlines():
        match = _HL_SMI_KEY.match(line)
        if not match:
            continue
        key, value = match.group(1).strip().lower(), clean(match.group(2))
        if key == "driver version":
            driver = driver or value
        elif key == "product name":
            cards += 1
            name = name or value
        elif key.startswith("firmware [fit] version"):
            firmware = firmware or value
    return DeviceFacts(name=name, driver_version=driver, firmware_version=firmware, count=cards)


def hl_smi_facts() -> DeviceFacts:
    out = tool_output(["hl-smi", "-q"], timeout_s=30.0)
    return parse_hl_smi_query(out) if out else DeviceFacts()


def gaudi_firmware_version() -> str | None:
    """The first card's firmware (FIT) version: HLML, else ``hl-smi -q``."""
    from bench.power.hlml import hlml_versions

    return hlml_versions()[1] or hl_smi_facts().firmware_version
