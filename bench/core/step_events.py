"""Token times from device events: no host sync per decode step.

``timing: events`` records one device timing event per decode step
(``torch.cuda.Event`` on CUDA, ``habana_frameworks.torch.hpu.Event`` on
Gaudi) and reads them all once generation is over. Recording an event only
enqueues a marker behind the step's work on the device stream, so the host
keeps running ahead of the device as it does in a bare ``generate()``; the
streamer's ``.cpu()`` per step would make it wait.

The hook is a stopping criterion that never stops (:class:`StepEvents`):
both HF's and optimum-habana's sampling loops call their stopping criteria
once per step, after the step's token was written into ``input_ids``. It
returns the Python ``False``, which optimum-habana with ``ignore_eos`` ORs
into a host-side bool, and HF ORs into its device tensor: neither reads a
device value because of it. It has no ``eos_token_id`` attribute, which
optimum-habana takes as "an EOS criterion is installed".

Device times become host times through an anchor event recorded right after
the host clock is read at send time, on an idle device (the previous batch
ended with a sync): token *i* arrived at ``t_send + anchor.elapsed_time(e_i)``.
What this measures is when the device finished the step, not when the host
could have read the token: it excludes the device-to-host copy the streamer
pays (microseconds for a batch of token ids).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from transformers import StoppingCriteria

from bench.core.streamer import Clock


class TimingEvent(Protocol):
    """What CUDA's and Habana's events have in common (times in ms)."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_time(self, end_event: Any) -> float: ...


#: Builds a fresh timing event on the run's device.
EventFactory = Callable[[], TimingEvent]


class StepEvents(StoppingCriteria):
    """Records the next preallocated event each decode step; never stops."""

    def __init__(
        self, new_event: EventFactory, steps: int, flush: Callable[[], None] | None
    ) -> None:
        self._new_event = new_event
        self._events = [new_event() for _ in range(steps)]
        self._flush = flush
        self.steps = 0

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        if self._flush is not None:  # lazy mode: launch the step's queued ops first
            self._flush()
        if self.steps == len(self._events):  # more steps than announced: never in our runs
            self._events.append(self._new_event())
        self._events[self.steps].record()
        self.steps += 1
        return False

    @property
    def recorded(self) -> list[TimingEvent]:
        return self._events[: self.steps]


class EventTimeline:
    """One generate() call timed by device events.

    Build it before the send time (events are allocated up front, outside the
    timed loop), call :meth:`start` to take the send time, pass
    :attr:`criterion` to generate(), then :meth:`token_times` after it.
    ``flush`` is Habana's ``mark_step`` in lazy mode (ops are queued until
    then), None elsewhere.
    """

    def __init__(
        self, new_event: EventFactory, steps: int, flush: Callable[[], None] | None = None
    ) -> None:
        self._anchor = new_event()
        self._flush = flush
        self.criterion = StepEvents(new_event, steps, flush)

    def start(self, clock: Clock) -> float:
        """The send time on the host clock, anchored on the device clock."""
        t_send = clock()
        self._anchor.record()
        if self._flush is not None:
            self._flush()
        return t_send

    def token_times(self, t_send: float) -> tuple[float, ...]:
        """Host-clock time of each step; waits for the last event (one sync)."""
        events = self.criterion.recorded
        if not events:
            return ()
        if self._flush is not None:
            self._flush()
        events[-1].synchronize()
        return tuple(t_send + self._anchor.elapsed_time(e) / 1e3 for e in events)
