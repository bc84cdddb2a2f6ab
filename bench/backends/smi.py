"""Driver, firmware and card model from the vendors' command-line tools
(``nvidia-smi`` here; ``hl-smi -q`` in :mod:`bench.backends.habana.device`).

NVML and HLML answer these when their Python bindings are installed
(:mod:`bench.telemetry`, :mod:`bench.power`); ``nvidia-smi`` and ``hl-smi``
are the fallback. The parsers are pure functions over the tools' text,
tested on recorded outputs in tests/data/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

#: ``nvidia-smi --query-gpu`` fields, in order.
NVIDIA_SMI_FIELDS: tuple[str, ...] = ("index", "name", "driver_version", "vbios_version")


@dataclass(frozen=True)
class DeviceFacts:
    """What the vendor tool says about the cards: model, driver, firmware."""

    name: str | None = None
    driver_version: str | None = None
    firmware_version: str | None = None
    count: int = 0


def clean(value: str | None) -> str | None:
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
        name=clean(first["name"]),
        driver_version=clean(first["driver_version"]),
        firmware_version=clean(first["vbios_version"]),
        count=len(rows),
    )


def tool_output(argv: list[str], timeout_s: float = 10.0) -> str | None:
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
    out = tool_output(
        ["nvidia-smi", f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader"]
    )
    return parse_nvidia_smi(out) if out else DeviceFacts()
