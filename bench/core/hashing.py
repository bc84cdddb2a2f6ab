"""Canonical JSON and sha256: the one way anything here is fingerprinted.

Config fingerprints, prompt and prompt-set shas, environment fingerprints
and output digests all hash the canonical JSON of plain data, so two
machines that agree on the data agree on the hash. ``frozen``/``thawed``
convert between JSON-like data and the immutable form frozen dataclasses
hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


def frozen(value: Any) -> Any:
    """Deep-freeze JSON-like data so a frozen dataclass is really immutable."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value: Any) -> Any:
    """Inverse of :func:`frozen`: plain dicts and lists for JSON."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: the input of every fingerprint."""
    return json.dumps(thawed(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))
