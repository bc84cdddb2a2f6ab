"""The contract between the runner and a backend.

The runner owns everything common to all backends: prompt planning, warmup
accounting, the measured window, power sampling, metrics, output. A backend
owns how requests reach the model: batched ``generate()`` in process (hf,
habana) or concurrent HTTP streams (openai). Adding a backend means a new
module plus one registry line in ``bench/backends/__init__.py``; the runner
does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from bench.core.config import RunConfig
    from bench.core.prompts import Prompt
    from bench.core.records import RequestRecord
    from bench.power import PowerSampler

#: Called with the number of requests just finished (drives the progress bar).
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a run: its position in the measured order, its prompt
    and, for ``output_lengths: dataset``, the output tokens it asks for
    (None: the config's ``max_new_tokens``)."""

    index: int
    prompt: Prompt
    output_tokens: int | None = None

    def wanted(self, max_new_tokens: int) -> int:
        """The output tokens this request asks for."""
        return self.output_tokens if self.output_tokens is not None else max_new_tokens


@dataclass(frozen=True)
class BackendInfo:
    """What a backend tells the environment record about the device it ran on."""

    device_name: str | None = None
    device_count: int | None = None
    driver_version: str | None = None
    runtime_version: str | None = None
    firmware_version: str | None = None
    #: What identifies the weights loaded (see :func:`bench.backends.revision.model_revision`).
    model_revision: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A loaded model (or endpoint) that can execute a list of requests."""

    name: ClassVar[str]
    #: The configuration in effect. After :meth:`load` a backend may have
    #: settled what the requested one left open or the device refused (the
    #: openai backend: the endpoint, request fields a server rejects); the
    #: runner records and fingerprints this one, never a setting not in effect.
    config: RunConfig

    def __init__(self, config: RunConfig) -> None: ...

    def load(self) -> None:
        """Load weights / open connections. Raises ModelLoadError, DeviceError."""

    def check(self, requests: Sequence[Request]) -> None:
        """Reject impossible work before anything is measured (ConfigError),
        e.g. prompt + max_new_tokens beyond the model's context."""

    def execute(self, requests: Sequence[Request], progress: Progress) -> list[RequestRecord]:
        """Run every request; a request that fails after it started becomes a
        record with ``success=False`` rather than an exception."""

    def reset_peak_memory(self) -> None: ...

    def peak_memory_bytes(self) -> int | None: ...

    def power_sampler(self) -> PowerSampler | None:
        """A sampler for the device's power draw, or None where none exists."""

    def info(self) -> BackendInfo: ...

    def close(self) -> None: ...
