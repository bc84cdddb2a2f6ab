"""The report's "Outputs" section: what the campaign's runs generated.

Three tables, each about correctness rather than speed (README "Outputs"):

* **drift**: every ``output_changed`` verdict (tokens other than the
  previous run of the configuration), with how many requests changed, the
  first of them, what changed in the environment, and the first changed
  request as text: the tokens both runs share just before the difference,
  then each run's continuation (decoded when the model's tokenizer is at
  hand, else token ids). A configuration marked output-nondeterministic has
  its badge, shown but not alarmed;
* **agreement**: each configuration against the same configuration at the
  campaign's reference precision (``output_exact_match``,
  ``output_prefix_match``);
* **batch-size invariance**: the same prompts at batch size 1 and N, as
  information (padding and batched kernels may legitimately flip a
  near-tie).

Plain data filled by :mod:`bench.report.campaign`; nothing here reads the DB.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stats.outputs import ChangedText


@dataclass(frozen=True)
class DriftNote:
    """One ``output_changed`` verdict as the section shows it."""

    label: str
    requests_changed: int
    requests_compared: int
    first_request: int | None
    first_position: int | None
    baseline_run_id: int | None
    nondeterministic: bool
    changed: Mapping[str, Any] = field(default_factory=dict)
    diff: ChangedText | None = None


@dataclass(frozen=True)
class AgreementRow:
    """A configuration's agreement with its run at the reference precision."""

    label: str
    precision: str
    exact_match: float | None
    prefix_match: float | None


@dataclass(frozen=True)
class InvarianceRow:
    """A configuration at batch size N against the same one at batch size 1."""

    label: str
    batch_size: int
    compared: int
    exact_match: float | None
    prefix_match: float | None


@dataclass(frozen=True)
class OutputsData:
    """Everything the section shows; ``reference`` is the campaign's reference precision."""

    reference: str | None = None
    drift: Sequence[DriftNote] = ()
    agreement: Sequence[AgreementRow] = ()
    invariance: Sequence[InvarianceRow] = ()

    def __post_init__(self) -> None:
        for name in ("drift", "agreement", "invariance"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(css: str, head: Sequence[str], rows: Sequence[str]) -> str:
    cells = "".join(f"<th>{h}</th>" for h in head)
    return (
        f'<table class="latest {css}"><thead><tr>{cells}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _diff(diff: ChangedText | None) -> str:
    if diff is None:
        return '<span class="note">no ids kept (--no-outputs): the position is unknown</span>'
    where = f"request {diff.request_index}" + (
        f", token {diff.position}" if diff.position is not None else ""
    )
    kind = "text" if diff.decoded else "token ids (no tokenizer at hand)"
    return (
        f'<div class="output-diff" data-request="{diff.request_index}">'
        f'<span class="note">{html.escape(where)}; {kind}</span>'
        f'<pre>…{html.escape(diff.common)}<del class="before">{html.escape(diff.before)}</del>'
        f'\n…{html.escape(diff.common)}<ins class="after">{html.escape(diff.after)}</ins></pre>'
        "</div>"
    )


def _drift(notes: Sequence[DriftNote]) -> str:
    from bench.report.changes import changes_list

    if not notes:
        return '<p class="note">no configuration generated other tokens than its previous run</p>'
    rows = []
    for n in notes:
        badge = (
            '<span class="badge suspicious" title="outputs changed on consecutive runs with'
            ' nothing else changed: shown, not alarmed">nondeterministic</span>'
            if n.nondeterministic
            else '<span class="badge output_changed">output_changed</span>'
        )
        rows.append(
            f'<tr class="drift" data-label="{html.escape(n.label)}"'
            f' data-nondeterministic="{str(n.nondeterministic).lower()}">'
            f'<td class="config">{html.escape(n.label)}</td><td>{badge}</td>'
            f"<td>{n.requests_changed} of {n.requests_compared}</td>"
            f"<td>{n.baseline_run_id if n.baseline_run_id is not None else '-'}</td>"
            f"<td>{changes_list(n.changed)}</td><td>{_diff(n.diff)}</td></tr>"
        )
    return _table(
        "drift",
        ("config", "verdict", "requests changed", "vs run", "what changed", "first change"),
        rows,
    )


def _agreement(reference: str | None, rows: Sequence[AgreementRow]) -> str:
    if not rows:
        return '<p class="note">no configuration ran at the reference precision</p>'
    body = [
        f'<tr class="agreement" data-label="{html.escape(r.label)}">'
        f'<td class="config">{html.escape(r.label)}</td><td>{html.escape(r.precision)}</td>'
        f"<td>{_fraction(r.exact_match)}</td><td>{_fraction(r.prefix_match)}</td></tr>"
        for r in rows
    ]
    note = f'<p class="note">against the same configuration at {html.escape(str(reference))}</p>'
    return note + _table(
        "agreement",
        ("config", "precision", "output_exact_match", "output_prefix_match"),
        body,
    )


def _invariance(rows: Sequence[InvarianceRow]) -> str:
    if not rows:
        return ""
    body = [
        f'<tr class="invariance" data-label="{html.escape(r.label)}">'
        f'<td class="config">{html.escape(r.label)}</td><td>{r.compared}</td>'
        f"<td>{_fraction(r.exact_match)}</td><td>{_fraction(r.prefix_match)}</td></tr>"
        for r in rows
    ]
    return (
        "<h3>Batch-size invariance (information)</h3>"
        '<p class="note">the same prompts at batch size 1 and at the batch size of the row</p>'
        + _table("invariance", ("config", "requests", "identical", "prefix match"), body)
    )


def outputs_section(data: OutputsData) -> str:
    """The section's HTML body."""
    return (
        "<h3>Output drift against the previous run</h3>"
        + _drift(data.drift)
        + "<h3>Agreement with the reference precision</h3>"
        + _agreement(data.reference, data.agreement)
        + _invariance(data.invariance)
    )
