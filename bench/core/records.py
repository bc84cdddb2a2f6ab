"""Per-request records: what backends produce and what the store keeps.

A backend yields a :class:`RequestRecord` of raw host timestamps (seconds on
the run's clock). :func:`bench.core.metrics.request_result` turns it into a
:class:`RequestResult` in milliseconds, the form written to JSONL and to the
``request_result`` table, and the only form run metrics are computed from, so
numbers recomputed from the database equal the ones printed at run time.

What a request generated is kept beside its timings (README "Outputs"):
its token ids, an HTTP endpoint's streamed text, and a digest of them. The
canonical form of ids is little-endian uint32, 4 bytes a token: what
:func:`pack_token_ids` writes, what ``request_result.output_ids`` stores and
what the digest hashes, so ``sha256(output_ids) = output_sha`` holds in SQL
too. A run's digest hashes its requests' digests in request order.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Bytes of a sha256 digest; a request without an output hashes as this many zeros.
DIGEST_BYTES = 32
_NO_OUTPUT = bytes(DIGEST_BYTES)


def pack_token_ids(ids: Sequence[int]) -> bytes:
    """Token ids as little-endian uint32 (the stored and hashed form)."""
    return struct.pack(f"<{len(ids)}I", *ids)


def unpack_token_ids(data: bytes | memoryview) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 4}I", data)


def output_digest(ids: Sequence[int] | None, text: str | None = None) -> str | None:
    """sha256 (hex) of what a request generated: its streamed text when it has
    one (an HTTP endpoint: the text is what the server sent, its ids are only
    re-tokenized), else its token ids in canonical form; None without either."""
    if text is not None:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    if ids is not None:
        return hashlib.sha256(pack_token_ids(ids)).hexdigest()
    return None


def run_output_digest(digests: Iterable[str | None]) -> str | None:
    """sha256 (hex) of a run's request digests in request order (a request
    without one counts as zeros); None when no request has one."""
    parts = [bytes.fromhex(d) if d is not None else _NO_OUTPUT for d in digests]
    if all(p == _NO_OUTPUT for p in parts):
        return None
    return hashlib.sha256(b"".join(parts)).hexdigest()


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
    collected after generation, never inside the timed window;
    ``output_text`` is what an HTTP endpoint streamed.
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
    output_text: str | None = None


@dataclass(frozen=True, slots=True)
class RequestResult:
    """One request's metrics in milliseconds (DESIGN.md's vocabulary).

    ``tpot_ms`` is None where no gap between tokens was observed (a
    single-token output, or a stream whose text arrived in one read), and
    every timing is None for a request that produced no token. Under
    ``timing: dual``, ``e2e_ms`` comes from the bare pass, so it is not
    ``ttft_ms + sum(itl_ms)`` (the streamed pass's latency).

    ``output_sha`` is the digest of what the request generated
    (:func:`output_digest`); ``output_token_ids`` and ``output_text`` are
    None when the run keeps no outputs (``--no-outputs``) or the backend had
    none (an endpoint without a tokenizer has text, no ids).
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
    output_sha: str | None = None
    output_token_ids: tuple[int, ...] | None = None
    output_text: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
            "output_sha": self.output_sha,
            "output_token_ids": None
            if self.output_token_ids is None
            else list(self.output_token_ids),
        }
        if self.output_text is not None:
            out["output_text"] = self.output_text
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RequestResult:
        ids = obj.get("output_token_ids")
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
            output_sha=obj.get("output_sha"),
            output_token_ids=None if ids is None else tuple(int(i) for i in ids),
            output_text=obj.get("output_text"),
        )
