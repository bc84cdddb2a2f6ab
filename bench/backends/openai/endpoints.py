"""One row per OpenAI API: how a prompt goes into the request body and where
a streamed chunk carries its text.

Adding an API (e.g. the Responses API) is one more :class:`Endpoint` here;
the backend has no per-endpoint branches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.core.prompts import Prompt

_NO_DELTA: Mapping[str, Any] = {}


@dataclass(frozen=True)
class Endpoint:
    name: str
    #: appended to the API root (``.../v1``)
    path: str
    #: the prompt's part of the request body
    prompt_body: Callable[[Prompt], dict[str, Any]]
    #: the text a streamed choice carries (None or "" for none)
    choice_text: Callable[[Mapping[str, Any]], Any]
    #: whether the server renders the prompt with the chat template
    templated: bool


def _completion_text(choice: Mapping[str, Any]) -> Any:
    return choice.get("text")


def _chat_text(choice: Mapping[str, Any]) -> Any:
    # reasoning models stream their thinking first: those are tokens too
    delta = choice.get("delta") or _NO_DELTA
    return delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")


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
            lambda prompt: {"messages": prompt.as_messages()},
            _chat_text,
            templated=True,
        ),
    )
}
