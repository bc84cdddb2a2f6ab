"""One row per OpenAI API: how a prompt goes into the request body and where
a streamed chunk carries its text.

Adding an API (e.g. the Responses API) is one more :class:`Endpoint` here;
the backend, the probe and the stream reader have no per-endpoint branches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.core.prompts import Prompt

_NO_DELTA: Mapping[str, Any] = {}

#: The ``endpoint`` option's value that probes the rows below in order.
AUTO = "auto"


@dataclass(frozen=True)
class Endpoint:
    name: str
    #: appended to the API root (``.../v1``)
    path: str
    #: payload builder: the prompt's part of the request body
    prompt_body: Callable[[Prompt], dict[str, Any]]
    #: chunk reader: the text a streamed choice carries (None or "" for none)
    choice_text: Callable[[Mapping[str, Any]], Any]
    #: whether the server renders the prompt with the model's chat template
    templated: bool


def _completion_text(choice: Mapping[str, Any]) -> Any:
    return choice.get("text")


def _chat_text(choice: Mapping[str, Any]) -> Any:
    # reasoning models stream their thinking first: those are tokens too
    delta = choice.get("delta") or _NO_DELTA
    return delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")


#: In the order ``auto`` tries them: completions first, as ``vllm bench
#: serve`` does by default, so the prompt reaches the model as written.
ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "completions",
            "/completions",
            lambda prompt: {"prompt": prompt.as_text()},
            _completion_text,
            templated=False,
        ),
        Endpoint(
            "chat",
            "/chat/completions",
            # string content, not a list of parts: every server takes it
            # (transformers serve 4.55 answers 500 to parts)
            lambda prompt: {"messages": prompt.as_messages()},
            _chat_text,
            templated=True,
        ),
    )
}


def candidates(choice: str) -> tuple[Endpoint, ...]:
    """The endpoints a run may use: all of them, in order, for ``auto``."""
    return tuple(ENDPOINTS.values()) if choice == AUTO else (ENDPOINTS[choice],)


__all__ = ["AUTO", "ENDPOINTS", "Endpoint", "candidates"]
