"""A ``generate()`` streamer that timestamps every decode step of a whole batch.

HF's TextStreamer/TextIteratorStreamer accept batch size 1 only and decode
text on every token. This one does the least possible work per step: read the
clock, keep a reference to the (already host-side) token tensor. Everything
else, including per-sequence EOS handling, happens once after generation.

``generate()`` calls ``put(prompt_ids)`` once before the first forward pass,
then ``put(next_tokens.cpu())`` once per step. The ``.cpu()`` copy is what
makes the timestamp honest on any device: the token exists on the host when
the clock is read. That copy waits for the device, a sync per step. Whether
it costs anything depends on the loop around it:

* HF's loop on CPU and CUDA reads ``unfinished_sequences.max() == 0`` on the
  host every step, a sync of its own: the copy adds nothing measurable
  (docs/performance.md).
* optimum-habana's loop on Gaudi with ``ignore_eos`` (our default) has no
  per-step sync: the host queues step n+1 while the device runs step n. The
  copy takes that away, so a streamed step costs host + device time instead
  of about the larger of the two. ``timing: dual`` and ``timing: events``
  (README "Timing modes", docs/gaudi.md) exist for that case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from transformers.generation.streamers import BaseStreamer

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class SequenceTiming:
    """Arrival time of each output token of one sequence, and their count."""

    token_times: tuple[float, ...]

    @property
    def output_tokens(self) -> int:
        return len(self.token_times)


class TimingStreamer(BaseStreamer):
    """Records one host timestamp per decode step for B sequences.

    Use a fresh instance per ``generate()`` call. ``clock`` is injectable so
    tests can script time.
    """

    __slots__ = ("_clock", "_prompt_seen", "_steps", "_times", "ended")

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._times: list[float] = []
        self._steps: list[Any] = []
        self._prompt_seen = False
        self.ended = False

    def put(self, value: Any) -> None:
        now = self._clock()  # first: the token is on the host right now
        if self._prompt_seen:
            self._times.append(now)
            self._steps.append(value)
        else:  # the prompt ids, pushed before the first forward pass
            self._prompt_seen = True

    def end(self) -> None:
        self.ended = True

    @property
    def steps(self) -> int:
        return len(self._times)

    def token_ids(self, lengths: Collection[int]) -> list[tuple[int, ...]]:
        """The ids each sequence generated, its first ``lengths[b]`` steps
        (after generation: the steps are host tensors already)."""
        if not self._steps:
            return [() for _ in lengths]
        import torch

        columns = torch.stack([step.reshape(-1) for step in self._steps]).T.tolist()
        return [tuple(col[:n]) for col, n in zip(columns, lengths, strict=True)]

    def sequences(
        self, batch_size: int, *, eos_token_ids: Collection[int] = (), stop_at_eos: bool = False
    ) -> list[SequenceTiming]:
        """Per-sequence token times. With ``stop_at_eos`` a sequence ends at
        its first EOS token (counted: it was generated and timed); tokens
        generate() emits for it afterwards are padding, not output."""
        times = tuple(self._times)
        if not times:
            return [SequenceTiming(()) for _ in range(batch_size)]
        if not (stop_at_eos and eos_token_ids):
            return [SequenceTiming(times) for _ in range(batch_size)]
        import torch

        tokens = torch.stack([step.reshape(-1) for step in self._steps])  # (steps, B)
        if tokens.shape[1] != batch_size:
            raise ValueError(f"streamed batch of {tokens.shape[1]} != expected {batch_size}")
        return [SequenceTiming(times[:n]) for n in output_lengths(tokens, eos_token_ids)]


def output_lengths(tokens: Any, eos_token_ids: Collection[int]) -> list[int]:
    """Tokens each sequence generated up to and including its first EOS, from
    a host tensor of shape (steps, batch); all steps where no EOS came."""
    import torch

    is_eos = torch.isin(tokens, torch.tensor(sorted(eos_token_ids), dtype=tokens.dtype))
    hit = is_eos.any(dim=0)
    first = is_eos.int().argmax(dim=0)
    steps = int(tokens.shape[0])
    return [int(first[b]) + 1 if bool(hit[b]) else steps for b in range(tokens.shape[1])]
