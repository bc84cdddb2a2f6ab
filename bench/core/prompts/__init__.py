"""Prompt sets: plain text (one prompt a line) or JSONL (prompt or chat messages).

Each prompt carries the sha256 of its content and the set carries a sha over
the ordered prompt shas, so a run records exactly which inputs it measured
and the config fingerprint changes when the set's content does, not its path.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.core.hashing import canonical_json, sha256_hex
from bench.errors import PromptError

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Prompt:
    """One input: either plain ``text`` or chat ``messages`` (role/content dicts),
    and for a dataset set (``bench prompts import``) the reference ``reply``
    whose token length ``--output-lengths dataset`` uses."""

    text: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    reply: str | None = None

    @cached_property
    def sha(self) -> str:
        content: Any = self.text if self.messages is None else [dict(m) for m in self.messages]
        if self.reply is not None:  # a set without replies keeps the shas it always had
            content = {"prompt": content, "reply": self.reply}
        return sha256_hex(canonical_json(content))

    def as_messages(self) -> list[dict[str, str]]:
        """Chat form: plain text becomes a single user turn."""
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.text or ""}]

    def as_text(self) -> str:
        """Plain form for models without a chat template: turns joined by newlines."""
        if self.messages is None:
            return self.text or ""
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages)


@dataclass(frozen=True)
class PromptSet:
    name: str
    path: Path
    prompts: tuple[Prompt, ...]

    @cached_property
    def sha(self) -> str:
        return sha256_hex("\n".join(p.sha for p in self.prompts))

    def __len__(self) -> int:
        return len(self.prompts)


def search_dirs() -> list[Path]:
    """Where named sets (``default`` -> ``default.txt``) are looked up, in order."""
    dirs = []
    if env := os.environ.get("BENCH_PROMPTS_DIR"):
        dirs.append(Path(env))
    dirs.append(Path.cwd() / "prompts")
    dirs.append(Path(__file__).resolve().parents[3] / "prompts")  # the repository's
    return dirs


def resolve_prompt_path(spec: str) -> Path:
    """A path to a file, or a set name looked up in :func:`search_dirs`."""
    candidate = Path(spec).expanduser()
    if candidate.is_file():
        return candidate
    if "/" not in spec and candidate.suffix == "":
        for folder in search_dirs():
            for suffix in (".txt", ".jsonl"):
                found = folder / f"{spec}{suffix}"
                if found.is_file():
                    return found
    if candidate.exists():
        raise PromptError(f"prompt set {spec!r} is not a regular file")
    raise PromptError(
        f"prompt set {spec!r} not found (a file path, or a name under "
        f"{', '.join(str(d) for d in search_dirs())})"
    )


def load_prompt_set(spec: str) -> PromptSet:
    path = resolve_prompt_path(spec)
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"prompt file {path} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise PromptError(f"cannot read prompt file {path}: {exc.strerror}") from None
    if path.suffix == ".jsonl":
        prompts = tuple(_parse_jsonl(raw, path))
    else:
        prompts = tuple(Prompt(text=line) for line in raw.splitlines() if line.strip())
    if not prompts:
        raise PromptError(f"prompt file {path} holds no prompts")
    return PromptSet(name=path.stem, path=path, prompts=prompts)


def _parse_jsonl(raw: str, path: Path) -> list[Prompt]:
    prompts = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise PromptError(f"{where}: expected an object with 'prompt' or 'messages'")
        prompts.append(_prompt_from_object(obj, where))
    return prompts


def _prompt_from_object(obj: dict[str, Any], where: str) -> Prompt:
    reply = obj.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise PromptError(f"{where}: 'reply' must be a string")
    prompt = _input_from_object(obj, where)
    return prompt if reply is None else dataclasses.replace(prompt, reply=reply)


def _input_from_object(obj: dict[str, Any], where: str) -> Prompt:
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise PromptError(f"{where}: 'system' must be a string")
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            raise PromptError(f"{where}: 'messages' must be a non-empty list")
        turns: list[Mapping[str, str]] = []
        for turn in messages:
            if (
                not isinstance(turn, dict)
                or turn.get("role") not in _ROLES
                or not isinstance(turn.get("content"), str)
            ):
                raise PromptError(
                    f"{where}: each message needs role ({'/'.join(_ROLES)}) and string content"
                )
            turns.append({"role": turn["role"], "content": turn["content"]})
        if system is not None:
            turns.insert(0, {"role": "system", "content": system})
        return Prompt(messages=tuple(turns))
    text = obj.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"{where}: needs a non-empty string 'prompt' or a 'messages' list")
    if system is not None:
        return Prompt(
            messages=({"role": "system", "content": system}, {"role": "user", "content": text})
        )
    return Prompt(text=text)


def plan_requests(
    prompt_set: PromptSet, *, limit: int | None, batch_size: int
) -> tuple[Prompt, ...]:
    """The measured request list: ``limit`` prompts (cycling the set when it is
    shorter), rounded up to whole batches so every batch has the same shape."""
    wanted = limit if limit is not None else len(prompt_set)
    batches = -(-wanted // batch_size)
    total = batches * batch_size
    return tuple(prompt_set.prompts[i % len(prompt_set)] for i in range(total))


def batched(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
