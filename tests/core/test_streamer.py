"""The timing streamer on a scripted clock: exact timestamps, per-sequence EOS."""

from __future__ import annotations

import itertools

import torch

from bench.core.streamer import TimingStreamer


def scripted(times: list[float]):  # type: ignore[no-untyped-def]
    it = iter(times)
    return lambda: next(it)


def test_prompt_push_is_not_a_token_and_each_step_is_timed_once() -> None:
    streamer = TimingStreamer(scripted([0.0, 0.5, 0.6, 0.75]))
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt, before the first forward
    for tok in (7, 8, 9):
        streamer.put(torch.tensor([tok]))
    streamer.end()
    assert streamer.ended and streamer.steps == 3
    (seq,) = streamer.sequences(1)
    assert seq.token_times == (0.5, 0.6, 0.75) and seq.output_tokens == 3


def test_batch_of_four_shares_step_times_without_eos() -> None:
    clock = itertools.count(start=1.0, step=0.25).__next__
    streamer = TimingStreamer(clock)
    streamer.put(torch.zeros(4, 5, dtype=torch.long))
    for _ in range(6):
        streamer.put(torch.tensor([2, 2, 3, 3]))  # EOS (2) present but ignored
    seqs = streamer.sequences(4, eos_token_ids={2}, stop_at_eos=False)
    assert [s.output_tokens for s in seqs] == [6, 6, 6, 6]
    assert seqs[0].token_times == (1.25, 1.5, 1.75, 2.0, 2.25, 2.5)  # 1.0 went to the prompt


def test_stop_at_eos_cuts_each_sequence_at_its_first_eos() -> None:
    streamer = TimingStreamer(scripted([0.0, 1.0, 2.0, 3.0, 4.0]))
    streamer.put(torch.zeros(3, 2, dtype=torch.long))
    # step:        0          1          2          3
    # seq0: 5 EOS pad..   seq1: 5 6 7 8   seq2: EOS at step 0 (one-token output)
    for step in ([5, 5, 9], [9, 6, 0], [0, 7, 0], [0, 8, 0]):
        streamer.put(torch.tensor(step))
    seqs = streamer.sequences(3, eos_token_ids={9}, stop_at_eos=True)
    assert [s.output_tokens for s in seqs] == [2, 4, 1]
    assert seqs[0].token_times == (1.0, 2.0)
    assert seqs[1].token_times == (1.0, 2.0, 3.0, 4.0)
    assert seqs[2].token_times == (1.0,)


def test_no_steps_means_no_tokens() -> None:
    streamer = TimingStreamer(scripted([0.0]))
    streamer.put(torch.zeros(2, 3, dtype=torch.long))
    assert [s.output_tokens for s in streamer.sequences(2)] == [0, 0]


def test_generated_ids_per_sequence_after_generation() -> None:
    streamer = TimingStreamer(scripted([0.0, 1.0, 2.0, 3.0]))
    streamer.put(torch.zeros(2, 4, dtype=torch.long))
    for step in ([5, 9], [6, 0], [7, 0]):
        streamer.put(torch.tensor(step))
    assert streamer.token_ids([3, 1]) == [(5, 6, 7), (9,)]  # cut at each sequence's length
    assert TimingStreamer(scripted([0.0])).token_ids([0, 0]) == [(), ()]
