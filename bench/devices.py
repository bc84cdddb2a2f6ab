"""Device discovery, per-device memory accounting, driver and firmware facts.

``auto`` means hpu when habana_frameworks imports and a card is visible,
else cuda when torch sees a GPU, else cpu. Asking for a device that is not
there is a one-line :class:`DeviceError` naming what is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.errors import DeviceError

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


def apply_habana_env_defaults() -> None:
    """The bridge reads its mode when habana_frameworks first loads: set the
    defaults (lazy mode, as optimum-habana's examples run) before that."""
    from bench.backends.habana.options import bridge_env_defaults

    os.environ.update(bridge_env_defaults(os.environ))


def cuda_available() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return False, f"torch {torch.__version__} ({build}) sees no CUDA device"
    return True, ""


def resolve_device(device: str) -> str:
    """Turn ``auto`` into a concrete device and check that a named one exists."""
    if device == "auto":
        if hpu_available()[0]:
            return "hpu"
        if cuda_available()[0]:
            return "cuda"
        return "cpu"
    if device == "hpu":
        ok, why = hpu_available()
        if not ok:
            raise DeviceError(f"device hpu requested but {why}; {GAUDI_DOCS}")
    elif device == "cuda":
        ok, why = cuda_available()
        if not ok:
            raise DeviceError(f"device cuda requested but {why}")
    elif device != "cpu":
        raise DeviceError(f"unknown device {device!r}")
    return device


# -- HPU peak memory ----------------------------------------------------------------------


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


# -- host (CPU) peak memory --------------------------------------------------------------

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_host_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the measured window's peak
    excludes model loading. Linux only; returns False where unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def host_peak_rss_bytes() -> int:
    """Peak resident set size of this process since the last reset."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def cpu_name() -> str:
    name = _cpuinfo("model name")
    if name:
        return name
    import platform

    return platform.processor() or platform.machine()


def cpu_microcode() -> str | None:
    """The CPU's microcode revision (Linux): firmware that changes speed too."""
    return _cpuinfo("microcode")


# -- driver and firmware from the vendors' tools ----------------------------------------
#
# NVML and HLML answer these when their Python bindings are installed
# (bench.telemetry); the command-line tools are the fallback. Parsers are
# pure functions over the tools' text, tested on recorded outputs in
# tests/data/.

#: ``nvidia-smi --query-gpu`` fields, in order.
NVIDIA_SMI_FIELDS: tuple[str, ...] = ("index", "name", "driver_version", "vbios_version")


@dataclass(frozen=True)
class DeviceFacts:
    """What the vendor tool says about the cards: model, driver, firmware."""

    name: str | None = None
    driver_version: str | None = None
    firmware_version: str | None = None
    count: int = 0


def _clean(value: str | None) -> str | None:
    text = (value or "").strip().strip('"').strip()
    return None if text.lower() in ("", "n/a", "[n/a]", "[not supported]", "unknown") else text


def parse_nvidia_smi(text: str) -> DeviceFacts:
    """``nvidia-smi --query-gpu=index,name,driver_version,vbios_version
    --format=csv,noheader``: one line per GPU; the first GPU's values."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(NVIDIA_SMI_FIELDS) or parts[0].lower() == "index":
            continue
        rows.append(dict(zip(NVIDIA_SMI_FIELDS, parts, strict=True)))
    if not rows:
        return DeviceFacts()
    first = rows[0]
    return DeviceFacts(
        name=_clean(first["name"]),
        driver_version=_clean(first["driver_version"]),
        firmware_version=_clean(first["vbios_version"]),
        count=len(rows),
    )


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
        key, value = match.group(1).strip().lower(), _clean(match.group(2))
        if key == "driver version":
            driver = driver or value
        elif key == "product name":
            cards += 1
            name = name or value
        elif key.startswith("firmware [fit] version"):
            firmware = firmware or value
    return DeviceFacts(name=name, driver_version=driver, firmware_version=firmware, count=cards)


def _tool_output(argv: list[str], timeout_s: float = 10.0) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
            env={**os.environ, "ENABLE_CONSOLE": "true"},  # hl-smi prints nothing without it
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def nvidia_smi_facts() -> DeviceFacts:
    out = _tool_output(
        ["nvidia-smi", f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader"]
    )
    return parse_nvidia_smi(out) if out else DeviceFacts()


def hl_smi_facts() -> DeviceFacts:
    out = _tool_output(["hl-smi", "-q"], timeout_s=30.0)
    return parse_hl_smi_query(out) if out else DeviceFacts()


def gaudi_firmware_version() -> str | None:
    """The first card's firmware (FIT) version: HLML, else ``hl-smi -q``."""
    from bench.power.hlml import hlml_versions

    return hlml_versions()[1] or hl_smi_facts().firmware_version
