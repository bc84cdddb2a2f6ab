"""``openai``: streaming requests to an OpenAI-compatible HTTP endpoint.

Benchmarks what Gaudi (and GPU) teams actually serve with: vLLM, TGI, SGLang,
``transformers serve``, behind ``/v1/completions`` or ``/v1/chat/completions``
with ``"stream": true`` (server-sent events). Works on any of them with every
option at its default:

* :meth:`OpenAIBackend.load` probes (:mod:`.probe`): the endpoint (``auto``
  takes the first that streams) and the offered body fields the server
  accepts (:mod:`.payload`); :attr:`OpenAIBackend.config` then becomes the
  configuration *in effect* (endpoint named, ``ignore_eos`` false when no
  length field was accepted), which the runner records and fingerprints;
* each request is timed by :mod:`.stream` (token time = arrival of a network
  read carrying content);
* token counts (:mod:`.counts`, after the streams so counting never delays
  a timestamp): the server's ``usage`` first, else the tokenizer within the
  bounds the stream proves (:mod:`.tokens`), else one per content event; any
  disagreement between sources is a warning, never a silent correction.

A request that fails in any way (HTTP status, 429, error event mid-stream,
dropped connection, timeout, empty stream) becomes a record with
``success=False`` and the error text; only setup problems raise.

Why aiohttp: it streams the body with one reusable buffer and costs little
per chunk; ``benchmarks/client_overhead.py`` measures this client against a
bare aiohttp loop and a bare httpx loop on one core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from bench.backends.base import BackendInfo, Progress, Request
from bench.backends.openai.counts import report, to_records
from bench.backends.openai.driver import drive
from bench.backends.openai.endpoints import candidates
from bench.backends.openai.options import (
    OPTIONS,
    api_base,
    load_shape,
    option,
    redact_url,
    validate_config,
)
from bench.backends.openai.payload import LENGTH_FIELDS, Body, effective_config
from bench.backends.openai.probe import Probed, probe
from bench.backends.openai.stream import Stream, StreamReader
from bench.backends.openai.tokens import TokenCounter, load_tokenizer
from bench.backends.options import OptionSpec
from bench.core.config import RunConfig
from bench.core.prompts.exact import PromptTokens
from bench.core.records import RequestRecord
from bench.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

#: Seconds the server may take to say its version (GET /version, /info).
_VERSION_TIMEOUT_S = 10.0


class OpenAIBackend:
    """Concurrent streaming HTTP requests shaped by :class:`~bench.backends.openai.loadgen.LoadShape`."""

    name: ClassVar[str] = "openai"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = OPTIONS

    # -- Backend protocol -----------------------------------------------------------------

    def __init__(self, config: RunConfig) -> None:
        validate_config(config)
        #: the requested config until :meth:`load`, then the one in effect
        self.config = config
        self.base = api_base(str(config.options["base_url"]))
        self.shape = load_shape(config)
        self.timeout_s = float(option(config, "request_timeout_s"))  # type: ignore[arg-type]
        self.model_name = str(config.options.get("served_model") or config.model)
        #: the tokenizer and the endpoint's prompt rule; None without a tokenizer
        self.token_counter: TokenCounter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._probed: Probed | None = None
        self._read: StreamReader | None = None
        self._payloads: dict[str, bytes] = {}
        self._prompt_tokens: dict[str, int] = {}
        #: (version, model revision) from the server's version endpoint, when it has one.
        self._server_version: tuple[str | None, str | None] = (None, None)

    @classmethod
    def prompt_rule(cls, config: RunConfig) -> tuple[PromptTokens, int | None]:
        """How the server counts a prompt, for token-exact prompts: the
        tokenizer (``--tokenizer``, default the model's) under the endpoint's
        rule (chat: the template; completions: the text with BOS). Before the
        probe an ``auto`` endpoint is taken as its first candidate; the runner
        plans again with the endpoint the probe settled. The context is the
        tokenizer's ``model_max_length`` when it states a real one."""
        tokenizer = load_tokenizer(config)
        if tokenizer is None:
            needs = "input_tokens" if config.input_tokens is not None else "output_lengths dataset"
            raise ConfigError(
                f"{needs} needs the model's tokenizer to count tokens as the server "
                "does: --tokenizer DIR (or --option tokenizer=DIR)"
            )
        endpoint = candidates(str(option(config, "endpoint")))[0]
        limit = getattr(tokenizer, "model_max_length", None)
        context = limit if isinstance(limit, int) and 0 < limit < 10_000_000 else None
        return PromptTokens(tokenizer, endpoint.templated), context

    def load(self) -> None:
        """Open the HTTP session on a private event loop, probe the endpoint
        and settle the request body; load the tokenizer.

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
        self._session = session = self._loop.run_until_complete(self._open_session(headers))
        probed = self._loop.run_until_complete(
            probe(
                session,
                self.base,
                candidates(str(option(self.config, "endpoint"))),
                Body.for_config(self.config, self.model_name),
                timeout_s=self.timeout_s,
                api_key_env=env,
            )
        )
        self._settle(probed)
        self._server_version = self._loop.run_until_complete(self._version())
        self._read = StreamReader(session, probed.endpoint.choice_text, self.timeout_s)
        tokenizer = load_tokenizer(self.config)
        if tokenizer is not None:
            self.token_counter = TokenCounter(tokenizer, probed.endpoint.templated)

    def check(self, requests: Sequence[Request]) -> None:
        """Build every request body once (off the measured path) and count
        prompt tokens where a tokenizer is loaded."""
        probed = self._require_loaded()
        counter = self.token_counter
        for request in requests:
            prompt = request.prompt
            if prompt.sha not in self._payloads:
                self._payloads[prompt.sha] = probed.body.encode(
                    probed.endpoint, prompt, request.output_tokens
                )
                if counter is not None:
                    self._prompt_tokens[prompt.sha] = len(counter.prompt_ids(prompt))

    def execute(self, requests: Sequence[Request], progress: Progress) -> list[RequestRecord]:
        self._require_loaded()
        assert self._loop is not None
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
        probed = self._require_loaded()
        parts = urlsplit(self.base)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if probed.usage:
            counts = "server usage"
        elif self.token_counter is not None:
            counts = "tokenizer (outputs bounded by the stream)"
        else:
            counts = "content events"
        return BackendInfo(
            device_name=f"endpoint {parts.hostname}:{port}",
            runtime_version=self._server_version[0],
            model_revision=self._server_version[1],
            extra={
                "url": redact_url(self.base + probed.endpoint.path),
                "served_model": self.model_name,
                "server": probed.server,
                "load_shape": self.shape.describe(),
                "request_fields": probed.body.field_names(probed.endpoint),
                "refused_fields": sorted(probed.refused),
                "token_counts": counts,
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
                    root + path, timeout=aiohttp.ClientTimeout(total=_VERSION_TIMEOUT_S)
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

    def _settle(self, probed: Probed) -> None:
        """Adopt the probe's endpoint and body; say what the server refused."""
        self._probed = probed
        requested = self.config
        self.config = effective_config(requested, probed.endpoint, probed.body)
        for path, answer in probed.skipped.items():
            log.info("endpoint %s not used: %s", path, answer)
        log.info("streaming from %s", redact_url(self.base + probed.endpoint.path))
        if not probed.refused:
            return
        refused = sorted(probed.refused)
        answer = next(iter(probed.refused.values()))
        lost = []
        if requested.ignore_eos and not self.config.ignore_eos:
            lost.append(
                "output lengths are not enforced (recorded as ignore_eos=false: outputs end at "
                "EOS or max_tokens)"
            )
        if set(refused) - set(LENGTH_FIELDS):
            lost.append("usage was not requested (counts from the tokenizer, else content events)")
        log.warning(
            "the server refused %s (%s); sent without: %s",
            ", ".join(refused),
            answer,
            "; ".join(lost) or "nothing lost",
        )

    def _require_loaded(self) -> Probed:
        if self._probed is None or self._loop is None:
            raise ModelLoadError("openai backend used before load()")
        return self._probed

    # -- the measured path --------------------------------------------------------------

    async def _run(
        self, requests: Sequence[Request], progress: Progress
    ) -> list[tuple[Request, Stream]]:
        read, probed = self._read, self._probed
        assert read is not None and probed is not None
        url = self.base + probed.endpoint.path
        payloads = self._payloads
        done: list[tuple[Request, Stream]] = []

        async def send(request: Request) -> None:
            prompt = request.prompt
            body = payloads.get(prompt.sha) or probed.body.encode(
                probed.endpoint, prompt, request.output_tokens
            )
            done.append((request, await read(url, body)))
            progress(1)

        await drive(requests, self.shape, send)
        return done

    def _records(self, streams: list[tuple[Request, Stream]]) -> list[RequestRecord]:
        probed = self._probed
        assert probed is not None
        max_tokens = self.config.max_new_tokens
        records, tally = to_records(
            streams,
            max_tokens=max_tokens,
            prompt_tokens=self._prompt_tokens,
            counter=self.token_counter,
        )
        sent = [f for f in LENGTH_FIELDS if f in probed.body.fields]
        report(records, tally, length_fields=sent)
        return records


__all__ = ["OpenAIBackend"]
