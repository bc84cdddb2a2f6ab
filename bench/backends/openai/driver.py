"""The load driver: sends requests when the load shape says so.

Closed loop: ``concurrency`` clients, each sending its next request when its
last one finished. Open loop: arrivals on the shape's seeded schedule,
optionally capped at ``max_concurrency`` in flight (waiting for a slot is
client-side queueing: the request's clock starts when it really goes out,
inside ``send``). Either way ``max_duration_s`` stops *issuing* requests
that late into the phase; requests in flight finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bench.backends.openai.loadgen import LoadShape

R = TypeVar("R")


async def drive(
    requests: Sequence[R], shape: LoadShape, send: Callable[[R], Awaitable[None]]
) -> None:
    """Issue ``requests`` in order under ``shape``; ``send`` does one request."""
    start = time.perf_counter()
    deadline = start + shape.max_duration_s if shape.max_duration_s is not None else None

    def too_late() -> bool:
        return deadline is not None and time.perf_counter() >= deadline

    if not shape.open_loop:
        pending = iter(requests)

        async def client() -> None:
            for request in pending:
                if too_late():
                    return
                await send(request)

        await asyncio.gather(*(client() for _ in range(min(shape.concurrency, len(requests)))))
        return

    limit = asyncio.Semaphore(shape.max_concurrency) if shape.max_concurrency else None

    async def arrive(request: R) -> None:
        if limit is None:
            await send(request)
            return
        async with limit:
            if not too_late():
                await send(request)

    tasks = []
    for request, offset in zip(requests, shape.schedule(len(requests)).tolist(), strict=True):
        delay = start + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if too_late():
            break
        tasks.append(asyncio.create_task(arrive(request)))
    await asyncio.gather(*tasks)


__all__ = ["drive"]
