"""One benchmark configuration, validated once, frozen, fingerprinted.

Everything downstream (runner, backends, store, DAGs) receives a
:class:`RunConfig`; no argparse namespace or raw dict travels further than
:meth:`RunConfig.from_mapping`. The fingerprint is the history key: two runs
are comparable across nights and machines exactly when their fingerprints
match, so it covers every field that changes what is measured and nothing
that does not (warmup count, where the weights live, SLOs, labels).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bench.core.hashing import canonical_json, frozen, sha256_hex, thawed
from bench.errors import ConfigError

#: ``unknown``: what an HTTP endpoint serves, unless the user says (the
#: client cannot see the server's weights); in-process backends refuse it.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "unknown")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "hpu")
CONCRETE_DEVICES: tuple[str, ...] = ("cpu", "cuda", "hpu")
#: How token times are taken (README "Timing modes"): the streamer's host
#: clock, device events, or a bare pass for throughput plus a streamed one.
TIMING_MODES: tuple[str, ...] = ("stream", "events", "dual")
#: Devices with timing events (``torch.cuda.Event``, ``habana_frameworks.torch.hpu.Event``).
EVENT_DEVICES: tuple[str, ...] = ("cuda", "hpu")

#: Fields that do not change what is measured, hence stay out of the fingerprint.
_NOT_FINGERPRINTED = frozenset(
    {"model_path", "warmup", "trust_remote_code", "slo_ttft_ms", "slo_tpot_ms", "prompts", "limit"}
)


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _positive_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return number


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return str(value)


@dataclass(frozen=True)
class RunConfig:
    """One model x precision x batch-size (or concurrency) configuration."""

    model: str
    model_path: str | None = None
    #: "" (unset): the backend's default (bf16 in process, unknown for openai)
    precision: str = ""
    batch_size: int = 1
    max_new_tokens: int = 128
    device: str = "auto"
    backend: str = "hf"
    warmup: int = 1
    prompts: str = "default"
    limit: int | None = None
    seed: int = 0
    ignore_eos: bool = True
    trust_remote_code: bool = False
    world_size: int = 1
    concurrency: int | None = None
    request_rate: float | None = None
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    #: None: the device's default (:func:`default_timing`), resolved by ``runner.prepare``
    timing: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model must be a non-empty hub id or directory")
        set_(self, "model", self.model.strip())
        if not self.precision:
            from bench.backends import get_spec

            set_(self, "precision", get_spec(self.backend).default_precision)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        set_(self, "batch_size", _int_at_least("batch_size", self.batch_size, 1))
        set_(self, "max_new_tokens", _int_at_least("max_new_tokens", self.max_new_tokens, 1))
        set_(self, "warmup", _int_at_least("warmup", self.warmup, 0))
        set_(self, "seed", _int_at_least("seed", self.seed, 0))
        set_(self, "world_size", _int_at_least("world_size", self.world_size, 1))
        if self.limit is not None:
            set_(self, "limit", _int_at_least("limit", self.limit, 1))
        if self.concurrency is not None:
            set_(self, "concurrency", _int_at_least("concurrency", self.concurrency, 1))
        for name in ("request_rate", "slo_ttft_ms", "slo_tpot_ms"):
            if getattr(self, name) is not None:
                set_(self, name, _positive_float(name, getattr(self, name)))
        if self.timing is not None:
            _choice("timing", self.timing, TIMING_MODES)
            if self.timing == "events" and self.device not in ("auto", *EVENT_DEVICES):
                raise ConfigError(
                    f"timing events needs device timing events ({'/'.join(EVENT_DEVICES)}); "
                    f"{self.device} has none: use timing stream or dual"
                )
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"options must be a mapping, got {type(self.options).__name__}")
        set_(self, "options", frozen(dict(self.options)))
        if self.precision == "fp8" and self.device in ("cpu", "cuda"):
            raise ConfigError(
                f"precision fp8 is supported on hpu only (Intel Neural Compressor), not on {self.device}"
            )
        # Backend-specific checks (known backend, devices, option names) live
        # with the backend registry so every entry point shares them.
        from bench.backends import validate_config

        validate_config(self)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from a dict (campaign entry, JSON on a command line, DB row)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        if "model" not in data:
            raise ConfigError("config needs a 'model'")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}

    # -- identity ---------------------------------------------------------------------

    @property
    def load_path(self) -> str:
        """Where the weights come from: ``model_path`` if set, else ``model``;
        ``$VARS`` and ``~`` expand at load time, on the machine that loads."""
        return os.path.expanduser(os.path.expandvars(self.model_path or self.model))

    @property
    def effective_timing(self) -> str:
        """``timing``, or the default of this backend on this (resolved) device."""
        return self.timing or default_timing(self.backend, self.device)

    @property
    def label(self) -> str:
        """Short readable name, e.g. ``llama-2-7b/bf16/bs8`` (Airflow map index)."""
        name = self.model.rstrip("/").rsplit("/", 1)[-1]
        if self.concurrency is not None:
            shape = f"c{self.concurrency}"
        elif self.request_rate is not None:
            shape = f"r{self.request_rate:g}"
        else:
            shape = f"bs{self.batch_size}"
        tp = f"/tp{self.world_size}" if self.world_size > 1 else ""
        return f"{name}/{self.precision}/{shape}{tp}"

    def identity(self, *, prompt_set_sha: str, n_requests: int) -> dict[str, Any]:
        """Everything that must match for two runs to be comparable.

        The prompt set enters by content hash (paths differ between machines)
        and the request count replaces ``limit`` (it is what was measured);
        backend options marked ``fingerprint=False`` (an API-key variable, a
        client timeout) stay out.
        """
        if self.device == "auto":
            raise ConfigError("resolve device 'auto' before fingerprinting")
        from bench.backends import get_spec

        ident = {k: v for k, v in self.to_dict().items() if k not in _NOT_FINGERPRINTED}
        # ``stream`` is how every run was timed before the field existed: its
        # histories keep their fingerprints; another mode measures differently.
        ident.pop("timing")
        if (timing := self.effective_timing) != "stream":
            ident["timing"] = timing
        specs = get_spec(self.backend).options()
        ident["options"] = {
            k: v for k, v in ident["options"].items() if k not in specs or specs[k].fingerprint
        }
        ident["prompt_set_sha"] = prompt_set_sha
        ident["n_requests"] = n_requests
        return ident

    def fingerprint(self, *, prompt_set_sha: str, n_requests: int) -> str:
        """sha256 of the canonical JSON of :meth:`identity`."""
        return sha256_hex(
            canonical_json(self.identity(prompt_set_sha=prompt_set_sha, n_requests=n_requests))
        )


def default_timing(backend: str, device: str) -> str:
    """``dual`` for in-process generation on HPU, else ``stream``.

    On Gaudi with ``ignore_eos`` optimum-habana's loop has no per-step sync
    of its own, so the streamer's ``.cpu()`` per step slows generation
    (docs/gaudi.md): throughput comes from a bare pass until a measurement on
    hardware shows ``stream`` within 2% of it. On CPU and CUDA, HF's loop
    syncs every step anyway and streaming is free (docs/performance.md).
    """
    from bench.backends import get_spec

    if device == "hpu" and "dual" in get_spec(backend).timings:
        return "dual"
    return "stream"
