"""Dataset prompt sets: ``bench prompts import FILE --format sharegpt|jsonl``.

Serving benchmarks (vLLM's ``--dataset-name sharegpt``) draw requests from
real conversations: the first user turn is the prompt, the assistant's reply
to it the reference whose length the request may be asked to produce
(``--output-lengths dataset``). An import keeps exactly that pair per
conversation and writes it as a prompt set, ``prompts/NAME.jsonl``, one
``{"prompt": ..., "reply": ...}`` a line, which every other command reads
like any JSONL set. Only local files are read; nothing is downloaded.

Formats:

* ``sharegpt``: a JSON array (or JSON lines) of objects whose
  ``conversations`` is a list of ``{"from": "human"|"gpt"|..., "value": ...}``
  turns (``role``/``content`` accepted too);
* ``jsonl``: one object a line, with ``prompt`` (and optionally ``reply``,
  ``completion`` or ``response``), or ``messages`` in the chat format.

A conversation without a user turn followed by a reply is skipped and
counted; a file with none, or that is neither format, is refused in one line.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import PromptError

FORMATS = ("sharegpt", "jsonl")
_USER = ("human", "user")
_REPLY = ("gpt", "assistant", "chatgpt", "bard", "model")
_REPLY_KEYS = ("reply", "completion", "response")


@dataclass(frozen=True)
class Imported:
    path: Path
    kept: int
    skipped: int


def import_prompts(source: Path, fmt: str, name: str, out_dir: Path) -> Imported:
    """Read ``source`` in ``fmt``, write ``out_dir/NAME.jsonl`` (atomically)."""
    if fmt not in FORMATS:
        raise PromptError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if not name or "/" in name or name.startswith(".") or name == "random":
        raise PromptError(f"--name {name!r}: a plain file name (not 'random')")
    try:
        raw = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{source} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise PromptError(f"cannot read {source}: {exc.strerror}") from None
    records = _records(raw, source)
    pairs: list[dict[str, str]] = []
    skipped = 0
    for where, record in records:
        pair = _sharegpt_pair(record, where) if fmt == "sharegpt" else _jsonl_pair(record, where)
        if pair is None:
            skipped += 1
        else:
            pairs.append(pair)
    if not pairs:
        raise PromptError(
            f"{source}: no {fmt} conversation with a user turn and a reply "
            f"({skipped} records read): is it a {fmt} file?"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.jsonl"
    tmp = out_dir / f".{name}.jsonl.{os.getpid()}.tmp"
    tmp.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), "utf-8")
    os.replace(tmp, target)
    return Imported(target, len(pairs), skipped)


def _records(raw: str, source: Path) -> list[tuple[str, Any]]:
    """A JSON array's items, or JSON lines; anything else is not a dataset."""
    text = raw.lstrip()
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptError(
                f"{source}: not a JSON array ({exc.msg}, line {exc.lineno})"
            ) from None
        return [(f"{source}[{i}]", item) for i, item in enumerate(data)]
    out = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{source}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise PromptError(
                f"{source}:{lineno}: neither a JSON array nor JSON lines ({exc.msg})"
            ) from None
    return out


def _turns(turns: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(turns, list):
        return
    for turn in turns:
        if not isinstance(turn, Mapping):
            continue
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if isinstance(role, str) and isinstance(text, str):
            yield role.lower(), text


def _first_exchange(turns: Sequence[tuple[str, str]]) -> dict[str, str] | None:
    """The first user turn with text and the reply right after it."""
    for (role, text), (next_role, reply) in itertools.pairwise(turns):
        if role in _USER and text.strip() and next_role in _REPLY and reply.strip():
            return {"prompt": text, "reply": reply}
    return None


def _sharegpt_pair(record: Any, where: str) -> dict[str, str] | None:
    if not isinstance(record, Mapping) or "conversations" not in record:
        raise PromptError(f"{where}: not a ShareGPT record (an object with 'conversations')")
    return _first_exchange(list(_turns(record["conversations"])))


def _jsonl_pair(record: Any, where: str) -> dict[str, str] | None:
    if not isinstance(record, Mapping):
        raise PromptError(f"{where}: expected an object with 'prompt' or 'messages'")
    if "messages" in record:
        return _first_exchange(list(_turns(record["messages"])))
    if "conversations" in record:
        return _first_exchange(list(_turns(record["conversations"])))
    prompt = record.get("prompt")
    if not isinstance(prompt, str):
        raise PromptError(f"{where}: expected an object with 'prompt' or 'messages'")
    reply = next((record[k] for k in _REPLY_KEYS if isinstance(record.get(k), str)), None)
    if not prompt.strip():
        return None
    return {"prompt": prompt, **({"reply": reply} if reply is not None else {})}


__all__ = ["FORMATS", "Imported", "import_prompts"]
