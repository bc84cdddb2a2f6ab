"""From finished streams to records: token counts from the best source each
stream has, and every disagreement between sources said, never corrected
in silence.

Per stream: the server's ``usage`` (the truth); else the tokenizer over the
streamed text, kept between the content events (each carries at least one
token) and ``max_tokens`` (no server exceeds it; :mod:`.tokens` says why
re-tokenizing miscounts); else one token per content event. Prompt tokens:
usage, else the tokenizer's count as the server sees the prompt. Runs after
the streams, so counting never delays a timestamp.

Each record also carries what the request generated: the streamed text
and, with a tokenizer, its ids (re-tokenized: the digest of an endpoint's
output is taken over its text, which is exact).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.core.records import RequestRecord

if TYPE_CHECKING:
    from bench.backends.base import Request
    from bench.backends.openai.stream import Stream
    from bench.backends.openai.tokens import TokenCounter

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """Where a run's counts came from, and what disagreed (one example each)."""

    sources: Counter[str] = field(default_factory=Counter)
    disagreements: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    #: successful requests that stopped before the output length they asked for
    short: int = 0
    #: the output length requests asked for (the largest, when they differ)
    max_tokens: int = 0

    def disagree(self, kind: str, example: str) -> None:
        self.disagreements[kind] += 1
        self.examples.setdefault(kind, example)


def to_records(
    streams: Sequence[tuple[Request, Stream]],
    *,
    max_tokens: int,
    prompt_tokens: Mapping[str, int],
    counter: TokenCounter | None,
) -> tuple[list[RequestRecord], Tally]:
    """One record per issued request, in request order."""
    texts = {id(s): "".join(s.parts) for _, s in streams if s.parts}
    ids: dict[int, list[int]] = {}
    if counter is not None and texts:
        ids = dict(zip(texts, counter.text_ids(list(texts.values())), strict=True))
    retokenized = {key: len(v) for key, v in ids.items()}
    tally = Tally()
    records = []
    tally.max_tokens = max((r.wanted(max_tokens) for r, _ in streams), default=max_tokens)
    for request, s in sorted(streams, key=lambda pair: pair[0].index):
        wanted = request.wanted(max_tokens)
        n_in = prompt_tokens.get(request.prompt.sha)
        if s.usage_in is not None:
            if n_in is not None and s.usage_in != n_in:
                tally.disagree("prompt", f"{s.usage_in} vs {n_in}")
            n_in = s.usage_in
        reads = len(s.token_times)
        if s.usage_out is not None:
            n_out, source = s.usage_out, "usage"
            if not reads <= n_out <= wanted:
                tally.disagree("usage", f"{n_out} tokens in {reads} reads")
        elif id(s) in retokenized:
            n_out, source = retokenized[id(s)], "tokenizer"
            bounded = max(s.events, min(n_out, wanted))
            if bounded != n_out:
                tally.disagree("retokenized", f"{n_out} -> {bounded}")
                n_out = bounded
        else:
            n_out, source = s.events, "content events"
        error = s.error if s.error is not None or reads else "the stream carried no content"
        if error is None:
            tally.sources[source] += 1
            tally.short += max(n_out, reads) < wanted
        records.append(
            RequestRecord(
                request_index=request.index,
                prompt_sha=request.prompt.sha,
                input_tokens=n_in or 0,
                # every read with content carried at least one token
                output_tokens=max(n_out, reads),
                t_send=s.t_send,
                token_times=tuple(s.token_times),
                success=error is None,
                error=error,
                output_token_ids=tuple(ids[id(s)]) if id(s) in ids else None,
                output_text=texts.get(id(s)),
            )
        )
    return records, tally


def report(records: Sequence[RequestRecord], tally: Tally, *, length_fields: Sequence[str]) -> None:
    """Log where counts came from and every disagreement; ``length_fields``
    are the length-enforcing fields the requests carried."""
    ok = sum(r.success for r in records)
    max_tokens = tally.max_tokens
    found = ", ".join(f"{k} {v}" for k, v in sorted(tally.sources.items()))
    log.info("output token counts from: %s", found or "no successful request")
    said, example = tally.disagreements, tally.examples
    if said["prompt"]:
        log.warning(
            "prompt token counts disagree for %d of %d requests (server vs tokenizer, e.g. %s): "
            "the tokenizer or its chat template is not the server's; the server's are recorded",
            said["prompt"],
            ok,
            example["prompt"],
        )
    if said["usage"]:
        log.warning(
            "the server's usage contradicts the stream for %d requests (e.g. %s, max_tokens=%d); "
            "recorded as sent, at least one token per read",
            said["usage"],
            example["usage"],
            max_tokens,
        )
    if said["retokenized"]:
        log.warning(
            "re-tokenizing the streamed text miscounts %d of %d requests (e.g. %s): the text "
            "does not round-trip through the tokenizer; counts kept between the content events "
            "and max_tokens=%d. A server that sends usage gives exact counts",
            said["retokenized"],
            tally.sources["tokenizer"],
            example["retokenized"],
            max_tokens,
        )
    if tally.short and length_fields:
        log.warning(
            "%d of %d requests stopped before the max_tokens they asked for (up to %d) although "
            "%s were sent: the server does not honour them (see README, serving endpoints)",
            tally.short,
            ok,
            max_tokens,
            "/".join(length_fields),
        )


__all__ = ["Tally", "report", "to_records"]
