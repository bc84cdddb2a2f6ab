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
from urllib.parse import urlsplit

from bench.backends.base import BackendInfo, Progress, Request
from bench.backends.openai.driver import drive
from bench.backends.openai.endpoints import ENDPOINTS
from bench.backends.openai.options import (
    OPTIONS,
    api_base,
    load_shape,
    option,
    redact_url,
    validate_config,
)
from bench.backends.openai.sse import SSEDecoder
from bench.backends.options import OptionSpec
from bench.core.config import RunConfig
from bench.core.hashing import canonical_json
from bench.core.prompts import Prompt
from bench.core.records import RequestRecord
from bench.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 10.0
_ERROR_TEXT_LIMIT = 300
_loads = json.JSONDecoder().decode


class OpenAIBackend:
    """Concurrent streaming HTTP requests shaped by :class:`~bench.backends.openai.loadgen.LoadShape`."""

    name: ClassVar[str] = "openai"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = OPTIONS

    # -- Backend protocol -----------------------------------------------------------------

    def __init__(self, config: RunConfig) -> None:
        validate_config(config)
        self.config = config
        opts = config.options
        self.endpoint = ENDPOINTS[str(option(config, "endpoint"))]
        self.base = api_base(str(opts["base_url"]))
        self.url = self.base + self.endpoint.path
        self.shape = load_shape(config)
        self.timeout_s = float(option(config, "request_timeout_s"))  # type: ignore[arg-type]
        self.model_name = str(opts.get("served_model") or config.model)
        self.choice_text = self.endpoint.choice_text
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tokenizer: Any = None
        self._payloads: dict[str, bytes] = {}
        self._prompt_tokens: dict[str, int] = {}
        self._server: str | None = None
        #: (version, model revision) from the server's version endpoint, when it has one.
        self._server_version: tuple[str | None, str | None] = (None, None)

    def load(self) -> None:
        """Open the HTTP session on a private event loop and probe the endpoint.

        The loop and its keep-alive connections live until :meth:`close`, so
        the measured phase reuses the connections the warmup opened.
        """
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        env = str(option(self.config, "api_key_env"))
        key = os.environ.get(env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif "api_key_env" in self.config.options:
            raise ConfigError(f"api_key_env names {env}, but that environment variable is not set")
        self._loop = asyncio.new_event_loop()
        self._session = self._loop.run_until_complete(self._open_session(headers))
        self._loop.run_until_complete(self._probe())
        self._server_version = self._loop.run_until_complete(self._version())
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
            runtime_version=self._server_version[0],
            model_revision=self._server_version[1],
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
                    env = option(self.config, "api_key_env")
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

    async def _version(self) -> tuple[str | None, str | None]:
        """The server's own version (and model revision): vLLM answers
        ``GET /version`` with ``{"version": ...}``, TGI ``GET /info`` with
        ``version`` and ``model_sha``. (None, None) when neither answers."""
        import aiohttp

        assert self._session is not None
        root = self.base.removesuffix("/v1")
        for path in ("/version", "/info"):
            try:
                async with self._session.get(
                    root + path, timeout=aiohttp.ClientTimeout(total=_PROBE_TIMEOUT_S)
                ) as resp:
                    if resp.status != 200:
                        continue
                    body = json.loads(await resp.read())
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                continue
            if isinstance(body, dict) and isinstance(body.get("version"), str):
                sha = body.get("model_sha")
                return f"{body['version']} ({path})", sha if isinstance(sha, str) else None
        return None, None

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
        body: dict[str, Any] = {"model": self.model_name, **self.endpoint.prompt_body(prompt)}
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
        if self.endpoint.templated and getattr(tok, "chat_template", None):
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
        done: list[tuple[Request, _Stream]] = []

        async def send(request: Request) -> None:
            done.append((request, await self._stream(request)))
            progress(1)

        await drive(requests, self.shape, send)
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
            text = self.choice_text(choices[0])
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


__all__ = ["OpenAIBackend", "error_message", "error_text"]
