"""Setup: which endpoint streams, and which offered body fields the server takes.

One short real request (one output token) per try, read by the same
:class:`~bench.backends.openai.stream.StreamReader` as the measured requests,
so the probe sees exactly what the run will see: the status, the error text,
whether the stream carries ``usage``. ``GET /models`` is not consulted: it
proves nothing about the generation routes, and some servers answer it from
the Hub (``transformers serve``: HTTP 500 offline).

For each candidate endpoint, in order (``auto``: completions, then chat):

* 200 and a clean stream: this endpoint, with this body;
* 400/422 while offered fields remain: the server refused a field. Drop the
  ones its error names (else all offered ones at once) and ask again;
* 401/403: the credentials are wrong; no other endpoint will do better;
* no response at all: the server is unreachable (setup error);
* anything else (404 no such route, 405, 5xx, an error event): next endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.backends.openai.endpoints import Endpoint
from bench.backends.openai.options import redact_url
from bench.backends.openai.payload import Body
from bench.backends.openai.stream import StreamReader
from bench.core.prompts import Prompt
from bench.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import aiohttp

PROBE_PROMPT = Prompt(text="Hello")
_FIX = (
    "check --base-url (the API root, e.g. http://host:8000/v1) and --served-model "
    "(a model the server serves)"
)


@dataclass(frozen=True)
class Probed:
    """What the probe settled: the run's endpoint and request body."""

    endpoint: Endpoint
    body: Body
    #: offered fields the server refused -> its answer
    refused: dict[str, str] = field(default_factory=dict)
    #: the probe's stream carried ``usage``
    usage: bool = False
    server: str | None = None
    #: endpoints tried before this one -> their answer
    skipped: dict[str, str] = field(default_factory=dict)


async def probe(
    session: aiohttp.ClientSession,
    base: str,
    endpoints: Sequence[Endpoint],
    body: Body,
    *,
    timeout_s: float,
    api_key_env: str,
) -> Probed:
    """The first endpoint that streams, with the fields the server accepts.
    Raises ModelLoadError (unreachable, nothing streams) or ConfigError
    (credentials refused)."""
    answers: dict[str, str] = {}
    for endpoint in endpoints:
        url = base + endpoint.path
        read = StreamReader(session, endpoint.choice_text, timeout_s)
        current = body
        refused: dict[str, str] = {}
        while True:
            stream = await read(url, current.probe().encode(endpoint, PROBE_PROMPT))
            if stream.status is None:
                raise ModelLoadError(f"cannot reach the endpoint {redact_url(url)}: {stream.error}")
            if stream.status in (401, 403):
                raise ConfigError(
                    f"{redact_url(url)} refused the credentials (HTTP {stream.status}); "
                    f"put the API key in ${api_key_env}"
                )
            if stream.status == 200 and stream.error is None:
                usage = stream.usage_out is not None or stream.usage_in is not None
                return Probed(endpoint, current, refused, usage, stream.server, answers)
            error = stream.error or f"HTTP {stream.status}"
            if stream.status in (400, 422) and current.offered:
                drop = sorted(f for f in current.offered if f in error) or sorted(current.offered)
                refused |= dict.fromkeys(drop, error)
                current = current.without(drop)
                continue
            answers[endpoint.path] = error
            break
    tried = "; ".join(f"{path}: {error}" for path, error in answers.items())
    fix = _FIX if len(endpoints) > 1 else f"{_FIX}; --endpoint auto tries every API"
    raise ModelLoadError(f"no endpoint under {redact_url(base)} streams ({tried}); {fix}")


__all__ = ["PROBE_PROMPT", "Probed", "probe"]
