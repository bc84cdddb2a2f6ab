"""Device discovery and per-device memory accounting.

``auto`` means hpu when habana_frameworks imports and a card is visible,
else cuda when torch sees a GPU, else cpu. Asking for a device that is not
there is a one-line :class:`DeviceError` naming what is missing.
"""

from __future__ import annotations

import importlib.util
import os
import resource
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def apply_habana_env_defaults(options: Mapping[str, Any] | None = None) -> None:
    """The bridge reads its settings when habana_frameworks first loads: set
    the defaults (lazy mode as optimum-habana's examples run, and with a habana
    config's ``options`` the HPU-graph ones) before that. ``runner.prepare``
    calls this before device detection, the first Habana import."""
    from bench.backends.habana.options import bridge_env_defaults, graph_env_defaults

    os.environ.update(bridge_env_defaults(os.environ))
    if options is not None:
        os.environ.update(graph_env_defaults(options, os.environ))


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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
