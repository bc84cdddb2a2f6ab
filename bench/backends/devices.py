"""Device discovery, per-device memory accounting, CPU facts.

``auto`` means hpu when habana_frameworks imports and a card is visible,
else cuda when torch sees a GPU, else cpu. Asking for a device that is not
there is a one-line :class:`DeviceError` naming what is missing.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from bench.errors import DeviceError


def cuda_available() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return False, f"torch {torch.__version__} ({build}) sees no CUDA device"
    return True, ""


def resolve_device(device: str) -> str:
    """Turn ``auto`` into a concrete device and check that a named one exists."""
    from bench.backends.habana.device import GAUDI_DOCS, hpu_available

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


# -- host (CPU) peak memory --------------------------------------------------------------

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def device_model(device: str) -> str | None:
    """The model of this node's ``device``, as its run's environment will
    record it (``device_name``, hence ``run.device_model``): the CPU model,
    the CUDA device name, the Gaudi bridge's name. Read without a model."""
    if device == "cpu":
        return cpu_name()
    if device == "cuda":
        import torch

        return str(torch.cuda.get_device_name())
    if device == "hpu":
        import habana_frameworks.torch.hpu as hthpu

        return str(hthpu.get_device_name())
    return None


#: Gaudi part numbers, as hl-smi and HLML name a card, and the name the
#: Gaudi bridge's ``get_device_name()`` gives it, which is what runs record
#: (``run.device_model``). A target may name either.
HPU_PART_NUMBERS: dict[str, str] = {"HL-225": "GAUDI2", "HL-325L": "GAUDI3"}


def is_device_model(expected: str, found: str) -> bool:
    """Whether ``found`` is the device model a target ``expected``: a
    case-insensitive part of the name (``H100`` matches ``NVIDIA H100 80GB
    HBM3``, ``gaudi3`` matches ``GAUDI3``), or a Gaudi part number of it
    (``HL-325L`` matches ``GAUDI3``)."""
    wanted = HPU_PART_NUMBERS.get(expected.upper(), expected)
    return wanted.casefold() in found.casefold()


def check_device_model(device: str, expected: str | None, target: str | None = None) -> None:
    """Refuse a node whose device model is not the one its campaign target
    expects (:func:`is_device_model`): a task a queue sent to the wrong pool
    fails in one line before the model loads, instead of adding a night to
    another model's history."""
    if expected is None:
        return
    found = device_model(device)
    if found is None or not is_device_model(expected, found):
        import socket

        where = f"target {target}" if target else "this configuration"
        raise DeviceError(
            f"{where} expects device model {expected!r}, but {socket.gethostname()} has "
            f"{device} {found!r}: check which workers listen on the target's queue"
        )


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
