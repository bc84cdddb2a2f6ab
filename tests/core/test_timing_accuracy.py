"""Timing accuracy against a model whose delays are known.

The delay model sleeps 40 ms in prefill and 8 ms per decode step and
records the host time each forward pass finished: the moment its token
came into existence. That record is the truth: measured TTFT must be within
2 ms of it (t_send -> end of prefill) and the median ITL within 0.5 ms of
the true gaps, for B=1 and B=4 and with EOS honoured mid-stream. The nominal
delays bound the numbers from below (sleep never undershoots); from above
only loosely, since generate()'s own per-step work is real time too.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest

from bench.backends.hf import HFBackend
from bench.core.config import RunConfig
from bench.core.metrics import request_result
from bench.core.prompts import load_prompt_set
from bench.runner import Plan
from tests.core.delay_model import DelayModel, save_delay_model

PREFILL_MS, DECODE_MS, N_OUT = 40.0, 8.0, 12


def _run(model_dir: Path, batch_size: int, *, stop_at_eos: bool = False):  # type: ignore[no-untyped-def]
    config = RunConfig(
        model=str(model_dir),
        precision="fp32",
        device="cpu",
        batch_size=batch_size,
        max_new_tokens=N_OUT,
        limit=batch_size * 3,
        warmup=0,
        ignore_eos=not stop_at_eos,
    )
    plan = Plan(config, load_prompt_set("default"))
    backend = HFBackend(config)
    backend.load()
    backend.check(plan.measured)
    model: DelayModel = backend.model
    backend.execute(
        plan.warmup or plan.measured[:batch_size], lambda n: None
    )  # warm the code paths
    model.forward_ends.clear()
    records = backend.execute(plan.measured, lambda n: None)
    return records, model.forward_ends


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
    records, forward_ends = _run(delay_dir, batch_size)
    assert len(forward_ends) == 3 * N_OUT  # 3 batches x (prefill + 11 decode steps)
    for batch in range(3):
        truth = forward_ends[batch * N_OUT : (batch + 1) * N_OUT]
        true_gaps_ms = [(b - a) * 1e3 for a, b in itertools.pairwise(truth)]
        for record in records[batch * batch_size : (batch + 1) * batch_size]:
            r = request_result(record)
            assert r.output_tokens == N_OUT and len(r.itl_ms) == N_OUT - 1
            true_ttft_ms = (truth[0] - record.t_send) * 1e3
            assert r.ttft_ms == pytest.approx(true_ttft_ms, abs=2.0)
            assert statistics.median(r.itl_ms) == pytest.approx(
                statistics.median(true_gaps_ms), abs=0.5
            )
            assert r.e2e_ms == pytest.approx(r.ttft_ms + sum(r.itl_ms), abs=1e-6)
            # nominal delays: never below them; generate()'s own per-step work on a
            # loaded CPU can add milliseconds, so the upper bound only catches unit slips
            assert PREFILL_MS <= r.ttft_ms < 2 * PREFILL_MS
            assert DECODE_MS <= statistics.median(r.itl_ms) < 2 * DECODE_MS


@pytest.mark.slow
def test_eos_mid_stream_counts_exact_output_tokens(delay_eos_dir: Path) -> None:
    records, forward_ends = _run(delay_eos_dir, 4, stop_at_eos=True)
    first = records[:4]
    by_slot = [request_result(r) for r in first]
    assert [r.output_tokens for r in by_slot] == [4, N_OUT, 8, N_OUT]
    for record, r in zip(first, by_slot, strict=True):
        assert len(r.itl_ms) == r.output_tokens - 1
        assert r.ttft_ms == pytest.approx((forward_ends[0] - record.t_send) * 1e3, abs=2.0)
        # each sequence ends when its own last token existed, not when the batch ended
        last_true = forward_ends[r.output_tokens - 1]
        assert r.e2e_ms == pytest.approx((last_true - record.t_send) * 1e3, abs=2.0)
    assert by_slot[0].e2e_ms < by_slot[1].e2e_ms - 6 * DECODE_MS
