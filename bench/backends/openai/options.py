"""What an openai-backend config may say, and the checks that span options.

Light: read by config validation, campaign parsing and the trigger form
without importing aiohttp or the backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from bench.backends.openai.endpoints import AUTO, ENDPOINTS
from bench.backends.openai.loadgen import LoadShape
from bench.backends.options import OptionSpec
from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.core.config import RunConfig

OPTIONS: dict[str, OptionSpec] = {
    "base_url": OptionSpec(
        str, None, "API root including the version prefix, e.g. http://host:8000/v1 (required)"
    ),
    "endpoint": OptionSpec(
        str,
        AUTO,
        "completions (prompt text), chat (messages), or auto: the first of them that streams "
        "(the result records the one used)",
        (AUTO, *ENDPOINTS),
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
        "tokenizer directory or hub id: exact prompt token counts, and output counts when the "
        "server sends no usage (default: the model path; 'none': count content events)",
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
    "max_duration_s": OptionSpec(float, None, "stop issuing new requests after this many seconds"),
    "send_ignore_eos": OptionSpec(
        bool,
        True,
        "when the run ignores EOS, offer vLLM's ignore_eos and min_tokens (dropped, and the run "
        "recorded as stopping at EOS, when the server refuses them); false: never send them",
    ),
    "include_usage": OptionSpec(
        bool,
        True,
        "ask for token usage in the stream (stream_options; dropped when the server refuses it)",
    ),
    "temperature": OptionSpec(
        float, None, "sampling temperature sent (default: the server's; 0 = greedy)"
    ),
    "extra_body": OptionSpec(
        Mapping, None, 'JSON fields merged into every request body, e.g. {"top_k": 1}'
    ),
}


def option(config: RunConfig, name: str) -> object:
    """The option's value, or its declared default."""
    return config.options.get(name, OPTIONS[name].default)


def validate_config(config: RunConfig) -> None:
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
