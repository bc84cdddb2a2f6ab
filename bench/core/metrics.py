"""Pure functions from per-request timings to run metrics. No I/O, no printing.

Definitions (README "Metrics" repeats them for users):

* ``ttft_ms``  first token time - send time (send is taken before tokenization)
* ``tpot_ms``  (last token - first token) / (output_tokens - 1); AIPerf's "ITL";
  None when no gap was observed (one token, or one streamed chunk)
* ``itl_ms``   gaps between consecutive tokens or chunks; vLLM's "ITL"
* ``e2e_ms``   last token time - send time; under ``timing: dual`` the bare
  pass's send -> output on the host (the streamed pass's latency is
  ``ttft_ms + sum(itl_ms)``)

Run-level percentiles use numpy's default linear interpolation. ITL
percentiles pool every gap of every successful request (as vLLM does), so a
long request weighs more than a short one; TTFT/TPOT/E2E count each request
once. Failed requests are counted but excluded from timing aggregates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.records import RequestRecord, RequestResult, output_digest

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
TIMED_METRICS: tuple[str, ...] = ("ttft", "tpot", "itl", "e2e")


def request_result(record: RequestRecord, *, keep_outputs: bool = True) -> RequestResult:
    """Milliseconds from raw host timestamps (seconds), and the digest of what
    a successful request generated; its ids and text only with ``keep_outputs``."""
    times = record.token_times
    outputs: dict[str, Any] = {}
    if record.success:
        ids, text = record.output_token_ids, record.output_text
        outputs["output_sha"] = output_digest(ids, text)
        if keep_outputs:
            outputs |= {"output_token_ids": ids, "output_text": text}
    if not times:
        return RequestResult(
            request_index=record.request_index,
            prompt_sha=record.prompt_sha,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            ttft_ms=None,
            tpot_ms=None,
            e2e_ms=None,
            success=record.success,
            error=record.error,
            **outputs,
        )
    first, last = times[0], times[-1]
    n_out = record.output_tokens
    if record.bare_t_send is not None and record.bare_t_done is not None:
        e2e_s = record.bare_t_done - record.bare_t_send
    else:
        e2e_s = last - record.t_send
    return RequestResult(
        request_index=record.request_index,
        prompt_sha=record.prompt_sha,
        input_tokens=record.input_tokens,
        output_tokens=n_out,
        ttft_ms=(first - record.t_send) * 1e3,
        # No gap observed (one token, or a stream whose text came in one
        # read): TPOT is unknown, not 0.
        tpot_ms=(last - first) * 1e3 / (n_out - 1) if n_out > 1 and len(times) > 1 else None,
        e2e_ms=e2e_s * 1e3,
        itl_ms=tuple(float(d) for d in np.diff(np.asarray(times)) * 1e3),
        success=record.success,
        error=record.error,
        **outputs,
    )


@dataclass(frozen=True)
class RunMetrics:
    """One configuration's numbers; field names carry their unit."""

    n_requests: int
    n_failed: int
    input_tokens_total: int
    output_tokens_total: int
    duration_s: float
    output_tokens_per_s: float | None
    requests_per_s: float | None
    ttft_mean_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p90_ms: float | None = None
    ttft_p95_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_mean_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p90_ms: float | None = None
    tpot_p95_ms: float | None = None
    tpot_p99_ms: float | None = None
    itl_mean_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p90_ms: float | None = None
    itl_p95_ms: float | None = None
    itl_p99_ms: float | None = None
    e2e_mean_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p90_ms: float | None = None
    e2e_p95_ms: float | None = None
    e2e_p99_ms: float | None = None
    goodput_requests_per_s: float | None = None
    goodput_fraction: float | None = None
    peak_memory_bytes: int | None = None
    energy_j: float | None = None
    energy_j_per_token: float | None = None
    #: ``timing: dual`` only: wall time of the streamed passes / the bare passes
    #: of the same requests (1.0: streaming costs nothing; 1.2: 20% slower)
    streamed_vs_bare_ratio: float | None = None
    #: Agreement with the same configuration at the campaign's reference
    #: precision (README "Outputs"): the mean fraction of each request's tokens
    #: before the first divergence, and the fraction of requests identical.
    #: Filled by the gate once the campaign's runs are in (bench.regressions);
    #: None at run time and where no reference run exists.
    output_prefix_match: float | None = None
    output_exact_match: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RunMetrics:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})


def distribution(values: Sequence[float] | np.ndarray, prefix: str) -> dict[str, float | None]:
    """``{prefix_mean_ms, prefix_p50_ms, ...}``; all None for an empty sample."""
    arr = np.asarray(values, dtype=np.float64)
    keys = [f"{prefix}_mean_ms"] + [f"{prefix}_p{p}_ms" for p in PERCENTILES]
    if arr.size == 0:
        return dict.fromkeys(keys)
    stats = [float(arr.mean())] + [float(v) for v in np.percentile(arr, PERCENTILES)]
    return dict(zip(keys, stats, strict=True))


def is_good(result: RequestResult, slo_ttft_ms: float | None, slo_tpot_ms: float | None) -> bool:
    """A request meets its SLOs: successful, TTFT and TPOT within bounds.
    A missing TPOT (single-token output) cannot violate the TPOT SLO."""
    if not result.success or result.ttft_ms is None:
        return False
    if slo_ttft_ms is not None and result.ttft_ms > slo_ttft_ms:
        return False
    return slo_tpot_ms is None or result.tpot_ms is None or result.tpot_ms <= slo_tpot_ms


def summarize(
    results: Iterable[RequestResult],
    *,
    duration_s: float,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    peak_memory_bytes: int | None = None,
    energy_j: float | None = None,
    passes: int = 1,
    streamed_vs_bare_ratio: float | None = None,
) -> RunMetrics:
    """Run metrics over the measured window ``duration_s`` (wall seconds).

    ``passes``: generate() passes over each request while energy was
    sampled (``timing: dual`` runs two), so energy per token divides by
    every token generated, not only the ones counted once as output.
    """
    results = list(results)
    ok = [r for r in results if r.success]
    out_total = sum(r.output_tokens for r in ok)
    fields: dict[str, Any] = {}
    fields |= distribution([r.ttft_ms for r in ok if r.ttft_ms is not None], "ttft")
    fields |= distribution([r.tpot_ms for r in ok if r.tpot_ms is not None], "tpot")
    fields |= distribution([g for r in ok for g in r.itl_ms], "itl")
    fields |= distribution([r.e2e_ms for r in ok if r.e2e_ms is not None], "e2e")
    per_s = (lambda n: n / duration_s) if duration_s > 0 else (lambda n: None)
    if slo_ttft_ms is not None or slo_tpot_ms is not None:
        good = sum(is_good(r, slo_ttft_ms, slo_tpot_ms) for r in results)
        fields["goodput_requests_per_s"] = per_s(good)
        fields["goodput_fraction"] = good / len(results) if results else None
    return RunMetrics(
        n_requests=len(results),
        n_failed=len(results) - len(ok),
        input_tokens_total=sum(r.input_tokens for r in ok),
        output_tokens_total=out_total,
        duration_s=duration_s,
        output_tokens_per_s=per_s(out_total),
        requests_per_s=per_s(len(ok)),
        peak_memory_bytes=peak_memory_bytes,
        energy_j=energy_j,
        energy_j_per_token=(
            energy_j / (out_total * passes) if energy_j is not None and out_total else None
        ),
        streamed_vs_bare_ratio=streamed_vs_bare_ratio,
        **fields,
    )


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end]`` intervals: the wall time during
    which at least one of them was in flight (a batch's requests share one)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def dual_windows(records: Sequence[RequestRecord]) -> tuple[float, float] | None:
    """(bare, streamed) wall seconds of a ``timing: dual`` run, or None.

    Bare: send -> output on the host of the unstreamed passes; streamed:
    send -> last token of the streamed passes. Throughput is computed over
    the first; their ratio is what observing every token costs.
    """
    bare = [
        (r.bare_t_send, r.bare_t_done)
        for r in records
        if r.success and r.bare_t_send is not None and r.bare_t_done is not None
    ]
    if not bare:
        return None
    streamed = [(r.t_send, r.token_times[-1]) for r in records if r.success and r.token_times]
    return busy_seconds(bare), busy_seconds(streamed)
