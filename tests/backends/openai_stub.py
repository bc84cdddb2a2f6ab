"""A scripted OpenAI-compatible streaming server for the openai backend's tests.

Run as a subprocess (``python -m tests.backends.openai_stub``) so its timing
never shares a GIL with the client under test; it prints its port and serves
until terminated.

A request whose prompt (completions) or last message (chat) is
``SCRIPT:<json list of steps>`` is answered by that script; steps are timed
from the moment the request arrived (absolute offsets, so sleeps don't drift):

  {"status": 429, "body": {...}}   (first step only) answer with this status
  {"at": s, "role": true}          chat: role-only delta; completions: empty text
  {"at": s, "text": "Hi"}          a content chunk
  {"at": s, "texts": ["a", "b"]}   several content chunks in one write
  {"at": s, "empty": true}         a chunk with empty content
  {"at": s, "usage": [p, c]}       usage chunk (prompt, completion tokens), no choices
  {"at": s, "done": true}          data: [DONE]
  {"at": s, "error": "boom"}       vLLM-style error event
  {"at": s, "raw": "..."}          these bytes as they are
  {"at": s, "abort": true}         drop the connection mid-stream
  {"at": s, "hang": true}          stop answering (until the client gives up)

Any other prompt gets ``max_tokens`` one-word chunks, then usage and [DONE].
``GET /_log`` returns every request's path, JSON body, Authorization header
and ``sent``: the ``time.perf_counter()`` (CLOCK_MONOTONIC, shared by all
processes of the host) at which each content chunk was written.

Path segments before ``/v1`` switch behaviours on, in any combination, so one
stub plays several servers (``/strict/chat-only/no-usage/v1`` is
``transformers serve`` 4.55):

  /auth       demand ``Authorization: Bearer <--key>``
  /strict     HTTP 422 for body fields outside OpenAI's API (``ignore_eos``...)
  /chat-only  no ``/completions`` route (HTTP 404)
  /no-usage   never send ``usage``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.procs import stop

SCRIPT_PREFIX = "SCRIPT:"
REPO = Path(__file__).resolve().parents[2]

# TTFT includes the request's trip to the server; ITL is measured between two
# client-side arrivals, so medians match the script tightly. Single values get
# more room: the test machine is shared and a scheduler hiccup on either side
# (stub or client) moves one timestamp by several ms.
TTFT_SLACK_MS = 20.0
ITL_SLACK_MS = 5.0
ONE_VALUE_SLACK_MS = 10.0

#: Role-only chunk at 0, an empty delta at 50 ms, tokens at 100/130/160 ms.
SCRIPT = [
    {"at": 0.0, "role": True},
    {"at": 0.05, "empty": True},
    {"at": 0.10, "text": "Hel"},
    {"at": 0.13, "text": "lo"},
    {"at": 0.16, "text": "!"},
    {"at": 0.16, "usage": [7, 3]},
    {"at": 0.16, "done": True},
]


def script_prompt(steps: list[dict[str, Any]]) -> str:
    return SCRIPT_PREFIX + json.dumps(steps, separators=(",", ":"))


def _chunk(chat: bool, text: str | None, *, role: bool = False) -> bytes:
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if role else {"content": text}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": "" if role else text, "finish_reason": None}
        obj = "text_completion"
    event = {"id": "stub-1", "object": obj, "model": "stub", "choices": [choice]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _usage(prompt_tokens: int, completion_tokens: int) -> bytes:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    event = {"id": "stub-1", "object": "chunk", "model": "stub", "choices": [], "usage": usage}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


#: The body fields a /strict server accepts: OpenAI's own.
OPENAI_FIELDS = frozenset(
    {
        "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "stream",
        "stream_options", "temperature", "top_p", "seed", "stop", "n", "logprobs", "user",
        "presence_penalty", "frequency_penalty",
    }
)  # fmt: skip


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        content = body["messages"][-1].get("content", "")
        return content if isinstance(content, str) else ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else ""


def _default_script(body: dict[str, Any]) -> list[dict[str, Any]]:
    n = int(body.get("max_tokens") or 16)
    steps: list[dict[str, Any]] = [{"at": 0.0, "role": True}]
    steps += [{"at": 0.0, "text": " tok"} for _ in range(n)]
    steps += [{"at": 0.0, "usage": [5, n]}, {"at": 0.0, "done": True}]
    return steps


class Stub:
    def __init__(self, key: str | None) -> None:
        self.key = key
        self.log: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_log", self.show_log)
        app.router.add_get("/version", self.version)  # vLLM's version endpoint
        app.router.add_route("*", "/{path:.*}", self.route)
        return app

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.0-stub"})

    async def route(self, request: web.Request) -> web.StreamResponse:
        modes, sep, api = request.path.partition("/v1/")
        modes_set = set(modes.strip("/").split("/")) if sep else set()
        if "auth" in modes_set and request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if request.method == "POST" and (
            api == "chat/completions" or (api == "completions" and "chat-only" not in modes_set)
        ):
            return await self.complete(request, modes_set)
        return web.json_response({"detail": "Not Found"}, status=404)

    async def show_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def complete(self, request: web.Request, modes: set[str]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        body = await request.json()
        entry: dict[str, Any] = {
            "path": request.path,
            "body": body,
            "authorization": request.headers.get("Authorization"),
            "sent": [],
        }
        self.log.append(entry)
        unknown = set(body) - OPENAI_FIELDS
        if "strict" in modes and unknown:
            detail = f"Unexpected keys in the request: {sorted(unknown)}"
            return web.json_response({"detail": detail}, status=422)
        chat = request.path.endswith("/chat/completions")
        text = _prompt_text(body)
        steps = (
            json.loads(text[len(SCRIPT_PREFIX) :])
            if text.startswith(SCRIPT_PREFIX)
            else _default_script(body)
        )
        if steps and "status" in steps[0]:
            return web.json_response(steps[0].get("body", {}), status=steps[0]["status"])
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        for step in steps:
            delay = t0 + float(step.get("at", 0.0)) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if step.get("hang"):
                await asyncio.sleep(3600)
            if step.get("abort"):
                assert request.transport is not None
                request.transport.close()
                return resp
            if step.get("role"):
                data = _chunk(chat, None, role=True)
            elif "text" in step:
                data = _chunk(chat, step["text"])
                entry["sent"].append(time.perf_counter())
            elif "texts" in step:
                data = b"".join(_chunk(chat, text) for text in step["texts"])
                entry["sent"] += [time.perf_counter()] * len(step["texts"])
            elif step.get("empty"):
                data = _chunk(chat, "")
            elif "usage" in step:
                if "no-usage" in modes:
                    continue
                data = _usage(*step["usage"])
            elif step.get("done"):
                data = b"data: [DONE]\n\n"
            elif "error" in step:
                data = (
                    b"data: "
                    + json.dumps({"error": {"message": step["error"], "code": 500}}).encode()
                    + b"\n\n"
                )
            else:
                data = step["raw"].encode()
            await resp.write(data)
        await resp.write_eof()
        return resp


async def _serve(key: str | None) -> None:
    runner = web.AppRunner(Stub(key).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    print(server.sockets[0].getsockname()[1], flush=True)  # type: ignore[attr-defined]
    await asyncio.Event().wait()


@contextlib.contextmanager
def run_stub(key: str | None = None) -> Iterator[str]:
    """Start the stub in a subprocess; yield ``http://127.0.0.1:PORT``."""
    cmd = [sys.executable, "-m", "tests.backends.openai_stub"] + (["--key", key] if key else [])
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"openai stub did not start (exit {proc.poll()})")
        yield f"http://127.0.0.1:{line}"
    finally:
        stop(proc, 10)


def fetch_log(url: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(url + "/_log", timeout=10) as resp:
        return list(json.loads(resp.read()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--key")
    asyncio.run(_serve(parser.parse_args().key))
