"""What a run ran on: host, device, driver and package versions, project sha.

Stored once per distinct environment (``environment.fingerprint``) so a
trend query can tell a software upgrade from a code regression.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.backends.base import BackendInfo
from bench.backends.devices import cpu_name
from bench.core.hashing import canonical_json, sha256_hex

#: Distributions whose versions change what is measured.
PACKAGES: tuple[str, ...] = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "optimum-habana",
    "habana-torch-plugin",
    "neural-compressor",
    "neural-compressor-pt",
    "deepspeed",
    "numpy",
    "llm-bench-campaigns",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def project_git_sha() -> str | None:
    """The checkout's commit (``BENCH_GIT_SHA`` wins, for images built without .git)."""
    if sha := os.environ.get("BENCH_GIT_SHA"):
        return sha
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def capture_environment(device: str, info: BackendInfo | None = None) -> dict[str, Any]:
    """The environment record, with its ``fingerprint`` (sha256 of the rest)."""
    info = info or BackendInfo()
    env: dict[str, Any] = {
        "host": socket.gethostname(),
        "device": device,
        "device_name": info.device_name or (cpu_name() if device == "cpu" else None),
        "device_count": info.device_count
        if info.device_count is not None
        else (os.cpu_count() if device == "cpu" else None),
        "driver_version": info.driver_version,
        "runtime_version": info.runtime_version,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_sha": project_git_sha(),
        "extra": dict(info.extra),
    }
    env["fingerprint"] = sha256_hex(canonical_json(env))
    return env
