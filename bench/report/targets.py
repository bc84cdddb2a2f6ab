"""Targets side by side: one campaign's configurations on each of its node pools.

The table users build by hand ("Gaudi2 vs Gaudi3"): for a campaign with
``targets:``, one row per configuration, one column per target and key
metric, and the ratio of each target to the first (in the metric's own
direction: above 1 is better). Read from ``campaign_runs``, whose rows carry
the run's target and device model.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The metrics compared across targets, with the direction that is better.
TARGET_METRICS: tuple[tuple[str, str], ...] = (
    ("ttft_p50_ms", "lower"),
    ("tpot_p50_ms", "lower"),
    ("output_tokens_per_s", "higher"),
)


@dataclass(frozen=True)
class TargetRow:
    """One configuration (label without ``@target``) on each target."""

    config: str
    #: target -> its device model ('' when the run has none)
    devices: Mapping[str, str]
    #: target -> metric -> value (None: the run failed or lacks it)
    values: Mapping[str, Mapping[str, float | None]]


def target_rows(runs: Sequence[Mapping[str, Any]]) -> list[TargetRow]:
    """``campaign_runs`` rows -> one row per configuration, when the campaign
    ran on two targets or more (none otherwise)."""
    targets = sorted({str(r["target"]) for r in runs if r.get("target")})
    if len(targets) < 2:
        return []
    devices: dict[str, dict[str, str]] = defaultdict(dict)
    values: dict[str, dict[str, dict[str, float | None]]] = defaultdict(dict)
    for r in runs:
        target = str(r.get("target") or "")
        if not target:
            continue
        config = str(r["label"]).removesuffix(f"@{target}")
        devices[config][target] = str(r.get("device_model") or "")
        ok = r["status"] == "ok"
        values[config][target] = {m: (r.get(m) if ok else None) for m, _ in TARGET_METRICS}
    return [TargetRow(c, devices[c], values[c]) for c in sorted(values)]


def _ratio(metric: str, better: str, base: float | None, value: float | None) -> str:
    if not base or value is None:
        return "-"
    ratio = value / base if better == "higher" else base / value if value else None
    return "-" if ratio is None else f"{ratio:.2f}x"


def targets_table(rows: Sequence[TargetRow]) -> str:
    """The HTML table (empty string when there is nothing to compare)."""
    if not rows:
        return ""
    targets = sorted({t for r in rows for t in r.values})
    first = targets[0]
    head = "".join(
        f"<th>{html.escape(m)} @{html.escape(t)}</th>"
        + (f"<th>vs @{html.escape(first)}</th>" if t != first else "")
        for m, _ in TARGET_METRICS
        for t in targets
    )
    body = []
    for r in rows:
        cells = []
        for metric, better in TARGET_METRICS:
            base = r.values.get(first, {}).get(metric)
            for t in targets:
                value = r.values.get(t, {}).get(metric)
                cells.append("<td>-</td>" if value is None else f"<td>{value:.2f}</td>")
                if t != first:
                    cells.append(f'<td class="ratio">{_ratio(metric, better, base, value)}</td>')
        devices = ", ".join(f"{t}: {d or '?'}" for t, d in sorted(r.devices.items()))
        body.append(
            f'<tr data-config="{html.escape(r.config)}"><td class="config" '
            f'title="{html.escape(devices)}">{html.escape(r.config)}</td>{"".join(cells)}</tr>'
        )
    note = (
        '<p class="note">each target against the first; a ratio above 1 is better '
        "(lower latency, higher throughput); hover a configuration for its device models</p>"
    )
    return (
        f'{note}<table class="targets"><thead><tr><th>config</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
