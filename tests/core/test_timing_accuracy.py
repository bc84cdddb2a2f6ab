"""Timing accuracy against a model whose delays are known.

The delay model sleeps 40 ms in prefill and 8 ms per decode step and records
when each forward pass started and finished. That record is the truth, and
it bounds every timestamp from both sides whatever the machine's load: a
token exists from the end of the forward pass that made it, and generate()
hands it to the streamer before the next pass starts. So each token time must
fall in its window ``[end of its pass, start of the next]`` (a call's last
one closes when the next call starts, or the run ends), for B=1 and B=4 and
with EOS honoured mid-stream. A streamer that read the clock late (on a consumer thread, after
the batch, per decoded text) leaves the window; one that read it early
(before the token existed) falls short of it.

The windows imply the nominal bounds from below (sleep never undershoots):
TTFT >= 40 ms and every ITL gap >= 8 ms, since a gap spans a whole pass.
From above nothing is bounded but the windows: on a loaded 2-core machine
generate()'s own per-step work and the scheduler can stretch a step to
several times its nominal 8 ms, and a correct measurement says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.backends.hf import HFBackend
from bench.core.config import RunConfig
from bench.core.metrics import request_result
from bench.core.prompts import load_prompt_set
from bench.core.records import RequestRecord
from bench.runner import Plan
from tests.core.delay_model import DelayModel, save_delay_model

PREFILL_MS, DECODE_MS, N_OUT, BATCHES = 40.0, 8.0, 12, 3

Window = tuple[float, float]


def _run(
    model_dir: Path, batch_size: int, *, stop_at_eos: bool = False
) -> tuple[list[RequestRecord], list[list[Window]]]:
    """Records of BATCHES generate() calls and, per call, each step's window."""
    config = RunConfig(
        model=str(model_dir),
        precision="fp32",
        device="cpu",
        batch_size=batch_size,
        max_new_tokens=N_OUT,
        limit=batch_size * BATCHES,
        warmup=0,
        ignore_eos=not stop_at_eos,
    )
    plan = Plan(config, load_prompt_set("default"))
    backend = HFBackend(config)
    backend.load()
    backend.check(plan.measured)
    model: DelayModel = backend.model
    backend.execute(plan.measured[:batch_size], lambda n: None)  # warm the code paths
    model.forward_starts.clear()
    model.forward_ends.clear()
    records = backend.execute(plan.measured, lambda n: None)
    done = time.perf_counter()
    starts, ends = model.forward_starts, model.forward_ends
    assert len(starts) == len(ends) == BATCHES * N_OUT  # per call: prefill + 11 decode steps
    # Step i's token can be timed from the end of pass i until pass i+1 starts; the
    # next call's prefill (or the end of the run) closes a call's last window.
    windows = list(zip(ends, [*starts[1:], done], strict=True))
    return records, [windows[b * N_OUT : (b + 1) * N_OUT] for b in range(BATCHES)]


def _assert_timed_in_windows(record: RequestRecord, windows: list[Window]) -> None:
    """Every token time in its step's window; the message names the worst miss."""
    assert len(record.token_times) <= len(windows)
    for step, (t, (lo, hi)) in enumerate(zip(record.token_times, windows, strict=False)):
        assert lo <= t <= hi, (
            f"token {step} timed {(t - lo) * 1e3:+.3f} ms from the end of its pass; "
            f"its window is {(hi - lo) * 1e3:.3f} ms wide"
        )


@pytest.fixture(scope="module")
def delay_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_delay_model(
        tmp_path_factory.mktemp("delay") / "m",
        tiny_model,
        prefill_ms=PREFILL_MS,
        decode_ms=DECODE_MS,
    )


@pytest.fixture(scope="module")
def delay_eos_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # sequence 0 ends at step 3 (4 tokens), sequence 2 at step 7; 1 and 3 run to the limit
    return save_delay_model(
        tmp_path_factory.mktemp("delay_eos") / "m",
        tiny_model,
        prefill_ms=PREFILL_MS,
        decode_ms=DECODE_MS,
        eos_at=[3, None, 7, None],
    )


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 4])
def test_ttft_and_itl_match_the_truth(delay_dir: Path, batch_size: int) -> None:
    records, windows = _run(delay_dir, batch_size)
    assert len(records) == BATCHES * batch_size
    for i, record in enumerate(records):
        r = request_result(record)
        assert r.output_tokens == N_OUT and len(r.itl_ms) == N_OUT - 1
        _assert_timed_in_windows(record, windows[i // batch_size])
        assert r.e2e_ms == pytest.approx(r.ttft_ms + sum(r.itl_ms), abs=1e-6)
        assert r.ttft_ms >= PREFILL_MS and min(r.itl_ms) >= DECODE_MS


@pytest.mark.slow
def test_eos_mid_stream_counts_exact_output_tokens(delay_eos_dir: Path) -> None:
    records, windows = _run(delay_eos_dir, 4, stop_at_eos=True)
    for batch in range(BATCHES):
        in_batch = records[batch * 4 : (batch + 1) * 4]
        by_slot = [request_result(r) for r in in_batch]
        assert [r.output_tokens for r in by_slot] == [4, N_OUT, 8, N_OUT]
        for record, r in zip(in_batch, by_slot, strict=True):
            assert len(r.itl_ms) == r.output_tokens - 1
            # each sequence ends when its own last token existed, not when the batch ended
            _assert_timed_in_windows(record, windows[batch])
        # 8 more passes of >= 8 ms each separate sequence 0's end from sequence 1's
        assert by_slot[0].e2e_ms <= by_slot[1].e2e_ms - 8 * DECODE_MS
