"""Rows of dicts as terminal tables, CSV or JSON: one renderer for every command."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

FORMATS: tuple[str, ...] = ("table", "csv", "json")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], stream: TextIO) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow(
            [
                "" if v is None else v.isoformat() if isinstance(v, datetime) else v
                for v in row.values()
            ]
        )


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.3f}"
    if key.endswith("fingerprint") and isinstance(value, str):
        return value[:12]
    return str(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Aligned columns; numbers right-aligned, times in UTC, fingerprints cut to 12."""
    keys = list(rows[0].keys())
    cells = [[_cell(k, row[k]) for k in keys] for row in rows]
    numeric = [all(isinstance(row[k], int | float) or row[k] is None for row in rows) for k in keys]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(keys), *(line(c) for c in cells)])


def print_rows(
    rows: Sequence[dict[str, Any]], fmt: str = "table", stream: TextIO | None = None
) -> None:
    """``rows`` on ``stream`` (stdout) as a table, CSV or JSON (``[]`` when empty)."""
    out = stream or sys.stdout
    if fmt == "json":
        print(json.dumps(list(rows), default=_json_default, indent=2), file=out)
    elif not rows:
        return
    elif fmt == "csv":
        write_csv(rows, out)
    else:
        print(format_table(rows), file=out)
