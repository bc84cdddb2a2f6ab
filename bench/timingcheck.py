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

Around that engine, what both device scripts do the same way:
:class:`CheckReport` (the report, its errors, each batch size's share of the
time budget) and :func:`bench_run_modes` (``bench run`` once per timing mode,
as a user runs it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.core.step_events import EventFactory

_T = TypeVar("_T")

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


@dataclass
class CheckReport:
    """A device check's JSON report, written whole after every step (a run
    cut short by its budget or a crash still leaves what it measured)."""

    data: dict[str, Any]
    out: Path | None
    log: Progress

    def __post_init__(self) -> None:
        self.data.setdefault("rows", [])
        self.data.setdefault("errors", [])

    def save(self) -> None:
        self.data["elapsed_s"] = round(self.log.elapsed_s, 1)
        if self.out is not None:
            write_report(self.data, self.out)

    def failed(self, step: str, exc: BaseException) -> None:
        """Record one step's failure; the steps after it still run."""
        self.data["errors"].append(f"{step}: {type(exc).__name__}: {exc}")
        self.log(f"{step} FAILED: {exc}\n{traceback.format_exc()}")

    def step(self, name: str, run: Callable[[], _T]) -> _T | None:
        """``run()``, timed into ``<name>_s``; None when it failed (recorded).
        Saved either way."""
        t0 = time.perf_counter()
        try:
            value = run()
        except Exception as exc:
            self.failed(name, exc)
            return None
        else:
            self.data[f"{name.replace(' ', '_')}_s"] = round(time.perf_counter() - t0, 1)
            return value
        finally:
            self.save()

    def done(self) -> int:
        """Save, say so; the script's exit status (errors are in the report)."""
        self.save()
        where = f"; JSON in {self.out}" if self.out is not None else ""
        self.log(f"done in {self.log.elapsed_s:.0f} s{where}")
        return 0

    def sweep(
        self,
        batches: Sequence[int],
        measure: Callable[[int, float], dict[str, Any]],
        *,
        budget_s: float,
        reserve_s: float = 0.0,
        after_failure: Callable[[], None] | None = None,
    ) -> None:
        """``measure(batch, share)`` for each batch size, ``share`` an equal
        part of what is left of ``budget_s`` once ``reserve_s`` is kept back
        for later steps. A batch size that fails (out of memory at batch 64,
        say) is recorded, ``after_failure`` cleans up, and the others run."""
        for index, batch in enumerate(batches):
            left = budget_s - reserve_s - self.log.elapsed_s
            share = left / (len(batches) - index)
            self.log(f"batch {batch}: {share:.0f} s of budget ({left:.0f} s left)")
            try:
                row = measure(batch, share)
            except Exception as exc:
                self.failed(f"batch {batch}", exc)
                if after_failure is not None:
                    after_failure()
            else:
                self.data["rows"].append(row)
                for line in format_row(row):
                    self.log(line)
            self.save()


def bench_run_modes(
    argv: Callable[[str, Path], list[str]],
    timings: Sequence[str],
    log: Callable[[str], None],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
) -> dict[str, Any]:
    """``bench run`` once per timing mode, as a user runs it: ``argv(timing,
    out)`` is the command line, ``out`` the JSONL it must write. Per mode:
    ok with the result's config, metrics and environment, or the error (a
    mode that fails or times out does not stop the next)."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for timing in timings:
            out = Path(tmp) / f"{timing}.jsonl"
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "bench", "run", *argv(timing, out)],
                    capture_output=True, text=True, cwd=cwd, env=dict(env), timeout=timeout_s,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                result[timing] = {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
                log(f"bench run --timing {timing}: timed out")
                continue
            if proc.returncode != 0 or not out.is_file():
                result[timing] = {"ok": False, "error": proc.stderr.strip()[-2000:]}
                log(f"bench run --timing {timing}: FAILED {proc.stderr.strip()[-300:]}")
                continue
            summary = json.loads(out.read_text().splitlines()[-1])
            result[timing] = {
                "ok": True,
                "config": summary["config"],
                "metrics": summary["metrics"],
                "environment": summary["environment"],
            }
            m = summary["metrics"]
            ratio = m.get("streamed_vs_bare_ratio")
            log(
                f"bench run --timing {timing}: ok, ttft p50 {m['ttft_p50_ms']:.2f} ms, "
                f"tpot p50 {m['tpot_p50_ms']:.2f} ms, {m['output_tokens_per_s']:.0f} tok/s"
                + (f", streamed/bare {ratio:.3f}x" if ratio else "")
            )
    return result
