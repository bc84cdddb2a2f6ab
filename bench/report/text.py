"""Terminal output: the progress of a run and its summary table."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from bench.core.results import RunResult

if TYPE_CHECKING:
    from bench.outputs import ReferenceAgreement


class ProgressPrinter:
    """A tqdm bar on a terminal; on a pipe (Airflow logs) one line per 10%."""

    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr) -> None:
        self._total = max(total, 1)
        self._label = label
        self._done = 0
        self._next_pct = 10
        self._t0 = time.perf_counter()
        self._stream = stream
        self._bar: Any = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="req", file=stream, leave=False)

    def update(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        pct = 100 * self._done // self._total
        if pct >= self._next_pct or self._done == self._total:
            elapsed = time.perf_counter() - self._t0
            print(
                f"{self._label}: {self._done}/{self._total} requests ({pct}%) {elapsed:.1f} s",
                file=self._stream,
                flush=True,
            )
            self._next_pct = (pct // 10 + 1) * 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fmt(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_summary(result: RunResult) -> str:
    """The table `bench run` prints; the same numbers go to the results DB."""
    cfg = result.config
    head = (
        f"{cfg.label}  backend={cfg.backend} device={cfg.device} timing={cfg.effective_timing}"
        f"  status={result.status}"
        f"  fingerprint={result.fingerprint[:12]}"
    )
    m = result.metrics
    if m is None:
        return f"{head}\nerror: {result.error}"
    rows = [f"{'metric':<10}{'mean':>10}{'p50':>10}{'p90':>10}{'p95':>10}{'p99':>10}"]
    for name in ("ttft", "tpot", "itl", "e2e"):
        values = [getattr(m, f"{name}_{s}_ms") for s in ("mean", "p50", "p90", "p95", "p99")]
        rows.append(f"{name + '_ms':<10}" + "".join(f"{_fmt(v):>10}" for v in values))
    tail = [
        f"requests: {m.n_requests} ({m.n_failed} failed)  input tokens: {m.input_tokens_total}"
        f"  output tokens: {m.output_tokens_total}  measured: {m.duration_s:.2f} s"
        + (f"  warmup: {result.warmup_s:.2f} s" if result.warmup_s is not None else ""),
        f"throughput: {_fmt(m.output_tokens_per_s, 1)} output tok/s, {_fmt(m.requests_per_s, 2)} req/s"
        + (
            f"  goodput: {_fmt(m.goodput_requests_per_s, 2)} req/s ({_fmt((m.goodput_fraction or 0) * 100, 1)}% within SLO)"
            if m.goodput_requests_per_s is not None
            else ""
        ),
        f"peak memory: {human_bytes(m.peak_memory_bytes)}  energy: "
        + (
            f"{m.energy_j_per_token:.4f} J/token"
            if m.energy_j_per_token is not None
            else "n/a (no power source)"
        ),
    ]
    if lengths := (result.prompt_set or {}).get("output_lengths"):
        tail.append(
            f"output lengths: the dataset's replies, {lengths['min']}-{lengths['max']} tokens "
            f"asked (median {lengths['median']:g}), {lengths['capped']} capped at {lengths['cap']}"
        )
    if m.streamed_vs_bare_ratio is not None:
        tail.append(
            "dual timing: throughput and e2e from the bare passes, ttft/tpot/itl from the"
            f" streamed ones; streamed/bare wall time {m.streamed_vs_bare_ratio:.3f}x"
        )
    if outputs := _outputs_line(result):
        tail.append(outputs)
    if result.error:
        tail.append(f"error: {result.error}")
    return "\n".join([head, *rows, *tail])


def _outputs_line(result: RunResult) -> str | None:
    """What was kept of the outputs, and their digest (two runs that print the
    same digest generated the same tokens)."""
    from bench.core.records import run_output_digest

    digest = run_output_digest(r.output_sha for r in result.requests)
    if digest is None:
        return None
    kept = sum(r.output_token_ids is not None or r.output_text is not None for r in result.requests)
    what = f"{kept} kept" if kept else "digests only (--no-outputs)"
    return f"outputs: {what}, digest {digest[:12]}"


def format_agreement(found: ReferenceAgreement) -> str:
    """One line: the run's agreement with a more precise run of its configuration."""
    a = found.agreement
    same = round((a.exact_match or 0.0) * a.compared)
    prefix = "n/a (ids not kept)" if a.prefix_match is None else f"{a.prefix_match:.3f}"
    return (
        f"agreement with {found.precision} (run {found.reference_run_id}, {found.dag_run_id}): "
        f"{same}/{a.compared} requests identical (output_exact_match {a.exact_match:.3f}), "
        f"output_prefix_match {prefix}"
    )
