"""How much the openai backend's client costs, next to bare streaming loops.

A zero-latency stub (its own process, its own core, raw asyncio HTTP/1.1 with
chunked SSE like vLLM's) streams N content events per request. On the other
core, three clients run the same closed loop side by side, interleaved over
several rounds:

* ``ours``          bench.backends.openai.OpenAIBackend.execute() (records and all)
* ``plain aiohttp`` a minimal aiohttp loop: post, read, split events, json.loads
* ``plain httpx``   the same loop on httpx

Burst mode (the stub writes each response at once) gives the highest
sustained request rate and streamed events/s of each client on one core.
Paced mode (an event every ``--gap-ms`` on each stream, stamped with the
stub's CLOCK_MONOTONIC send time) gives the timestamp error: arrival time
recorded by the client minus the send time, which includes the loopback
hop and event-loop wake-up; ``ours - plain`` is what our client adds.

Run: ``.venv/bin/python benchmarks/client_overhead.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backends.base import Request
from bench.backends.openai.backend import OpenAIBackend
from bench.core.config import RunConfig
from bench.core.prompts import Prompt

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
MODELS = b'{"object":"list","data":[]}'


# -- the stub ------------------------------------------------------------------------------


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(text: str) -> bytes:
    obj = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": None}],
    }
    return _chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")


def _tail(n: int) -> bytes:
    usage = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 8, "completion_tokens": n},
    }
    return (
        _chunk(b"data: " + json.dumps(usage).encode() + b"\n\n")
        + _chunk(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )


async def _serve(port_out: Any, tokens: int, gap_s: float | None) -> None:
    burst = HEAD + b"".join(_event(" tok") for _ in range(tokens)) + _tail(tokens)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(MODELS), MODELS)
                    )
                elif gap_s is None:
                    writer.write(burst)
                else:
                    writer.write(HEAD)
                    for _ in range(tokens):
                        await asyncio.sleep(gap_s)
                        # space-terminated: stamps that share a read stay apart
                        writer.write(_event(f"{time.perf_counter():.9f} "))
                    writer.write(_tail(tokens))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port_out.send(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _stub_main(port_out: Any, tokens: int, gap_s: float | None, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(_serve(port_out, tokens, gap_s))


def start_stub(
    tokens: int, gap_s: float | None, cpu: int | None
) -> tuple[multiprocessing.Process, str]:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_stub_main, args=(child, tokens, gap_s, cpu), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{parent.recv()}/v1"


# -- the clients ---------------------------------------------------------------------------

#: Per request, its content events: (arrival time, text). Ours through
#: execute() gives one entry per token (its records' count, from usage).
Trace = list[Sequence[Any]]


def _parse(buf: bytes, now: float, out: list[tuple[float, str]]) -> bytes:
    *events, rest = buf.split(b"\n\n")
    for event in events:
        payload = event[6:]
        if payload == b"[DONE]":
            continue
        choices = json.loads(payload).get("choices")
        if choices and choices[0].get("text"):
            out.append((now, choices[0]["text"]))
    return rest


def _body(tokens: int) -> bytes:
    return json.dumps({"model": "m", "prompt": "hi", "max_tokens": tokens, "stream": True}).encode()


async def _closed_loop(n: int, concurrency: int, one: Callable[[], Any]) -> None:
    pending = iter(range(n))

    async def worker() -> None:
        for _ in pending:
            await one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def plain_aiohttp(url: str, n: int, concurrency: int, tokens: int) -> Trace:
    import aiohttp

    trace: Trace = []

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            body = _body(tokens)

            async def one() -> None:
                events: list[tuple[float, str]] = []
                async with session.post(
                    url + "/completions", data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    buf = b""
                    async for data in resp.content.iter_any():
                        buf = _parse(buf + data, time.perf_counter(), events)
                trace.append(events)

            await _closed_loop(n, concurrency, one)

    asyncio.run(main())
    return trace


def plain_httpx(url: str, n: int, concurrency: int, tokens: int) -> Trace:
    import httpx

    trace: Trace = []

    async def main() -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=600) as client:
            body = _body(tokens)

            async def one() -> None:
                events: list[tuple[float, str]] = []
                async with client.stream(
                    "POST",
                    url + "/completions",
                    content=body,
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    buf = b""
                    async for data in resp.aiter_raw():
                        buf = _parse(buf + data, time.perf_counter(), events)
                trace.append(events)

            await _closed_loop(n, concurrency, one)

    asyncio.run(main())
    return trace


def ours(url: str, n: int, concurrency: int, tokens: int, *, texts: bool = False) -> Trace:
    config = RunConfig(
        model="m",
        backend="openai",
        device="cpu",
        precision="fp32",
        concurrency=concurrency,
        max_new_tokens=tokens,
        options={"base_url": url, "tokenizer": "none"},
    )
    backend = OpenAIBackend(config)
    backend.load()
    try:
        requests = [Request(i, Prompt(text="hi")) for i in range(n)]
        backend.check(requests)
        if not texts:  # what the runner calls
            records = backend.execute(requests, lambda k: None)
            return [range(r.output_tokens) for r in records if r.success]
        # Paced mode needs each event's text (the stub's send stamp) beside its
        # arrival time: the same streaming coroutine, read one level down. A
        # chunk is one network read; its stamps all arrived at its time.
        assert backend._loop is not None
        streams = backend._loop.run_until_complete(backend._run(requests, lambda k: None))
        return [
            [
                (t, stamp)
                for t, part in zip(s.token_times, s.parts, strict=True)
                for stamp in part.split()
            ]
            for _, s in streams
        ]
    finally:
        backend.close()


CLIENTS: dict[str, Callable[[str, int, int, int], Trace]] = {
    "ours": ours,
    "plain aiohttp": plain_aiohttp,
    "plain httpx": plain_httpx,
}


# -- measurements ----------------------------------------------------------------------------


def burst(args: argparse.Namespace, cpus: tuple[int | None, int | None]) -> dict[str, float]:
    """Client CPU seconds per request (process time: robust to a busy
    machine, unlike wall time) -> requests/s one core sustains."""
    proc, url = start_stub(args.tokens, None, cpus[1])
    cpu: dict[str, list[float]] = {name: [] for name in CLIENTS}
    wall: dict[str, list[float]] = {name: [] for name in CLIENTS}
    try:
        for client in CLIENTS.values():  # warm up imports and code paths
            client(url, 50, args.concurrency, args.tokens)
        for _ in range(args.rounds):
            for name, client in CLIENTS.items():
                c0, t0 = time.process_time(), time.perf_counter()
                trace = client(url, args.requests, args.concurrency, args.tokens)
                cpu[name].append((time.process_time() - c0) / args.requests)
                wall[name].append(args.requests / (time.perf_counter() - t0))
                assert len(trace) == args.requests and all(
                    len(ev) == args.tokens for ev in trace
                ), name
    finally:
        proc.terminate()
    capacity = {name: 1.0 / statistics.median(c) for name, c in cpu.items()}
    print(
        f"\nburst: {args.requests} requests x {args.tokens} events, closed loop c={args.concurrency}, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(
        f"{'client':<15}{'cpu us/req':>11}{'req/s/core':>12}{'events/s/core':>15}{'wall req/s':>12}{'vs plain aiohttp':>18}"
    )
    for name, rate in capacity.items():
        print(
            f"{name:<15}{1e6 / rate:>11.0f}{rate:>12.0f}{rate * args.tokens:>15.0f}"
            f"{statistics.median(wall[name]):>12.0f}{rate / capacity['plain aiohttp']:>17.2f}x"
        )
    return capacity


def paced(args: argparse.Namespace, cpus: tuple[int | None, int | None]) -> None:
    proc, url = start_stub(args.paced_tokens, args.gap_ms / 1e3, cpus[1])
    clients: dict[str, Callable[[str, int, int, int], Trace]] = {
        "ours": lambda *a: ours(*a, texts=True),
        "plain aiohttp": plain_aiohttp,
    }
    errors: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for _ in range(args.rounds):
            for name, client in clients.items():
                trace = client(url, args.paced_requests, args.paced_concurrency, args.paced_tokens)
                errors[name] += [
                    (arrival - float(text)) * 1e6 for events in trace for arrival, text in events
                ]
    finally:
        proc.terminate()
    rate = args.paced_concurrency * 1e3 / args.gap_ms
    print(
        f"\npaced: c={args.paced_concurrency} streams, an event every {args.gap_ms:g} ms each "
        f"(~{rate:.0f} events/s); arrival - send, microseconds"
    )
    print(f"{'client':<15}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}")
    for name, values in errors.items():
        q = statistics.quantiles(values, n=100)
        print(f"{name:<15}{q[49]:>8.0f}{q[89]:>8.0f}{q[98]:>8.0f}{max(values):>9.0f}")
    added = statistics.median(errors["ours"]) - statistics.median(errors["plain aiohttp"])
    print(f"median timestamp error our client adds over the plain loop: {added:.0f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=64, help="events per response")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced-requests", type=int, default=64)
    parser.add_argument("--paced-tokens", type=int, default=32)
    parser.add_argument("--paced-concurrency", type=int, default=16)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    args = parser.parse_args()
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cpus: tuple[int | None, int | None] = (
        (available[0], available[1]) if len(available) >= 2 else (None, None)
    )
    if cpus[0] is not None:
        os.sched_setaffinity(0, {cpus[0]})
    print(f"client on cpu {cpus[0]}, stub on cpu {cpus[1]}; python {sys.version.split()[0]}")
    capacity = burst(args, cpus)
    paced(args, cpus)
    ratio = capacity["ours"] / capacity["plain aiohttp"]
    print(f"\nours / plain aiohttp (requests per core-second): {ratio:.2f}  (target >= 0.90)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
