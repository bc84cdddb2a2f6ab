"""Per-request output lengths from a dataset's reference replies.

Serving benchmarks on real conversations (vLLM's ShareGPT dataset) ask each
request for as many tokens as the reference reply had, so the mix of short
and long answers is the dataset's, not one fixed number. The reply's length
is counted with the model's own tokenizer, without special tokens (a reply
is generated text: no BOS), capped at the run's ``max_new_tokens`` and at
least one token. Counted once per distinct prompt when the run is planned,
before any weights load.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.core.prompts import Prompt, PromptSet
from bench.core.prompts.exact import PromptTokens
from bench.errors import PromptError


def reply_lengths(prompts: Sequence[Prompt], tokens: PromptTokens, cap: int) -> dict[str, int]:
    """Each distinct prompt's (by sha) reference reply length in the model's
    tokens (``tokens``: its tokenizer), between 1 and ``cap``."""
    distinct = list({p.sha: p for p in prompts}.values())
    replies = [p.reply for p in distinct if p.reply is not None]
    if len(replies) != len(distinct):
        raise PromptError(
            f"output_lengths dataset: {len(distinct) - len(replies)} of {len(distinct)} prompts "
            "have no reference reply (a set from `bench prompts import` keeps each "
            "conversation's reply)"
        )
    ids = tokens.encode_body(replies)
    return {p.sha: max(1, min(cap, len(row))) for p, row in zip(distinct, ids, strict=True)}


def require_replies(prompt_set: PromptSet) -> None:
    """Refuse, before any tokenizer loads, a set none of whose prompts has a reply."""
    if not any(p.reply is not None for p in prompt_set.prompts):
        raise PromptError(
            f"output_lengths dataset: prompt set {prompt_set.name!r} has no reference replies "
            "(import a dataset with `bench prompts import FILE --format sharegpt|jsonl`)"
        )


def describe(wanted: Sequence[int], cap: int) -> Mapping[str, Any]:
    """What a result records about the lengths its requests asked for."""
    return {
        "mode": "dataset",
        "cap": cap,
        "min": min(wanted),
        "median": statistics.median(wanted),
        "max": max(wanted),
        "mean": round(statistics.fmean(wanted), 2),
        "capped": sum(n == cap for n in wanted),
    }


__all__ = ["describe", "reply_lengths", "require_replies"]
