"""Checking campaign values against the table, with errors that locate them.

The rules are the fields' own (:class:`bench.core.fields.Value`, the same
that validate a RunConfig); only the wording differs: a campaign error
starts with the file (or "trigger params") and the key, because it surfaces
as a DAG import error or a failed ``plan`` task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.campaign.fields import Axis
from bench.core.fields import Invalid, Value
from bench.errors import CampaignError

_PLURALS = {int: "integers", float: "numbers", str: "strings"}


def fail(where: str, key: str, problem: str) -> CampaignError:
    """``<where><key>: <problem>``, e.g. ``smoke.yaml: batch_sizes: expected ...``."""
    return CampaignError(f"{where}{key}: {problem}")


def check_value(spec: Value, raw: Any, key: str, where: str) -> Any:
    """``raw`` normalised by ``spec``; CampaignError naming ``key`` if refused."""
    try:
        return spec.check(raw)
    except Invalid as exc:
        raise fail(where, key, problem(spec, exc)) from None


def problem(spec: Value, error: Invalid) -> str:
    """Why ``spec`` refused a single value, in campaign wording."""
    value = error.value
    if error.rule == "type":
        return f"expected {spec.type_name}, got {value!r}"
    if error.rule == "positive":
        return f"must be > 0, got {value!r}"
    if error.rule in ("min", "max"):
        sign, bound = (">=", spec.minimum) if error.rule == "min" else ("<=", spec.maximum)
        return f"must be {sign} {bound:g}, got {value!r}"
    if error.rule == "choice":
        return f"unknown value {value!r}; choose one of: {', '.join(spec.options() or ())}"
    if error.rule == "empty":
        return "must be a non-empty string"
    if error.rule == "key":
        if error.inner is None:
            return f"{error.detail}: unknown key (keys: {', '.join(spec.record or ())})"
        return f"{error.detail}: {problem((spec.record or {})[error.detail], error.inner)}"
    return (
        f"${{{error.detail}}} is not expanded in campaign files; allowed: "
        f"{', '.join(spec.variables or ())}"
    )


def check_list(axis: Axis, raw: Any, where: str) -> tuple[Any, ...]:
    """The list ``raw`` for ``axis``: every item checked, duplicates dropped
    (first kept); None is an empty selection (what the form sends for a
    cleared multi-select)."""
    key, item = axis.key, axis.item
    if raw is None:
        raw = []
    if not isinstance(raw, list | tuple):
        raise fail(where, key, f"expected list, got {raw!r}")
    choices = item.options()
    values: list[Any] = []
    bad: list[Any] = []
    for index, entry in enumerate(raw):
        try:
            value = item.check(entry)
        except Invalid as exc:
            if item.record is not None:
                raise fail(where, f"{key}[{index}]", problem(item, exc)) from None
            if choices is None:
                raise fail(where, key, f"expected {_items(item)}, got {entry!r}") from None
            bad.append(entry)
            continue
        if value not in values:
            values.append(value)
    if bad or (choices is not None and len(values) < axis.min_items):
        text = f"unknown value(s) {', '.join(map(repr, bad))}" if bad else "empty list"
        raise fail(where, key, f"{text}; choose from: {', '.join(choices or ())}")
    if len(values) < axis.min_items:
        raise fail(where, key, f"expected at least {axis.min_items} value(s)")
    return tuple(values)


def _items(item: Value) -> str:
    """``integers >= 1 and <= 4096``, ``positive numbers``."""
    plural = _PLURALS.get(item.type, "values")
    if item.positive:
        plural = f"positive {plural}"
    bounds: Sequence[str] = [
        f"{sign} {bound:g}"
        for sign, bound in ((">=", item.minimum), ("<=", item.maximum))
        if bound is not None
    ]
    return plural + (" " + " and ".join(bounds) if bounds else "")
