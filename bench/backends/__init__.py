"""Backend registry: the one list that CLI choices, campaign validation and
the Airflow trigger form all read.

Entries name their module lazily (``"bench.backends.hf:HFBackend"``), so
torch, optimum-habana or an HTTP client load only for the backend in use.
Backend modules keep heavy imports inside functions: importing one to read
its ``OPTIONS`` is cheap.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.backends.base import Backend, OptionSpec
    from bench.config import RunConfig


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

    def load_class(self) -> type[Backend]:
        module_name, _, attr = self.target.partition(":")
        return cast("type[Backend]", getattr(importlib.import_module(module_name), attr))

    def options(self) -> Mapping[str, OptionSpec]:
        return cast("Mapping[str, OptionSpec]", getattr(self.load_class(), "OPTIONS", {}))


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
        ),
        BackendSpec(
            "habana",
            "bench.backends.habana:HabanaBackend",
            devices=("hpu",),
            precisions=("fp32", "bf16", "fp8"),
            load_shape="batch",
            summary="optimum-habana generate() on Intel Gaudi (HPU)",
        ),
        BackendSpec(
            "openai",
            "bench.backends.openai:OpenAIBackend",
            devices=("cpu", "cuda", "hpu"),
            precisions=("fp32", "bf16", "fp16", "fp8"),
            load_shape="stream",
            summary="an OpenAI-compatible HTTP endpoint (vLLM, TGI, transformers serve)",
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
    backend_check = getattr(spec.load_class(), "validate", None)
    if backend_check is not None:
        backend_check(config)


def create_backend(config: RunConfig) -> Backend:
    return get_spec(config.backend).load_class()(config)
