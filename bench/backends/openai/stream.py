"""One streamed request, timed: the measured hot path.

Timing, on the runner's clock (``time.perf_counter``):

* ``t_send`` is taken before the request is handed to the HTTP client;
* a token time is the arrival of a **network read** that holds at least one
  event whose choice carries non-empty text. The role-only first chunk chat
  servers send before prefill, empty keep-alive deltas and the trailing usage
  chunk carry no token, so they never start TTFT (vLLM's chat client starts
  it at the role chunk, which makes TTFT one network round trip whatever the
  model does);
* events that arrive in one read share that read's time: the client cannot
  see when the server produced each, only when they reached it. They are
  merged into one chunk (one time, their texts joined), so a server or
  transport that coalesces writes (``transformers serve`` 5.x: about half of
  its completions events) yields fewer, longer gaps instead of gaps of 0.00 ms
  that are no token's time. Token counts are kept apart (``events``, usage).

One ``perf_counter`` and one UTF-8 decode per read; events are parsed from
``str`` (``json.loads`` on bytes would sniff the encoding of every event).
A request that fails in any way (HTTP status, error event, dropped
connection, timeout) returns its :class:`Stream` with ``error`` set.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.backends.openai.sse import SSEDecoder

if TYPE_CHECKING:
    import aiohttp

ERROR_TEXT_LIMIT = 300
_loads = json.JSONDecoder().decode


@dataclass(slots=True)
class Stream:
    """What one request collected (mutable while it streams)."""

    t_send: float
    #: arrival of each network read that carried content
    token_times: list[float] = field(default_factory=list)
    #: the text each of those reads carried
    parts: list[str] = field(default_factory=list)
    #: content events (each carries at least one token)
    events: int = 0
    usage_out: int | None = None
    usage_in: int | None = None
    #: the HTTP status, None when no response came
    status: int | None = None
    error: str | None = None
    #: the server's ``Server`` header
    server: str | None = None


class StreamReader:
    """Posts a body and reads its event stream; ``choice_text`` is the
    endpoint's chunk reader."""

    __slots__ = ("_choice_text", "_session", "_timeout_s")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        choice_text: Callable[[Mapping[str, Any]], Any],
        timeout_s: float,
    ) -> None:
        self._session = session
        self._choice_text = choice_text
        self._timeout_s = timeout_s

    async def __call__(self, url: str, body: bytes) -> Stream:
        stream = Stream(time.perf_counter())
        try:
            async with self._session.post(url, data=body) as resp:
                stream.status = resp.status
                stream.server = resp.headers.get("Server")
                if resp.status != 200:
                    stream.error = f"HTTP {resp.status}: {error_text(await resp.read())}"
                    return stream
                decoder = SSEDecoder()
                utf8 = codecs.getincrementaldecoder("utf-8")("replace").decode
                read = resp.content.readany
                take = self._take
                while data := await read():
                    if not take(stream, decoder.feed(utf8(data)), time.perf_counter()):
                        return stream
                take(stream, decoder.flush(), time.perf_counter())
        except asyncio.TimeoutError:
            stream.error = f"timeout: response not complete after {self._timeout_s:g} s"
        except Exception as exc:  # a request's failure is data, never the run's end
            stream.error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
        return stream

    def _take(self, stream: Stream, events: list[str], now: float) -> bool:
        """Apply one read's events; False stops reading (an error)."""
        texts: list[str] = []
        ok = True
        for data in events:
            if data == "[DONE]":
                continue
            try:
                obj = _loads(data)
            except ValueError:
                stream.error = f"malformed stream event: {data[:120]!r}"
                ok = False
                break
            if type(obj) is not dict:
                continue
            choices = obj.get("choices")
            if choices:
                text = self._choice_text(choices[0])
                if text and type(text) is str:
                    texts.append(text)
            elif obj.get("error") is not None:
                stream.error = f"error event mid-stream: {error_message(obj['error'])}"
                ok = False
                break
            usage = obj.get("usage")
            if usage:
                stream.usage_out = usage.get("completion_tokens", stream.usage_out)
                stream.usage_in = usage.get("prompt_tokens", stream.usage_in)
        if texts:  # kept even when a later event of the read was an error
            stream.token_times.append(now)
            stream.parts.append(texts[0] if len(texts) == 1 else "".join(texts))
            stream.events += len(texts)
        return ok


def error_message(error: Any) -> str:
    """The human part of an OpenAI-style error object (dict or string)."""
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("detail") or json.dumps(error)
    return " ".join(str(error).split())[:ERROR_TEXT_LIMIT]


def error_text(body: bytes) -> str:
    """An error response body reduced to one readable line."""
    try:
        obj = json.loads(body)
    except ValueError:
        return (
            " ".join(body.decode("utf-8", "replace").split())[:ERROR_TEXT_LIMIT] or "(empty body)"
        )
    if isinstance(obj, Mapping):
        for key in ("error", "detail", "message"):
            if obj.get(key) is not None:
                return error_message(obj[key])
    return error_message(obj)


__all__ = ["Stream", "StreamReader", "error_message", "error_text"]
