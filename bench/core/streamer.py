"""A ``generate()`` streamer that timestamps every decode step of a whole batch.

HF's TextStreamer/TextIteratorStreamer accept batch size 1 only and decode
text on every token. This one does the least possible work per step: read the
clock, keep a reference to the (already host-side) token tensor. Everything
else, including per-sequence EOS handling, happens once after generation.

``generate()`` calls ``put(prompt_ids)`` once before the first forward pass,
then ``put(next_tokens.cpu())`` once per step. The ``.cpu()`` copy is what
makes the timestamp honest on any device: the token exists on the host when
the clock is read (a device sync per step, which generate pays anyway to
check its stopping criteria).
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
        is_eos = torch.isin(tokens, torch.tensor(sorted(eos_token_ids), dtype=tokens.dtype))
        hit = is_eos.any(dim=0)
        first = is_eos.int().argmax(dim=0)
        return [
            SequenceTiming(times[: int(first[b]) + 1] if bool(hit[b]) else times)
            for b in range(batch_size)
        ]
