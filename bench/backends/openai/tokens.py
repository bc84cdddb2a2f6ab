"""Token counts against a server, and the seam for exact prompt lengths.

The server's ``usage`` is the truth and wins. The tokenizer (``--tokenizer``,
default the model's) counts what usage does not give:

* **prompt tokens as the server sees them** (:meth:`TokenCounter.prompt_ids`):
  the chat template rendered with the generation prompt (chat endpoint), or
  the text with the tokenizer's special tokens such as BOS (completions). A
  builder of token-exact prompts (``--input-tokens N``) must count with this
  same rule, taking the counter from the loaded backend
  (``OpenAIBackend.token_counter``), so that N tokens here are N at the server;
* **output tokens** (and the ids a request's output is kept as) by
  re-tokenizing the streamed text. This is *not* exact:
  byte-level tokens that decode to U+FFFD re-encode as three, merges differ
  across what the model emitted. So :mod:`.counts` keeps a re-tokenized count
  within what the stream proves (at least one token per content event, at most
  ``max_tokens``) and reports every bound that bit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import ModelLoadError

if TYPE_CHECKING:
    from bench.core.config import RunConfig
    from bench.core.prompts import Prompt

log = logging.getLogger(__name__)


def load_tokenizer(config: RunConfig) -> Any | None:
    """The ``tokenizer`` option's tokenizer (default: the model's), or None for
    ``none``. An explicit one that fails to load is a setup error; a missing
    default only costs exactness (a warning)."""
    spec = config.options.get("tokenizer")
    if spec == "none":
        return None
    path = str(spec or config.load_path)
    local = Path(path).expanduser()
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            str(local) if local.is_dir() else path, trust_remote_code=config.trust_remote_code
        )
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if spec is not None:
            raise ModelLoadError(f"cannot load tokenizer {path!r}: {first}") from None
        log.warning(
            "no tokenizer at %s (%s): token counts come from the server's usage, else one per "
            "content event (--tokenizer names one)",
            path,
            first,
        )
        return None


@dataclass(frozen=True)
class TokenCounter:
    """A tokenizer and how the endpoint feeds it the prompt."""

    tokenizer: Any
    templated: bool

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids as the server tokenizes them."""
        tok = self.tokenizer
        if self.templated and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(
                prompt.as_messages(), add_generation_prompt=True, tokenize=True
            )
            # transformers 5.x returns a BatchEncoding here, 4.x a list
            return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)
        return list(tok(prompt.as_text())["input_ids"])

    def text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, re-tokenized without special tokens (what a
        streamed output is kept as; not exact, see the module docstring)."""
        if not texts:
            return []
        return [
            list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        ]


__all__ = ["TokenCounter", "load_tokenizer"]
