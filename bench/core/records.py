"""Per-request records: what backends produce and what the store keeps.

A backend yields a :class:`RequestRecord` of raw host timestamps (seconds on
the run's clock). :func:`bench.core.metrics.request_result` turns it into a
:class:`RequestResult` in milliseconds, the form written to JSONL and to the
``request_result`` table, and the only form run metrics are computed from, so
numbers recomputed from the database equal the ones printed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Raw timing of one request (one sequence of a batch, or one HTTP call).

    ``token_times`` holds the host time each output token (or streamed chunk)
    became available; ``output_tokens`` may exceed its length when a chunk
    carries several tokens (HTTP backends), never the other way round.

    Under ``timing: dual`` the request also ran once without a streamer:
    ``bare_t_send``/``bare_t_done`` bound that pass (send -> output on the
    host), which gives its ``e2e_ms`` and the run's throughput.
    ``output_token_ids`` are the generated ids where the backend has them,
    collected after generation, never inside the timed window.
    """

    request_index: int
    prompt_sha: str
    input_tokens: int
    output_tokens: int
    t_send: float
    token_times: tuple[float, ...] = ()
    success: bool = True
    error: str | None = None
    bare_t_send: float | None = None
    bare_t_done: float | None = None
    output_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class RequestResult:
    """One request's metrics in milliseconds (DESIGN.md's vocabulary).

    ``tpot_ms`` is None where no gap between tokens was observed (a
    single-token output, or a stream whose text arrived in one read), and
    every timing is None for a request that produced no token. Under
    ``timing: dual``, ``e2e_ms`` comes from the bare pass, so it is not
    ``ttft_ms + sum(itl_ms)`` (the streamed pass's latency).
    """

    request_index: int
    prompt_sha: str
    input_tokens: int
    output_tokens: int
    ttft_ms: float | None
    tpot_ms: float | None
    e2e_ms: float | None
    itl_ms: tuple[float, ...] = field(default=())
    success: bool = True
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "request",
            "request_index": self.request_index,
            "prompt_sha": self.prompt_sha,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "e2e_ms": self.e2e_ms,
            "itl_ms": list(self.itl_ms),
            "success": self.success,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RequestResult:
        return cls(
            request_index=int(obj["request_index"]),
            prompt_sha=str(obj["prompt_sha"]),
            input_tokens=int(obj["input_tokens"]),
            output_tokens=int(obj["output_tokens"]),
            ttft_ms=obj.get("ttft_ms"),
            tpot_ms=obj.get("tpot_ms"),
            e2e_ms=obj.get("e2e_ms"),
            itl_ms=tuple(obj.get("itl_ms") or ()),
            success=bool(obj.get("success", True)),
            error=obj.get("error"),
        )
