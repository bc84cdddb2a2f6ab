"""The ``bench compare --out FILE.html`` page: one self-contained table, each
configuration's change drawn as an interval around zero (no script, no network)."""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px}
th{background:#f6f6f6}td.num{text-align:right}td.config{font-family:monospace}
.bar{position:relative;width:260px;height:14px;background:#fafafa}
.bar .zero{position:absolute;left:50%;top:0;bottom:0;border-left:1px solid #999}
.bar .ci{position:absolute;top:3px;height:8px;border-radius:2px}
.bar .point{position:absolute;top:1px;width:2px;height:12px;background:#222}
.slower,.worse{background:#d62728}.faster,.better{background:#2ca02c}.nochange{background:#9aa}
.note{color:#666;font-style:italic}
"""


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.2f}%"


def _bar(row: Mapping[str, Any], scale: float) -> str:
    low, high, mid = row["ci_low_pct"], row["ci_high_pct"], row["change_pct"]
    if low is None or math.isnan(low):
        return '<span class="note">no interval</span>'

    def x(v: float) -> float:
        return 50.0 + 50.0 * max(-1.0, min(1.0, v / scale))

    css = str(row["verdict"]).replace(" ", "")
    return (
        f'<div class="bar"><span class="zero"></span>'
        f'<span class="ci {css}" style="left:{x(low):.1f}%;width:{max(x(high) - x(low), 0.5):.1f}%"></span>'
        f'<span class="point" style="left:{x(mid):.1f}%"></span></div>'
    )


def render_compare(rows: Sequence[Mapping[str, Any]], *, a: str, b: str) -> str:
    metric = rows[0]["metric"] if rows else ""
    extents = [
        abs(v)
        for r in rows
        for v in (r["ci_low_pct"], r["ci_high_pct"])
        if v is not None and not math.isnan(v)
    ]
    scale = max([5.0, *extents]) * 1.1
    body = []
    for r in rows:
        p = "-" if r["p_value"] is None else f"{r['p_value']:.1e}"
        body.append(
            f'<tr data-config="{html.escape(r["label"])}" data-verdict="{html.escape(r["verdict"])}">'
            f'<td class="config">{html.escape(r["label"])}</td>'
            f'<td class="num">{r["a"]:.4g}</td><td class="num">{r["b"]:.4g}</td>'
            f'<td class="num">{_pct(r["change_pct"])}</td>'
            f'<td class="num">[{_pct(r["ci_low_pct"])}, {_pct(r["ci_high_pct"])}]</td>'
            f'<td>{_bar(r, scale)}</td><td class="num">{p}</td>'
            f"<td>{html.escape(r['verdict'])}</td>"
            f'<td class="num">{r["runs_a"]} / {r["runs_b"]}</td>'
            f"<td>{html.escape(r['changed'] or '')}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("config", "A", "B", "change", "95% CI", f"-{scale:.0f}% .. +{scale:.0f}%",
                  "Mann-Whitney p", "verdict", "runs A / B", "what changed")
    )  # fmt: skip
    table = (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        if rows
        else '<p class="note">no configuration ran on both sides</p>'
    )
    title = f"{html.escape(metric)}: {html.escape(b)} against {html.escape(a)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>"
        '<p class="note">change = B / A - 1; the interval is a 95% bootstrap of that ratio '
        "over the request-level values (runs, then requests, when a side has several runs).</p>"
        f"{table}</body></html>\n"
    )


def write_compare_page(rows: Sequence[Mapping[str, Any]], out: Path, *, a: str, b: str) -> Path:
    """Write the page atomically (a reader never sees half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render_compare(rows, a=a, b=b))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
