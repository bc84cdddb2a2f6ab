"""What a run ran on, and what changed between two sets of runs.

:func:`capture_environment` records the host, device, driver, firmware and
runtime, the kernel and CPU, the container image (``BENCH_IMAGE``), the
model's revision, package versions and this project's commit. It is stored
once per distinct record (``environment.fingerprint``), so a trend query can
tell a software upgrade from a code regression.

:func:`environment_diff` answers "what changed?" next to every verdict: each
key whose value tonight differs from at least one baseline run, with the
baseline's values and tonight's. Records written by an older version of this
tool lack the keys added since; a key is compared only where *both* sides
recorded it, so an upgrade of the tool never shows up as a change on every
verdict. To make that rule exact, a record says explicitly what it looked
for and did not find: a tracked package that is not installed is ``None``,
not absent, and so is an unset ``BENCH_IMAGE``.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import socket
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.backends.base import BackendInfo
from bench.backends.devices import cpu_microcode, cpu_name
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

#: The container image a worker runs in; set by the Dockerfiles and compose.
IMAGE_ENV = "BENCH_IMAGE"

#: Keys of a stored record that identify it rather than describe the machine.
_IDENTITY_KEYS = frozenset({"fingerprint", "id", "environment_id", "first_seen_at"})

#: Short names for the "changed" column, in the order an on-call engineer reads
#: them: what usually explains a step first. Other keys follow alphabetically.
SHORT_NAMES: Mapping[str, str] = {
    "image": "image",
    "runtime_version": "runtime",
    "driver_version": "driver",
    "firmware_version": "firmware",
    "model_revision": "model",
    "git_sha": "git",
    "kernel": "kernel",
    "cpu_model": "cpu",
    "device_name": "device",
    "device_count": "cards",
    "host": "host",
    "python_version": "python",
}
#: Keys left out of the short column when the key they repeat changed too.
_REDUNDANT: Mapping[str, str] = {"platform": "kernel"}
_SHA = re.compile(r"^[0-9a-f]{12,64}$")


# -- capture ------------------------------------------------------------------------------


def package_versions() -> dict[str, str | None]:
    """Every tracked distribution's version; None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
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
    """The environment record, with its ``fingerprint`` (sha256 of the rest).

    The keys after ``extra`` were added later (``bench.store.writer`` keeps
    them in the ``environment.extra`` column); each is always present, None
    when unknown, so that "not recorded" and "recorded as nothing" differ.
    """
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
        "image": os.environ.get(IMAGE_ENV) or None,
        "kernel": platform.release() or None,
        "cpu_model": cpu_name(),
        "firmware_version": info.firmware_version
        if info.firmware_version is not None or device != "cpu"
        else cpu_microcode(),
        "model_revision": info.model_revision,
    }
    env["fingerprint"] = sha256_hex(canonical_json(env))
    return env


# -- what changed -------------------------------------------------------------------------


def flatten_environment(env: Mapping[str, Any]) -> dict[str, Any]:
    """One level of ``key -> value`` from a captured record or a stored row.

    Columns keep their names, packages become ``packages.<name>``, the
    ``extra`` mapping (backend facts and the keys added after it) is merged
    in under its own names, nested mappings become dotted keys. Identity
    keys (``fingerprint``, row ids) are dropped.
    """
    out: dict[str, Any] = {}
    for key, value in env.items():
        if key in _IDENTITY_KEYS:
            continue
        if key == "extra" and isinstance(value, Mapping):
            for sub, inner in _dotted(value).items():
                out.setdefault(sub, inner)
        elif key == "packages" and isinstance(value, Mapping):
            out.update({f"packages.{name}": version for name, version in value.items()})
        elif isinstance(value, Mapping):
            out.update({f"{key}.{sub}": inner for sub, inner in _dotted(value).items()})
        else:
            out[key] = value
    return out


def _dotted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{sub}": inner for sub, inner in _dotted(value).items()})
        else:
            out[str(key)] = value
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def environment_diff(
    current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Keys whose value in ``current`` differs from at least one ``baseline`` record.

    ``current`` and each baseline entry are environment records (captured or
    stored; :func:`flatten_environment` reads both). Result, JSON-ready::

        {"packages.torch": {"baseline": ["2.6.0"], "runs": [13], "current": "2.7.0"}}

    ``baseline`` lists the distinct values the baseline runs had, most
    frequent first, ``runs`` how many runs had each. A key missing from a
    record was not recorded by the tool that wrote it (an older version): it
    is compared only among the records that have it, and skipped when
    tonight's record lacks it. Baseline runs without an environment (a run
    that died before capturing one) are left out by the caller.
    """
    now = flatten_environment(current)
    flat = [flatten_environment(b) for b in baseline]
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(now):
        known = [b[key] for b in flat if key in b]
        if not known or all(_key(v) == _key(now[key]) for v in known):
            continue
        counts = Counter(_key(v) for v in known)  # insertion order: first seen first
        values = {_key(v): v for v in reversed(known)}
        ordered = sorted(counts, key=lambda k: -counts[k])  # stable: ties keep first-seen order
        out[key] = {
            "baseline": [values[k] for k in ordered],
            "runs": [counts[k] for k in ordered],
            "current": now[key],
        }
    return out


def _short_value(value: Any) -> str:
    if value is None:
        return "none"
    text = str(value)
    if _SHA.match(text):
        return text[:10]
    if text.startswith("sha256:"):
        return text[:15]
    return text if len(text) <= 40 else text[:37] + "..."


def _short_name(key: str) -> str:
    if key.startswith("packages."):
        return key.removeprefix("packages.")
    return SHORT_NAMES.get(key, key)


def _rank(key: str) -> tuple[int, str]:
    names = list(SHORT_NAMES)
    if key in SHORT_NAMES:
        return names.index(key), key
    if key.startswith("packages."):
        return names.index("model_revision"), key  # with the software, before the commit
    return len(names), key


def format_changes(changes: Mapping[str, Mapping[str, Any]], limit: int = 4) -> str:
    """The short "changed" column: ``torch 2.6.0->2.7.0, image stack-1.21->stack-1.22``.

    A baseline with mixed values shows them joined by ``|`` (most frequent
    first); more than ``limit`` changes end in ``+N more``; empty when
    nothing changed.
    """
    keys = [k for k in changes if _REDUNDANT.get(k) not in changes]
    keys.sort(key=_rank)
    parts = []
    for key in keys[:limit]:
        entry = changes[key]
        before = "|".join(_short_value(v) for v in list(entry.get("baseline", []))[:2])
        if len(entry.get("baseline", [])) > 2:
            before += "|..."
        parts.append(f"{_short_name(key)} {before}->{_short_value(entry.get('current'))}")
    if len(keys) > limit:
        parts.append(f"+{len(keys) - limit} more")
    return ", ".join(parts)


__all__ = [
    "IMAGE_ENV",
    "PACKAGES",
    "capture_environment",
    "environment_diff",
    "flatten_environment",
    "format_changes",
    "package_versions",
    "project_git_sha",
]
