"""The report's "What changed" section: every verdict of the campaign with its
environment difference in full, its telemetry, and why it was given.

Kept apart from the page layout (``bench.report.page``) so the attribution
data has one renderer: the campaign report calls :func:`changes_section`
with the rows :func:`verdict_notes` builds from ``latest_regressions``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Telemetry fields shown next to a verdict, with their unit.
TELEMETRY_SHOWN: tuple[tuple[str, str], ...] = (
    ("device_clock_mhz", "MHz"),
    ("device_temperature_c", "°C"),
    ("device_power_w", "W"),
    ("cpu_frequency_mhz", "MHz CPU"),
    ("cpu_steal_pct", "% steal"),
)


@dataclass(frozen=True)
class VerdictNote:
    """One verdict as the section shows it."""

    label: str
    metric: str
    verdict: str
    change_pct: float | None
    changed: Mapping[str, Any] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    telemetry: Mapping[str, Any] | None = None


def verdict_notes(rows: Sequence[Mapping[str, Any]]) -> list[VerdictNote]:
    """Notes from ``latest_regressions`` rows (a campaign's verdicts)."""
    return [
        VerdictNote(
            label=str(r["label"]),
            metric=str(r["metric"]),
            verdict=str(r["verdict"]),
            change_pct=r.get("change_pct"),
            changed=r.get("changed") or {},
            detail=r.get("detail") or {},
            reason=r.get("reason"),
            telemetry=r.get("telemetry"),
        )
        for r in rows
    ]


def _value(value: Any) -> str:
    return "none" if value is None else html.escape(str(value))


def changes_list(changed: Mapping[str, Any]) -> str:
    """What changed in the environment, one item a key (``nothing`` when empty)."""
    if not changed:
        return '<span class="note">nothing</span>'
    items = []
    for key, entry in changed.items():
        runs = entry.get("runs", [])
        before = ", ".join(
            f"{_value(v)} ({n})" for v, n in zip(entry.get("baseline", []), runs, strict=False)
        )
        items.append(
            f'<li data-key="{html.escape(key)}"><code>{html.escape(key)}</code> '
            f"{before} &rarr; <b>{_value(entry.get('current'))}</b></li>"
        )
    return f'<ul class="changed">{"".join(items)}</ul>'


def _telemetry(telemetry: Mapping[str, Any] | None) -> str:
    if not telemetry:
        return '<span class="note">not sampled</span>'
    fields = telemetry.get("fields") or {}
    parts = [
        f"{stats['min']:.4g}-{stats['max']:.4g} {unit}"
        for name, unit in TELEMETRY_SHOWN
        if (stats := fields.get(name))
    ]
    mark = ""
    if telemetry.get("throttled"):
        reasons = ", ".join(telemetry.get("throttle_reasons") or [])
        mark = f'<span class="badge regression">throttled: {html.escape(reasons)}</span> '
    return mark + html.escape("; ".join(parts))


def _scope(note: VerdictNote) -> str:
    if note.verdict in ("host_anomaly", "campaign_shift"):
        labels = ", ".join(note.detail.get("labels", []))
        return f"{html.escape(str(note.detail.get('scope')))}: {html.escape(labels)}"
    return html.escape(note.label)


def changes_section(notes: Sequence[VerdictNote]) -> str:
    """The HTML table; a note when the campaign has no verdict."""
    if not notes:
        return '<p class="note">no verdicts in this campaign</p>'
    rows = []
    for n in notes:
        change = "-" if n.change_pct is None else f"{n.change_pct:+.1f}%"
        rows.append(
            f'<tr class="verdict-{html.escape(n.verdict)}" data-metric="{html.escape(n.metric)}">'
            f'<td class="config">{_scope(n)}</td><td>{html.escape(n.metric)}</td>'
            f'<td><span class="badge {html.escape(n.verdict)}">{html.escape(n.verdict)}</span></td>'
            f"<td>{change}</td><td>{changes_list(n.changed)}</td><td>{_telemetry(n.telemetry)}</td>"
            f'<td class="reason">{html.escape(n.reason or "")}</td></tr>'
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("config", "metric", "verdict", "change", "what changed", "telemetry", "why")
    )
    return (
        f'<table class="latest changes"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
