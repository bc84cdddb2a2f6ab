"""What each timing mode costs on one device, side by side.

The engine of ``benchmarks/cuda_check.py`` and ``benchmarks/hpu_check.py``.
For one model and one batch of prompt ids already on the device, the
variants run interleaved, round by round (bare, stream, events, dual, bare,
stream, ...), so drift of clocks, temperature or neighbours hits them
alike:

* ``bare``: ``generate()`` with nothing attached; one sync at the end (the
  output copied to the host), as optimum-habana's run_generation.py times it;
* ``stream``: our :class:`~bench.core.streamer.TimingStreamer` (a host copy of
  each step's tokens);
* ``events``: a device event per step (:mod:`bench.core.step_events`);
* ``dual``: a bare pass, then a streamed pass of the same batch, as the
  in-process backend runs ``timing: dual``.

Per variant: median wall time, the paired ratio to bare (median over rounds
of variant/bare, robust to a round that was slow for everyone), tokens/s and,
where tokens were timed, TTFT/TPOT/ITL. ``events`` vs ``stream`` TTFT/TPOT
differences say whether the two clocks agree. A variant that raises is
recorded with its error and skipped afterwards; the others go on. Nothing
here prints except through the ``log`` callable; the JSON report is written
after every batch, so a run cut short still leaves its numbers.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.step_events import EventFactory

VARIANTS: tuple[str, ...] = ("bare", "stream", "events", "dual")
#: generate() calls one round of each variant makes
CALLS: Mapping[str, int] = {"bare": 1, "stream": 1, "events": 1, "dual": 2}

#: ``generate(streamer=..., stopping_criteria=...)`` -> token ids on the device
Generate = Callable[..., Any]


@dataclass(frozen=True)
class Device:
    """How to drive one device: sync, timing events, lazy-mode flush."""

    name: str
    sync: Callable[[], None]
    new_event: EventFactory | None = None
    flush: Callable[[], None] | None = None


@dataclass
class Sample:
    """One call of one variant."""

    wall_s: float  # the pass throughput is computed on (dual: its bare pass)
    token_times: tuple[float, ...] = ()  # host clock; t_send is 0
    total_s: float | None = None  # dual: both passes


@dataclass
class VariantStats:
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None


def run_variant(name: str, generate: Generate, device: Device, steps: int) -> Sample:
    """One timed call of ``name``; the output reaches the host before the clock stops."""
    clock = time.perf_counter
    if name == "bare":
        t0 = clock()
        generate().cpu()
        return Sample(clock() - t0)
    if name == "stream":
        from bench.core.streamer import TimingStreamer

        streamer = TimingStreamer(clock)
        t0 = clock()
        generate(streamer=streamer).cpu()
        wall = clock() - t0
        (seq,) = streamer.sequences(1)
        return Sample(wall, tuple(t - t0 for t in seq.token_times))
    if name == "events":
        if device.new_event is None:
            raise RuntimeError(f"{device.name} has no timing events")
        from transformers import StoppingCriteriaList

        from bench.core.step_events import EventTimeline

        timeline = EventTimeline(device.new_event, steps, device.flush)
        t0 = timeline.start(clock)
        out = generate(stopping_criteria=StoppingCriteriaList([timeline.criterion]))
        times = timeline.token_times(t0)
        out.cpu()
        return Sample(clock() - t0, tuple(t - t0 for t in times))
    if name == "dual":
        bare = run_variant("bare", generate, device, steps)
        streamed = run_variant("stream", generate, device, steps)
        return Sample(bare.wall_s, streamed.token_times, bare.wall_s + streamed.wall_s)
    raise ValueError(f"unknown variant {name!r}")


def plan_rounds(
    per_round_s: float, budget_s: float, *, max_rounds: int, min_rounds: int = 1
) -> int:
    """As many rounds as fit ``budget_s`` (at least ``min_rounds``, at most ``max_rounds``)."""
    if per_round_s <= 0:
        return max_rounds
    return max(min_rounds, min(max_rounds, int(budget_s // per_round_s)))


def paired_ratio(values: Sequence[float], reference: Sequence[float]) -> float | None:
    """Median over rounds of value/reference (rounds paired by position)."""
    pairs = [v / r for v, r in zip(values, reference, strict=False) if r > 0]
    return statistics.median(pairs) if pairs else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def token_stats(samples: Sequence[Sample]) -> dict[str, float | None]:
    """TTFT, TPOT and ITL over samples whose token times start at the send (0)."""
    ttft = [s.token_times[0] * 1e3 for s in samples if s.token_times]
    tpot = [
        (s.token_times[-1] - s.token_times[0]) * 1e3 / (len(s.token_times) - 1)
        for s in samples
        if len(s.token_times) > 1
    ]
    itl = [
        (b - a) * 1e3
        for s in samples
        for a, b in zip(s.token_times, s.token_times[1:], strict=False)
    ]
    return {
        "ttft_p50_ms": _percentile(ttft, 50),
        "tpot_p50_ms": _percentile(tpot, 50),
        "itl_p50_ms": _percentile(itl, 50),
        "itl_p99_ms": _percentile(itl, 99),
    }


def summarize_batch(
    batch: int, new_tokens: int, stats: Mapping[str, VariantStats]
) -> dict[str, Any]:
    """The report row of one batch size: every variant against bare."""
    bare = [s.wall_s for s in stats["bare"].samples] if "bare" in stats else []
    row: dict[str, Any] = {"batch": batch, "variants": {}}
    for name, st in stats.items():
        walls = [s.wall_s for s in st.samples]
        entry: dict[str, Any] = {"rounds": len(walls), "error": st.error}
        if walls:
            median = statistics.median(walls)
            entry |= {
                "median_s": median,
                "min_s": min(walls),
                "output_tokens_per_s": batch * new_tokens / median,
                "vs_bare": paired_ratio(walls, bare) if name != "bare" else 1.0,
            }
            if name == "dual":
                totals = [s.total_s for s in st.samples if s.total_s is not None]
                entry["streamed_vs_bare"] = paired_ratio(
                    [t - w for t, w in zip(totals, walls, strict=False)], walls
                )
            if any(s.token_times for s in st.samples):
                entry |= token_stats(st.samples)
        row["variants"][name] = entry
    stream, events = row["variants"].get("stream", {}), row["variants"].get("events", {})
    if stream.get("ttft_p50_ms") is not None and events.get("ttft_p50_ms") is not None:
        row["events_minus_stream_ms"] = {
            k: events[k] - stream[k] for k in ("ttft_p50_ms", "tpot_p50_ms")
        }
    return row


def format_row(row: Mapping[str, Any]) -> list[str]:
    """Table lines of one batch row (header first)."""
    lines = [
        f"{'batch':>5} {'variant':<7}{'median s':>10}{'tok/s':>9}{'vs bare':>9}"
        f"{'TTFT p50':>10}{'TPOT p50':>10}{'ITL p99':>9}  note"
    ]

    def num(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for name, v in row["variants"].items():
        note = f"error: {v['error']}" if v.get("error") else ""
        if name == "dual" and v.get("streamed_vs_bare") is not None:
            note = f"its streamed pass {v['streamed_vs_bare']:.3f}x its bare pass"
        lines.append(
            f"{row['batch']:>5} {name:<7}{num(v.get('median_s'), '.3f'):>10}"
            f"{num(v.get('output_tokens_per_s'), '.0f'):>9}{num(v.get('vs_bare'), '.3f'):>9}"
            f"{num(v.get('ttft_p50_ms'), '.2f'):>10}{num(v.get('tpot_p50_ms'), '.2f'):>10}"
            f"{num(v.get('itl_p99_ms'), '.2f'):>9}  {note}"
        )
    return lines


def write_report(report: Mapping[str, Any], path: Path) -> None:
    """JSON, replaced atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, path)


class Progress:
    """Timestamped progress lines: wall clock and seconds since the start."""

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self._t0 = time.perf_counter()
        self._out = out

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._out(f"[{stamp} +{self.elapsed_s:6.1f}s] {message}")


def compare_batch(
    generate: Generate,
    device: Device,
    *,
    batch: int,
    new_tokens: int,
    variants: Sequence[str],
    budget_s: float,
    max_rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Warm every variant once, then as many interleaved rounds as fit ``budget_s``."""
    stats = {name: VariantStats() for name in variants}
    per_round = 0.0
    for name in variants:  # warmup: kernels, allocator, graphs; also what a round costs
        t0 = time.perf_counter()
        try:
            run_variant(name, generate, device, new_tokens)
            device.sync()
        except Exception as exc:  # one broken mode must not cost the others
            stats[name].error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            log(f"batch {batch}: {name} failed in warmup: {stats[name].error}")
            continue
        per_round += time.perf_counter() - t0
    rounds = plan_rounds(per_round, budget_s, max_rounds=max_rounds)
    log(f"batch {batch}: warmup done, {per_round:.1f} s a round -> {rounds} round(s)")
    for r in range(rounds):
        for name in variants:
            if stats[name].error:
                continue
            try:
                device.sync()
                stats[name].samples.append(run_variant(name, generate, device, new_tokens))
            except Exception as exc:
                stats[name].error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                log(f"batch {batch}: {name} failed in round {r + 1}: {stats[name].error}")
        log(f"batch {batch}: round {r + 1}/{rounds} done")
    return summarize_batch(batch, new_tokens, stats)
