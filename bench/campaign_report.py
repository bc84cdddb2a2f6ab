"""The end-of-campaign summary: a table for the task log and an HTML file."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.results import CampaignRef

TABLE_COLUMNS = (
    "label",
    "status",
    "n_requests",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "itl_p99_ms",
    "output_tokens_per_s",
    "goodput_fraction",
    "regressions",
    "error",
)


def format_campaign_table(rows: Sequence[dict[str, Any]]) -> str:
    from bench.cli.trend import format_table

    if not rows:
        return "no runs recorded for this campaign"
    ok = sum(r["status"] == "ok" for r in rows)
    table = format_table([{k: r.get(k) for k in TABLE_COLUMNS} for r in rows])
    return f"{ok}/{len(rows)} configurations ok\n{table}"


def write_campaign_report(
    engine: sa.Engine, campaign: CampaignRef, rows: Sequence[dict[str, Any]], out: Path
) -> Path:
    """A self-contained HTML page with the campaign's table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in TABLE_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if r.get(k) is None else str(r.get(k)))}</td>"
            for k in TABLE_COLUMNS
        )
        + "</tr>"
        for r in rows
    )
    title = html.escape(f"{campaign.dag_id or 'bench'} {campaign.dag_run_id}")
    out.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{title}</title><h1>{title}</h1>"
        f"<table border='1'><tr>{head}</tr>{body}</table>\n",
        encoding="utf-8",
    )
    return out
