"""Backend registry: the one list that CLI choices, campaign validation and
the Airflow trigger form all read.

An entry is light metadata: devices, precisions, load shape, and where its
option table and cross-option check live (``options`` modules import no
torch, aiohttp or optimum-habana). The implementation is named lazily
(``"bench.backends.hf:HFBackend"``) and imported only by
:func:`create_backend`, so validating a config never loads a backend.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.backends.base import Backend
    from bench.backends.options import OptionSpec
    from bench.core.config import RunConfig


@dataclass(frozen=True)
class BackendSpec:
    name: str
    target: str
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    #: "batch": in-process generate() over batches of ``batch_size``;
    #: "stream": concurrent requests shaped by ``concurrency``/``request_rate``.
    load_shape: str
    summary: str
    #: ``module:ATTR`` of the option table (a light module)
    options_table: str
    #: ``module:function`` of checks spanning several fields, or None
    checker: str | None = None
    #: what a config that names no precision gets
    default_precision: str = "bf16"
    #: timing modes it supports (bench.core.config.TIMING_MODES)
    timings: tuple[str, ...] = ("stream", "events", "dual")

    def load_class(self) -> type[Backend]:
        return cast("type[Backend]", _resolve(self.target))

    def options(self) -> Mapping[str, OptionSpec]:
        return cast("Mapping[str, OptionSpec]", _resolve(self.options_table))

    def check(self, config: RunConfig) -> None:
        if self.checker is not None:
            _resolve(self.checker)(config)


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "hf",
            "bench.backends.hf:HFBackend",
            devices=("cpu", "cuda"),
            precisions=("fp32", "bf16", "fp16"),
            load_shape="batch",
            summary="transformers generate() in process (CPU, CUDA)",
            options_table="bench.backends.options:HF_OPTIONS",
        ),
        BackendSpec(
            "habana",
            "bench.backends.habana.backend:HabanaBackend",
            devices=("hpu",),
            precisions=("fp32", "bf16", "fp8"),
            load_shape="batch",
            summary="optimum-habana generate() on Intel Gaudi (HPU)",
            options_table="bench.backends.habana.options:OPTIONS",
            checker="bench.backends.habana.options:validate_config",
        ),
        BackendSpec(
            "openai",
            "bench.backends.openai.backend:OpenAIBackend",
            devices=("cpu", "cuda", "hpu"),
            precisions=("fp32", "bf16", "fp16", "fp8", "unknown"),
            load_shape="stream",
            summary="an OpenAI-compatible HTTP endpoint (vLLM, TGI, transformers serve)",
            options_table="bench.backends.openai.options:OPTIONS",
            checker="bench.backends.openai.options:validate_config",
            # the client cannot see the server's weights: never guess bf16
            default_precision="unknown",
            timings=("stream",),  # the server streams; its device is out of reach
        ),
    )
}


def get_spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}"
        ) from None


def validate_config(config: RunConfig) -> None:
    """Backend-dependent checks, shared by the CLI, campaigns and the DAGs."""
    spec = get_spec(config.backend)
    if config.device != "auto" and config.device not in spec.devices:
        raise ConfigError(
            f"backend {spec.name} runs on {'/'.join(spec.devices)}, not on device {config.device}"
            + (" (use --backend habana for hpu)" if config.device == "hpu" else "")
        )
    if config.precision not in spec.precisions:
        raise ConfigError(
            f"backend {spec.name} supports precision {'/'.join(spec.precisions)}, not {config.precision}"
        )
    if spec.load_shape == "batch" and (config.concurrency or config.request_rate):
        raise ConfigError(
            f"concurrency/request_rate apply to the openai backend; {spec.name} uses batch_size"
        )
    if spec.load_shape == "stream" and config.batch_size != 1:
        raise ConfigError(
            f"batch_size applies to in-process backends; {spec.name} uses concurrency/request_rate"
        )
    if config.timing is not None and config.timing not in spec.timings:
        raise ConfigError(
            f"backend {spec.name} supports timing {'/'.join(spec.timings)}, not {config.timing}"
        )
    if config.world_size > 1 and spec.name != "habana":
        raise ConfigError(
            f"world_size > 1 (multi-card) is supported by the habana backend, not {spec.name}"
        )
    allowed = spec.options()
    for key, value in config.options.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"unknown {spec.name} option {key!r}{hint}; known: {known}")
        allowed[key].check(spec.name, key, value)
    # Checks spanning several fields (e.g. openai's required base_url), so
    # campaigns and the trigger form reject them before a task starts.
    spec.check(config)


def create_backend(config: RunConfig) -> Backend:
    return get_spec(config.backend).load_class()(config)
