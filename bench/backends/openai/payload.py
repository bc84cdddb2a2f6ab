"""The request body: every field but the prompt, fixed once per run.

Three fields are vLLM extensions (or recent OpenAI additions) that some
servers refuse with HTTP 400/422 (``transformers serve`` rejects every field
it does not know): ``ignore_eos`` and ``min_tokens`` make the output exactly
``max_tokens`` long, ``stream_options`` asks for token usage in the stream.
The backend *offers* them; the probe drops the ones a server refuses, and the
run records the body that was really sent (:attr:`Body.fields`) and what that
means for the config (:func:`effective_config`): an output length nobody
enforced is never recorded as enforced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bench.core.hashing import canonical_json

if TYPE_CHECKING:
    from bench.backends.openai.endpoints import Endpoint
    from bench.core.config import RunConfig
    from bench.core.prompts import Prompt

#: Fields that fix the output length (either one does, with ``max_tokens``).
LENGTH_FIELDS: tuple[str, ...] = ("ignore_eos", "min_tokens")
#: Fields that ask for ``usage`` (exact token counts from the server).
USAGE_FIELDS: tuple[str, ...] = ("stream_options",)


@dataclass(frozen=True)
class Body:
    """Every request's body minus the prompt; ``offered`` are the fields a
    server may refuse without the run losing its meaning."""

    fields: Mapping[str, Any]
    offered: frozenset[str] = frozenset()

    @classmethod
    def for_config(cls, config: RunConfig, model_name: str) -> Body:
        opts = config.options
        n = config.max_new_tokens
        fields: dict[str, Any] = {"model": model_name, "max_tokens": n, "stream": True}
        offered: dict[str, Any] = {}
        if opts.get("include_usage", True):
            offered["stream_options"] = {"include_usage": True}
        if config.ignore_eos and opts.get("send_ignore_eos", True):
            offered |= {"ignore_eos": True, "min_tokens": n}
        if opts.get("temperature") is not None:
            fields["temperature"] = float(opts["temperature"])
        extra = json.loads(canonical_json(opts.get("extra_body") or {}))
        # What the user put in extra_body is theirs: sent as given, never dropped.
        return cls(
            MappingProxyType({**fields, **offered, **extra}), frozenset(set(offered) - set(extra))
        )

    def without(self, names: Iterable[str]) -> Body:
        """The body with offered fields ``names`` left out."""
        drop = self.offered.intersection(names)
        kept = {k: v for k, v in self.fields.items() if k not in drop}
        return replace(self, fields=MappingProxyType(kept), offered=self.offered - drop)

    def probe(self) -> Body:
        """The same fields asking for a single token (what the probe sends)."""
        short = {k: 1 if k in ("max_tokens", "min_tokens") else v for k, v in self.fields.items()}
        return replace(self, fields=MappingProxyType(short))

    def encode(self, endpoint: Endpoint, prompt: Prompt, max_tokens: int | None = None) -> bytes:
        """The request's body; ``max_tokens`` for a request that asks for its
        own output length (``output_lengths: dataset``), ``min_tokens`` with it."""
        body = {**endpoint.prompt_body(prompt), **self.fields}
        if max_tokens is not None:
            for name in ("max_tokens", "min_tokens"):
                if name in body and name in self.fields:
                    body[name] = max_tokens
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    @property
    def enforces_length(self) -> bool:
        return any(name in self.fields for name in LENGTH_FIELDS)

    @property
    def asks_usage(self) -> bool:
        return any(name in self.fields for name in USAGE_FIELDS)

    def field_names(self, endpoint: Endpoint) -> list[str]:
        """The top-level fields of every request, prompt field included."""
        from bench.core.prompts import Prompt

        return sorted({*self.fields, *endpoint.prompt_body(Prompt(text=""))})


def effective_config(config: RunConfig, endpoint: Endpoint, body: Body) -> RunConfig:
    """``config`` as it was in effect: the endpoint that was used (never
    ``auto``), EOS ignored only if a length field was sent, usage asked for
    only if ``stream_options`` was sent."""
    options = dict(config.options)
    options["endpoint"] = endpoint.name
    if options.get("include_usage", True) and not body.asks_usage:
        options["include_usage"] = False
    return config.replace(ignore_eos=config.ignore_eos and body.enforces_length, options=options)


__all__ = ["LENGTH_FIELDS", "USAGE_FIELDS", "Body", "effective_config"]
