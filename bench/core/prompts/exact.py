"""Token-exact prompts: every request exactly N tokens as the model sees them.

Published Gaudi and vLLM figures are quoted per input/output shape (128/128,
2048/128, ...), so a prompt of "about 128 tokens" cannot stand next to one.
:func:`build_exact` makes request ``i`` from the prompt set's real text,
starting at prompt ``i`` and appending the following prompts cyclically, cut
to the body length, decoded, then counted the way the model counts it (the
chat template rendered when one is applied, BOS and other special tokens
included: :class:`PromptTokens`) and moved by the difference until the count
is exact. ``random`` mode does the same from seeded random token ids, as
vLLM's random dataset does. Equal lengths mean a batch holds no padding.

Building is deterministic: the same tokenizer, set, length and count give
the same texts, hence the same prompt-set sha and fingerprint every night.
A built set is cached as JSON under a key of the tokenizer's *content* (its
files, not their path), the rule, the source set's sha and the shape, so a
night's second configuration of a shape reads it back in milliseconds
(``benchmarks/exact_prompts.py``).
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.core.config import RANDOM_PROMPTS
from bench.core.hashing import canonical_json, sha256_hex
from bench.core.prompts import Prompt, PromptSet
from bench.errors import PromptError

#: ``--prompts random``: seeded random token ids instead of a set's text.
RANDOM = RANDOM_PROMPTS
#: Prompts a random set holds when no ``limit`` says how many.
RANDOM_DEFAULT_COUNT = 200
#: Changes whenever the building rule does, so old cache entries are not reused.
BUILDER_VERSION = 1
#: Files that define a tokenizer (hashed for the cache key when present).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "chat_template.jinja",
    "chat_template.json",
)
#: Newton steps (count, move by the difference) before the slow search.
_ROUNDS = 6
_SENTINEL = "\x00bench-prompt\x00"


@dataclass(frozen=True)
class PromptTokens:
    """A tokenizer and the rule by which a prompt becomes the model's tokens.

    ``templated``: the chat template is rendered with the generation prompt
    and the result tokenized without adding special tokens (the template
    writes its own BOS); otherwise the plain text is tokenized with the
    tokenizer's special tokens. In-process backends and servers (chat vs
    completions endpoint) feed the model by one of these two rules.
    """

    tokenizer: Any
    templated: bool

    def render(self, text: str) -> str:
        """The text the model's tokenizer reads for a prompt of ``text``."""
        if not self.templated:
            return text
        prefix, suffix = self._affixes
        if prefix is not None:
            return prefix + text + (suffix or "")
        return self._render_one(text)

    def _render_one(self, text: str) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        )

    @cached_property
    def _affixes(self) -> tuple[str | None, str | None]:
        """The template around a user turn, when it places the content verbatim
        (one jinja render for the whole set instead of one per prompt)."""
        rendered = self._render_one(_SENTINEL)
        if rendered.count(_SENTINEL) != 1:
            return None, None
        prefix, suffix = rendered.split(_SENTINEL)
        return prefix, suffix

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each prompt text, as the model sees it."""
        if not texts:
            return []
        rendered = [self.render(t) for t in texts]
        special = not self.templated
        if self._rust is not None:  # lengths only: no id lists built in Python
            return [len(e) for e in self._rust.encode_batch(rendered, add_special_tokens=special)]
        ids = self.tokenizer(rendered, add_special_tokens=special)["input_ids"]
        return [len(row) for row in ids]

    def decode_many(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """:meth:`decode` of each row, in one call (in parallel where the
        tokenizer is a Rust one)."""
        if self._rust is not None:
            return [str(t) for t in self._rust.decode_batch([list(r) for r in rows], True)]
        return [self.decode(r) for r in rows]

    @cached_property
    def _rust(self) -> Any:
        """The tokenizer's Rust ``tokenizers.Tokenizer`` when calling it
        directly counts exactly as transformers does (a fast tokenizer with no
        truncation or padding of its own): the same encodings without the
        Python lists transformers builds from them, the decodes batched.
        None otherwise (the transformers call is used)."""
        rust = getattr(self.tokenizer, "backend_tokenizer", None)
        if rust is None or not all(
            hasattr(rust, name) for name in ("encode_batch", "decode_batch", "truncation")
        ):
            return None
        if rust.truncation is not None or rust.padding is not None:
            return None
        return rust

    def encode_body(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of raw text pieces, without special tokens."""
        if not texts:
            return []
        if self._rust is not None:
            return [e.ids for e in self._rust.encode_batch(list(texts), add_special_tokens=False)]
        return [list(r) for r in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return str(
            self.tokenizer.decode(
                list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    @cached_property
    def overhead(self) -> int:
        """Tokens of an empty prompt: the template and special tokens alone."""
        return self.count([""])[0]

    @cached_property
    def digest(self) -> str:
        """What identifies this tokenizer and rule: a hash of its files'
        contents when it was loaded from a directory, else of its
        serialized state; the same tokenizer at another path hashes the same."""
        tok = self.tokenizer
        parts: dict[str, Any] = {"templated": self.templated, "class": type(tok).__name__}
        folder = Path(str(getattr(tok, "name_or_path", "") or ""))
        files = [folder / n for n in TOKENIZER_FILES if (folder / n).is_file()]
        if folder.is_dir() and files:
            parts["files"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
        else:
            backend = getattr(tok, "backend_tokenizer", None)
            parts["state"] = sha256_hex(backend.to_str() if backend is not None else repr(tok))
            parts["chat_template"] = getattr(tok, "chat_template", None)
        return sha256_hex(canonical_json(parts))

    def whole_tokens(self) -> list[int]:
        """Ids that are no special token and decode, alone, to whole
        characters (a byte-level id holding half a character would put
        U+FFFD into a random prompt)."""
        specials = {int(i) for i in getattr(self.tokenizer, "all_special_ids", [])}
        ids = [i for i in range(len(self.tokenizer)) if i not in specials]
        texts = self.tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
        return [i for i, t in zip(ids, texts, strict=True) if t and "\ufffd" not in t]


def check_fits(tokens: PromptTokens, n_tokens: int) -> int:
    """The body length (tokens of text) for ``n_tokens``; refuses a length
    that the template and special tokens alone already reach."""
    overhead = tokens.overhead
    if n_tokens <= overhead:
        rule = "the chat template and special tokens" if tokens.templated else "special tokens"
        raise PromptError(
            f"--input-tokens {n_tokens} leaves no room for text: {rule} alone take "
            f"{overhead} tokens (use at least {overhead + 1})"
        )
    return n_tokens - overhead


def build_exact(
    tokens: PromptTokens,
    n_tokens: int,
    count: int,
    *,
    source: PromptSet | None,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> PromptSet:
    """``count`` prompts of exactly ``n_tokens`` tokens each (see the module doc).

    ``source`` None: ``random`` mode, token ids drawn with ``seed``. Reads and
    writes ``cache_dir`` when given (a damaged entry is rebuilt).
    """
    body = check_fits(tokens, n_tokens)
    name = f"{source.name if source is not None else RANDOM}@in{n_tokens}"
    key = sha256_hex(
        canonical_json(
            {
                "v": BUILDER_VERSION,
                "tokenizer": tokens.digest,
                "source": source.sha if source is not None else {RANDOM: seed},
                "n_tokens": n_tokens,
                "count": count,
            }
        )
    )
    cached = _read_cache(cache_dir, key, count)
    if cached is not None:
        texts = cached
    else:
        stream = _TextStream(tokens, source) if source is not None else _RandomStream(tokens, seed)
        texts = _settle(tokens, n_tokens, body, count, stream)
        _write_cache(cache_dir, key, texts)
    path = source.path if source is not None else Path(RANDOM)
    return PromptSet(name=name, path=path, prompts=tuple(Prompt(text=t) for t in texts))


# -- id streams: request i's token ids, long enough for any cut ----------------------------


class Stream(abc.ABC):
    """Request ``i``'s token ids, at least ``length`` of them (:meth:`many`:
    several requests at once, batched where the source allows)."""

    @abc.abstractmethod
    def __call__(self, i: int, length: int) -> list[int]: ...

    def many(self, indices: Sequence[int], length: int) -> list[list[int]]:
        return [self(i, length) for i in indices]

    def origin(self, i: int) -> int:
        """The first request whose ids request ``i`` repeats (itself when
        none): equal ids settle into equal texts, so each is built once."""
        return i


class _TextStream(Stream):
    """Request ``i``: prompt i, i+1, ... of the set, newline separated, cyclically."""

    def __init__(self, tokens: PromptTokens, source: PromptSet) -> None:
        self.pieces = tokens.encode_body([_plain(p) + "\n" for p in source.prompts])
        if not any(self.pieces):
            raise PromptError(f"prompt set {source.name} has no text to build prompts from")

    def origin(self, i: int) -> int:
        return i % len(self.pieces)  # request i + len(set) starts where request i does

    def __call__(self, i: int, length: int) -> list[int]:
        out: list[int] = []
        j = i
        while len(out) < length:
            out += self.pieces[j % len(self.pieces)]
            j += 1
        return out[:length]


class _RandomStream(Stream):
    """Request ``i``: token ids drawn uniformly from the non-special vocabulary
    with a generator seeded by (seed, i), decoded and re-encoded once so the
    stream is the tokenizer's own reading of its text (random byte-level ids
    that split a character would otherwise never settle). :meth:`many` draws,
    decodes and re-encodes every request in one batched call each; the few
    whose text reads shorter than asked draw twice as many, one by one, as
    :meth:`__call__` does: the same ids either way."""

    def __init__(self, tokens: PromptTokens, seed: int) -> None:
        self.tokens = tokens
        self.seed = seed
        self.vocab = tokens.whole_tokens()

    def _draw(self, i: int, k: int) -> list[int]:
        return random.Random(f"{self.seed}:{i}").choices(self.vocab, k=k)

    @staticmethod
    def _first_draw(length: int) -> int:
        return length + length // 2 + 8

    def __call__(self, i: int, length: int, drawn: int | None = None) -> list[int]:
        drawn = drawn or self._first_draw(length)
        while True:
            canonical = self.tokens.encode_body(self.tokens.decode_many([self._draw(i, drawn)]))[0]
            if len(canonical) >= length:
                return canonical[:length]
            drawn *= 2

    def many(self, indices: Sequence[int], length: int) -> list[list[int]]:
        drawn = self._first_draw(length)
        texts = self.tokens.decode_many([self._draw(i, drawn) for i in indices])
        return [
            ids[:length] if len(ids) >= length else self(i, length, drawn * 2)
            for i, ids in zip(indices, self.tokens.encode_body(texts), strict=True)
        ]


def _plain(prompt: Prompt) -> str:
    """A prompt's words: its text, or its turns' contents."""
    if prompt.messages is None:
        return prompt.text or ""
    return "\n".join(m["content"] for m in prompt.messages)


# -- settling: cut, decode, count, move -------------------------------------------------------


def _settle(
    tokens: PromptTokens, n_tokens: int, body: int, count: int, stream: Stream
) -> list[str]:
    """Texts whose counts are exactly ``n_tokens``, found for all requests at
    once (one batched tokenizer call per round); the few a cut cannot settle
    (a merge across the cut moves the count by two) get a local search.
    Requests that repeat an earlier one's ids (a set shorter than the count:
    :meth:`Stream.origin`) reuse its text, which settling would rebuild equal."""
    origins = [stream.origin(i) for i in range(count)]
    unique = list(dict.fromkeys(origins))
    slack = 8 + body // 4
    ids = dict(zip(unique, stream.many(unique, body + slack), strict=True))
    cut = dict.fromkeys(unique, body)
    texts: dict[int, str] = {}
    pending = unique
    for _ in range(_ROUNDS):
        for i in pending:
            if cut[i] > len(ids[i]):
                ids[i] = stream(i, cut[i] + slack)
        decoded = tokens.decode_many([ids[i][: cut[i]] for i in pending])
        texts.update(zip(pending, decoded, strict=True))
        counts = tokens.count([texts[i] for i in pending])
        moved = []
        for i, n in zip(pending, counts, strict=True):
            if n != n_tokens:
                cut[i] = max(1, cut[i] + n_tokens - n)
                moved.append(i)
        pending = moved
        if not pending:
            break
    for i in pending:
        texts[i] = _search(tokens, n_tokens, cut[i], stream, i)
    return [texts[i] for i in origins]


def _search(tokens: PromptTokens, n_tokens: int, near: int, stream: Stream, i: int) -> str:
    """Cuts around ``near``, then the same cuts starting a token later, and so on."""
    ids = stream(i, near + 64)
    for skip in range(16):
        for delta in (0, -1, 1, -2, 2, -3, 3, -4, 4):
            k = near + delta
            if k < 1:
                continue
            text = tokens.decode(ids[skip : skip + k])
            # a cut inside a character decodes to U+FFFD: try without it
            for candidate in dict.fromkeys((text, text.rstrip("\ufffd"))):
                if tokens.count([candidate])[0] == n_tokens:
                    return candidate
    raise PromptError(f"cannot build request {i} with exactly {n_tokens} tokens for this tokenizer")


# -- the cache ----------------------------------------------------------------------------------


def _read_cache(folder: Path | None, key: str, count: int) -> list[str] | None:
    if folder is None:
        return None
    try:
        data = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    texts = data.get("texts") if isinstance(data, Mapping) else None
    if (
        not isinstance(texts, list)
        or len(texts) != count
        or not all(isinstance(t, str) for t in texts)
    ):
        return None
    return texts


def _write_cache(folder: Path | None, key: str, texts: list[str]) -> None:
    """Atomic (temporary name + rename): a reader sees a whole entry or none.
    A cache that cannot be written costs only the next build's time."""
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"texts": texts}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass


__all__ = ["RANDOM", "RANDOM_DEFAULT_COUNT", "PromptTokens", "build_exact", "check_fits"]
