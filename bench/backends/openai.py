"""``openai``: streaming requests to an OpenAI-compatible HTTP endpoint.

Benchmarks what Gaudi (and GPU) teams actually serve with: vLLM, TGI, SGLang,
``transformers serve``, behind ``/v1/completions`` or ``/v1/chat/completions``
with ``"stream": true`` (server-sent events).

Timing, per request, on the runner's clock (``time.perf_counter``):

* ``t_send`` is taken before the request is handed to the HTTP client;
* a token time is the arrival of a network read holding an event whose
  choice carries **non-empty** text (``text`` for completions,
  ``delta.content``, or a reasoning delta, for chat). The role-only first
  chunk that chat servers send before any token, empty keep-alive deltas and
  the trailing usage chunk carry no token, so they never start TTFT;
  counting them is a classic bug that makes TTFT look like a network RTT;
* ``output_tokens`` comes from the stream's ``usage`` (``stream_options:
  include_usage``) when the server sends one, else from the tokenizer over the
  streamed text, else one per content chunk; ``input_tokens`` likewise.

A request that fails in any way (HTTP status, 429, error event mid-stream,
dropped connection, timeout, empty stream) becomes a record with
``success=False`` and the error text; only setup problems raise.

Why aiohttp: it streams the body with one reusable buffer and costs little
per chunk; ``benchmarks/client_overhead.py`` measures this client against a
bare aiohttp loop and a bare httpx loop on one core.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from bench.backends.base import BackendInfo, OptionSpec, Progress, Request
from bench.config import RunConfig, canonical_json
from bench.errors import ConfigError, ModelLoadError
from bench.loadgen import LoadShape
from bench.prompts import Prompt
from bench.records import RequestRecord

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

ENDPOINTS: dict[str, str] = {"completions": "/completions", "chat": "/chat/completions"}
_PROBE_TIMEOUT_S = 10.0
_ERROR_TEXT_LIMIT = 300
_NO_DELTA: Mapping[str, Any] = {}
_loads = json.JSONDecoder().decode


class OpenAIBackend:
    """Concurrent streaming HTTP requests shaped by :class:`~bench.loadgen.LoadShape`."""

    name: ClassVar[str] = "openai"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {
        "base_url": OptionSpec(
            str, None, "API root including the version prefix, e.g. http://host:8000/v1 (required)"
        ),
        "endpoint": OptionSpec(
            str, "completions", "completions (prompt text) or chat (messages)", tuple(ENDPOINTS)
        ),
        "api_key_env": OptionSpec(
            str,
            "OPENAI_API_KEY",
            "environment variable holding the API key (sent as a Bearer token, never logged)",
            fingerprint=False,
        ),
        "served_model": OptionSpec(
            str, None, "model name sent in requests (default: the config's model)"
        ),
        "tokenizer": OptionSpec(
            str,
            None,
            "tokenizer directory or hub id, to count tokens when the server sends no usage "
            "(default: the model path; 'none': count content chunks)",
        ),
        # Campaign options are shared by every matrix point: a closed-loop
        # point (concurrency) ignores these two.
        "burstiness": OptionSpec(
            float, 1.0, "open loop: gamma shape of arrival gaps (1 = Poisson, <1 burstier)"
        ),
        "max_concurrency": OptionSpec(
            int, None, "open loop: most requests in flight (default: unbounded)"
        ),
        "request_timeout_s": OptionSpec(
            float, 600.0, "a request not finished after this many seconds fails", fingerprint=False
        ),
        "max_duration_s": OptionSpec(
            float, None, "stop issuing new requests after this many seconds"
        ),
        "send_ignore_eos": OptionSpec(
            bool,
            True,
            "when the run ignores EOS, send vLLM's ignore_eos and min_tokens; false for servers "
            "that reject unknown fields (transformers serve answers 422)",
        ),
        "include_usage": OptionSpec(
            bool, True, "ask for token usage in the stream (stream_options)"
        ),
        "temperature": OptionSpec(
            float, None, "sampling temperature sent (default: the server's; 0 = greedy)"
        ),
        "extra_body": OptionSpec(
            Mapping, None, 'JSON fields merged into every request body, e.g. {"top_k": 1}'
        ),
    }

    # -- validation (also called by bench.backends.validate_config) ----------------------

    @classmethod
    def validate(cls, config: RunConfig) -> None:
        """Checks that need more than one option at a time."""
        opts = config.options
        base_url = opts.get("base_url")
        if not base_url:
            raise ConfigError("the openai backend needs base_url (--base-url http://host:8000/v1)")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"base_url must be an http(s) URL like http://host:8000/v1, got {redact_url(base_url)!r}"
            )
        for key in ("request_timeout_s", "max_duration_s", "burstiness", "max_concurrency"):
            value = opts.get(key)
            if value is not None and not value > 0:
                raise ConfigError(f"openai option {key!r} must be positive, got {value!r}")
        if "stream" in (opts.get("extra_body") or {}):
            raise ConfigError(
                "extra_body cannot change 'stream': this backend measures streamed tokens"
            )
        load_shape(config)

    # -- Backend protocol -----------------------------------------------------------------

    def __init__(self, config: RunConfig) -> None:
        self.validate(config)
        self.config = config
        opts = config.options
        self.chat = opts.get("endpoint", "completions") == "chat"
        self.base = api_base(str(opts["base_url"]))
        self.url = self.base + ENDPOINTS["chat" if self.chat else "completions"]
        self.shape = load_shape(config)
        self.timeout_s = float(
            opts.get("request_timeout_s", self.OPTIONS["request_timeout_s"].default)
        )
        self.model_name = str(opts.get("served_model") or config.model)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tokenizer: Any = None
        self._payloads: dict[str, bytes] = {}
        self._prompt_tokens: dict[str, int] = {}
        self._server: str | None = None

    def load(self) -> None:
        """Open the HTTP session on a private event loop and probe the endpoint.

        The loop and its keep-alive connections live until :meth:`close`, so
        the measured phase reuses the connections the warmup opened.
        """
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        env = str(self.config.options.get("api_key_env", self.OPTIONS["api_key_env"].default))
        key = os.environ.get(env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif "api_key_env" in self.config.options:
            raise ConfigError(f"api_key_env names {env}, but that environment variable is not set")
        self._loop = asyncio.new_event_loop()
        self._session = self._loop.run_until_complete(self._open_session(headers))
        self._loop.run_until_complete(self._probe())
        self._tokenizer = self._load_tokenizer()

    def check(self, requests: Sequence[Request]) -> None:
        """Build every request body once (off the measured path) and count
        prompt tokens for servers that report no usage."""
        for request in requests:
            prompt = request.prompt
            if prompt.sha not in self._payloads:
                self._payloads[prompt.sha] = self._payload(prompt)
                if self._tokenizer is not None:
                    self._prompt_tokens[prompt.sha] = self._count_prompt(prompt)

    def execute(self, requests: Sequence[Request], progress: Progress) -> list[RequestRecord]:
        if self._loop is None or self._session is None:
            raise ModelLoadError("openai backend used before load()")
        streams = self._loop.run_until_complete(self._run(requests, progress))
        return self._records(streams)

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> int | None:
        """The server's memory is not visible from here."""
        return None

    def power_sampler(self) -> None:
        return None

    def info(self) -> BackendInfo:
        parts = urlsplit(self.url)
        return BackendInfo(
            device_name=f"endpoint {parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}",
            extra={
                "url": redact_url(self.url),
                "served_model": self.model_name,
                "server": self._server,
                "load_shape": self.shape.describe(),
            },
        )

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        session, self._session = self._session, None
        try:
            if session is not None:
                loop.run_until_complete(session.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    # -- setup helpers ----------------------------------------------------------------------

    async def _open_session(self, headers: dict[str, str]) -> aiohttp.ClientSession:
        import aiohttp

        # No connection cap here: the load shape is the only limiter, so a
        # request is never queued inside the client after t_send.
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        return aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            auto_decompress=False,
        )

    async def _probe(self) -> None:
        """Fail setup, not the run, when the endpoint is unreachable or refuses us."""
        import aiohttp

        assert self._session is not None
        models_url = self.base + "/models"
        try:
            async with self._session.get(
                models_url, timeout=aiohttp.ClientTimeout(total=_PROBE_TIMEOUT_S)
            ) as resp:
                self._server = resp.headers.get("Server")
                if resp.status in (401, 403):
                    env = self.config.options.get(
                        "api_key_env", self.OPTIONS["api_key_env"].default
                    )
                    raise ConfigError(
                        f"{redact_url(models_url)} refused the credentials (HTTP {resp.status}); "
                        f"put the API key in ${env}"
                    )
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ModelLoadError(
                f"cannot reach the endpoint {redact_url(models_url)}: {detail}"
            ) from None

    def _load_tokenizer(self) -> Any:
        spec = self.config.options.get("tokenizer")
        if spec == "none":
            return None
        path = str(spec or self.config.load_path)
        local = Path(path).expanduser()
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(
                str(local) if local.is_dir() else path,
                trust_remote_code=self.config.trust_remote_code,
            )
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if spec is not None:
                raise ModelLoadError(f"cannot load tokenizer {path!r}: {first}") from None
            log.warning(
                "no tokenizer at %s (%s); token counts come from the server's usage, else one per chunk",
                path,
                first,
            )
            return None

    def _payload(self, prompt: Prompt) -> bytes:
        opts = self.config.options
        n = self.config.max_new_tokens
        body: dict[str, Any] = {"model": self.model_name}
        if self.chat:
            body["messages"] = prompt.as_messages()
        else:
            body["prompt"] = prompt.as_text()
        body["max_tokens"] = n
        body["stream"] = True
        if opts.get("include_usage", True):
            body["stream_options"] = {"include_usage": True}
        if self.config.ignore_eos and opts.get("send_ignore_eos", True):
            body["ignore_eos"] = True
            body["min_tokens"] = n
        if opts.get("temperature") is not None:
            body["temperature"] = float(opts["temperature"])
        if opts.get("extra_body"):
            body.update(json.loads(canonical_json(opts["extra_body"])))
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _count_prompt(self, prompt: Prompt) -> int:
        tok = self._tokenizer
        if self.chat and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(
                prompt.as_messages(), add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, Mapping):
                ids = ids["input_ids"]
            return len(ids)
        return len(tok(prompt.as_text())["input_ids"])

    # -- the measured path --------------------------------------------------------------

    async def _run(
        self, requests: Sequence[Request], progress: Progress
    ) -> list[tuple[Request, _Stream]]:
        shape = self.shape
        done: list[tuple[Request, _Stream]] = []
        start = time.perf_counter()
        deadline = start + shape.max_duration_s if shape.max_duration_s is not None else None

        async def send(request: Request) -> None:
            done.append((request, await self._stream(request)))
            progress(1)

        if not shape.open_loop:
            pending = iter(requests)

            async def client() -> None:
                for request in pending:
                    if deadline is not None and time.perf_counter() >= deadline:
                        return
                    await send(request)

            await asyncio.gather(*(client() for _ in range(min(shape.concurrency, len(requests)))))
            return done

        limit = asyncio.Semaphore(shape.max_concurrency) if shape.max_concurrency else None

        async def arrive(request: Request) -> None:
            if limit is None:
                await send(request)
                return
            async with limit:
                # Waiting for a slot is client-side queueing, not server
                # latency: t_send is taken once the request really goes out.
                if deadline is None or time.perf_counter() < deadline:
                    await send(request)

        tasks = []
        for request, offset in zip(requests, shape.schedule(len(requests)).tolist(), strict=True):
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if deadline is not None and time.perf_counter() >= deadline:
                break
            tasks.append(asyncio.create_task(arrive(request)))
        await asyncio.gather(*tasks)
        return done

    async def _stream(self, request: Request) -> _Stream:
        """One streamed request; every failure is returned in ``_Stream.error``."""
        import aiohttp

        session = self._session
        assert session is not None
        body = self._payloads.get(request.prompt.sha) or self._payload(request.prompt)
        stream = _Stream(time.perf_counter())
        try:
            async with session.post(self.url, data=body) as resp:
                if resp.status != 200:
                    stream.error = f"HTTP {resp.status}: {error_text(await resp.read())}"
                    return stream
                # One perf_counter and one UTF-8 decode per network read;
                # events are parsed from str (json.loads on bytes would sniff
                # the encoding of every event).
                decoder = SSEDecoder()
                utf8 = codecs.getincrementaldecoder("utf-8")("replace").decode
                read = resp.content.readany
                on_event = self._on_event
                while data := await read():
                    now = time.perf_counter()
                    for event in decoder.feed(utf8(data)):
                        if not on_event(stream, event, now):
                            return stream
                for event in decoder.flush():
                    if not on_event(stream, event, time.perf_counter()):
                        return stream
        except asyncio.TimeoutError:
            stream.error = f"timeout: response not complete after {self.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            stream.error = f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_LIMIT]
        except Exception as exc:  # a request's failure is data, never the run's end
            stream.error = f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_LIMIT]
        return stream

    def _on_event(self, stream: _Stream, data: str, now: float) -> bool:
        """Apply one SSE ``data`` payload; False stops reading (an error)."""
        if data == "[DONE]":
            return True
        try:
            obj = _loads(data)
        except ValueError:
            stream.error = f"malformed stream event: {data[:120]!r}"
            return False
        if type(obj) is not dict:
            return True
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            if self.chat:
                delta = choice.get("delta") or _NO_DELTA
                text = (
                    delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
                )
            else:
                text = choice.get("text")
            if text and type(text) is str:
                stream.token_times.append(now)
                stream.parts.append(text)
        elif obj.get("error") is not None:
            stream.error = f"error event mid-stream: {error_message(obj['error'])}"
            return False
        usage = obj.get("usage")
        if usage:
            stream.usage_out = usage.get("completion_tokens", stream.usage_out)
            stream.usage_in = usage.get("prompt_tokens", stream.usage_in)
        return True

    # -- records ---------------------------------------------------------------------------

    def _records(self, streams: list[tuple[Request, _Stream]]) -> list[RequestRecord]:
        """Token counts (after the streams, so tokenizing never delays a
        timestamp) and one record per issued request, in request order."""
        uncounted = [s for _, s in streams if not isinstance(s.usage_out, int) and s.parts]
        if uncounted and self._tokenizer is not None:
            ids = self._tokenizer(["".join(s.parts) for s in uncounted], add_special_tokens=False)[
                "input_ids"
            ]
            for s, token_ids in zip(uncounted, ids, strict=True):
                s.counted = len(token_ids)
        records = []
        sources: Counter[str] = Counter()
        short = 0
        for request, s in sorted(streams, key=lambda pair: pair[0].index):
            n_chunks = len(s.token_times)
            if isinstance(s.usage_out, int):
                n_out, source = s.usage_out, "usage"
            elif s.counted is not None:
                n_out, source = s.counted, "tokenizer"
            else:
                n_out, source = n_chunks, "chunks"
            error = s.error if s.error is not None or n_chunks else "the stream carried no content"
            if error is None:
                sources[source] += 1
                short += n_out < self.config.max_new_tokens
            records.append(
                RequestRecord(
                    request_index=request.index,
                    prompt_sha=request.prompt.sha,
                    input_tokens=s.usage_in
                    if isinstance(s.usage_in, int)
                    else self._prompt_tokens.get(request.prompt.sha, 0),
                    # A content chunk carries at least one token.
                    output_tokens=max(n_out, n_chunks),
                    t_send=s.t_send,
                    token_times=tuple(s.token_times),
                    success=error is None,
                    error=error,
                )
            )
        log.info(
            "output token counts from: %s",
            ", ".join(f"{k} {v}" for k, v in sorted(sources.items())),
        )
        if short and self.config.ignore_eos:
            log.warning(
                "%d of %d requests stopped before max_new_tokens=%d although EOS is ignored: "
                "the server does not honour ignore_eos/min_tokens (see README, serving endpoints)",
                short,
                sum(sources.values()),
                self.config.max_new_tokens,
            )
        return records


@dataclass(slots=True)
class _Stream:
    """What one request collected while streaming (mutable, internal)."""

    t_send: float
    token_times: list[float] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    usage_out: int | None = None
    usage_in: int | None = None
    counted: int | None = None
    error: str | None = None


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder: text in, each event's data out.

    Events end at a blank line; ``data:`` lines of one event are joined with
    newlines; comments (``:``) and other fields are dropped; CRLF and CR line
    ends are accepted, even when a CRLF is split across two reads.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, chunk: str) -> list[str]:
        buf = self._buf + chunk if self._buf else chunk
        tail = ""
        if "\r" in buf:
            if buf.endswith("\r"):
                buf, tail = buf[:-1], "\r"
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        events = buf.split("\n\n")
        self._buf = events.pop() + tail
        out = []
        for event in events:
            if event.startswith("data: ") and "\n" not in event:  # the common one-line event
                out.append(event[6:])
            elif (data := _event_data(event)) is not None:
                out.append(data)
        return out

    def flush(self) -> list[str]:
        """The last event of a stream that ended without a blank line."""
        rest, self._buf = self._buf.replace("\r", "\n").strip("\n"), ""
        data = _event_data(rest) if rest else None
        return [data] if data is not None else []


def _event_data(event: str) -> str | None:
    lines = [line[5:] for line in event.split("\n") if line.startswith("data:")]
    if not lines:
        return None
    return "\n".join(line[1:] if line.startswith(" ") else line for line in lines)


def load_shape(config: RunConfig) -> LoadShape:
    """The config's load shape: open loop when request_rate is set (capped by
    max_concurrency, or by concurrency when given), else a closed loop."""
    opts = config.options
    caps = [c for c in (opts.get("max_concurrency"), config.concurrency) if c is not None]
    open_loop = config.request_rate is not None
    return LoadShape(
        concurrency=(config.concurrency or 1) if not open_loop else 1,
        request_rate=config.request_rate,
        burstiness=float(opts.get("burstiness", 1.0)),
        max_concurrency=min(caps) if open_loop and caps else None,
        max_duration_s=opts.get("max_duration_s"),
        seed=config.seed,
    )


def api_base(base_url: str) -> str:
    """The API root requests are built on: a bare ``http://host:port`` gets ``/v1``."""
    base = base_url.rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base


def redact_url(url: str) -> str:
    """The URL without any user:password part (safe to log and store)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def error_message(error: Any) -> str:
    """The human part of an OpenAI-style error object (dict or string)."""
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("detail") or json.dumps(error)
    return " ".join(str(error).split())[:_ERROR_TEXT_LIMIT]


def error_text(body: bytes) -> str:
    """An error response body reduced to one readable line."""
    try:
        obj = json.loads(body)
    except ValueError:
        return (
            " ".join(body.decode("utf-8", "replace").split())[:_ERROR_TEXT_LIMIT] or "(empty body)"
        )
    if isinstance(obj, Mapping):
        for key in ("error", "detail", "message"):
            if obj.get(key) is not None:
                return error_message(obj[key])
    return error_message(obj)


__all__ = ["ENDPOINTS", "OpenAIBackend", "SSEDecoder", "api_base", "load_shape", "redact_url"]
