"""``bench prompts``: import a dataset as a prompt set; list the sets with
their sizes and, for a tokenizer, their token-length percentiles."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core.prompts import PromptSet, load_prompt_set, search_dirs
from bench.core.prompts.importers import FORMATS, import_prompts
from bench.errors import PromptError
from bench.report.tables import FORMATS as OUTPUT_FORMATS
from bench.report.tables import print_rows

#: Percentiles ``bench prompts list`` shows (nearest rank).
PERCENTILES = (50, 90, 99)


def register(sub: Any) -> None:
    p = sub.add_parser("prompts", help="prompt sets: import a dataset, list the sets")
    cmds = p.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")
    imp = cmds.add_parser(
        "import",
        help="write prompts/NAME.jsonl from a local ShareGPT or JSONL file",
        description="Keep each conversation's first user turn as the prompt and the reply to "
        "it as the reference (its token length is what --output-lengths dataset asks for). "
        "Reads local files only; nothing is downloaded.",
    )
    imp.add_argument("file", type=Path, help="the dataset file (JSON array or JSON lines)")
    imp.add_argument("--format", required=True, choices=FORMATS, help="the file's layout")
    imp.add_argument("--name", required=True, help="the set's name: written as NAME.jsonl")
    imp.add_argument(
        "--dir", type=Path, default=Path("prompts"), help="where to write it (default ./prompts)"
    )
    imp.set_defaults(func=cmd_import)
    ls = cmds.add_parser(
        "list",
        help="the prompt sets found, with counts (and token lengths for --tokenizer)",
        description="Sets are looked up in $BENCH_PROMPTS_DIR, ./prompts and the package's "
        "prompts/ (the first of a name wins, as for --prompts NAME).",
    )
    ls.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="tokenizer directory or hub id: prompt (with special tokens) and reply "
        "token-length percentiles",
    )
    ls.add_argument(
        "--format", choices=OUTPUT_FORMATS, default="table", help="output format (default table)"
    )
    ls.set_defaults(func=cmd_list)


def cmd_import(args: argparse.Namespace) -> int:
    done = import_prompts(args.file, args.format, args.name, args.dir)
    skipped = f"; {done.skipped} without a user turn and a reply skipped" if done.skipped else ""
    print(f"{done.path}: {done.kept} prompts{skipped}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    tokenizer = _tokenizer(args.tokenizer) if args.tokenizer else None
    rows = [_row(s, tokenizer) for s in _sets()]
    print_rows(rows, args.format)
    return 0


def _sets() -> list[PromptSet]:
    seen: dict[str, PromptSet] = {}
    for folder in search_dirs():
        for path in sorted(folder.glob("*.txt")) + sorted(folder.glob("*.jsonl")):
            if path.stem not in seen:
                seen[path.stem] = load_prompt_set(str(path))
    return list(seen.values())


def _tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    local = Path(spec).expanduser()
    try:
        return AutoTokenizer.from_pretrained(str(local) if local.is_dir() else spec)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PromptError(f"cannot load tokenizer {spec!r}: {first}") from None


def _row(prompt_set: PromptSet, tokenizer: Any) -> dict[str, Any]:
    replies = [p.reply for p in prompt_set.prompts if p.reply is not None]
    row: dict[str, Any] = {
        "name": prompt_set.name,
        "prompts": len(prompt_set),
        "replies": len(replies),
        "path": str(prompt_set.path),
    }
    if tokenizer is not None:
        texts = [p.as_text() for p in prompt_set.prompts]
        row |= _percentiles("in", [len(x) for x in tokenizer(texts)["input_ids"]])
        lengths = tokenizer(replies, add_special_tokens=False)["input_ids"] if replies else []
        row |= _percentiles("reply", [len(x) for x in lengths])
    return row


def _percentiles(prefix: str, values: Sequence[int]) -> dict[str, int | None]:
    ordered = sorted(values)

    def rank(q: int) -> int | None:
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else None

    return {**{f"{prefix}_p{q}": rank(q) for q in PERCENTILES}, f"{prefix}_max": rank(100)}
