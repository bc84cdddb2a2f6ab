"""The Airflow trigger form of a campaign, built from the field table.

Each entry is the keyword arguments of an Airflow ``Param``: a JSON schema
(types, enums, bounds: the form validates before a run exists) plus
``title``, ``description`` (with units and bounds) and ``section``. How
Airflow 3.3's React form renders them decides the shapes used here
(``airflow/ui/src/components/FlexibleForm``):

- an array is a multi-select only when the field itself carries
  ``examples`` (or ``enum``); an ``enum`` on an array would constrain the
  whole list, so the choices go in ``examples`` and each item's ``enum``;
- the multi-select offers and sends its items as strings and compares them
  with the selected values as given, so a numeric axis lists its default and
  choices as strings (``"8"``; numbers would show selected values again in
  the menu); the items accept numbers too (REST ``conf``) and overrides
  convert both;
- a cleared multi-select sends null, so optional lists allow null;
- the form opens only its default section ("Run Parameters", the one a
  field without ``section`` lands in): the matrix fields carry no section so
  they are open when the form appears; the rest are grouped below it;
- the form has no description slot: the first field (``campaign``) shows
  the campaign's description under its name.

Fields that do not apply to the campaign's backend (batch sizes on an
openai campaign, concurrency on hf) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench.backends import BackendSpec
from bench.campaign import fields as table
from bench.campaign.fields import Axis, Field
from bench.core.config import MODEL
from bench.core.fields import Value

if TYPE_CHECKING:
    from bench.campaign.model import Campaign

#: The form's first field: the campaign's name, with its description under it.
CAMPAIGN = "campaign"
#: The models allowed to run their repository's code (per-model opt-in).
TRUST = "trust_remote_code"
#: RunConfig fields whose choices the backend narrows (BackendSpec attribute).
_BACKEND_CHOICES = {"device": "devices", "precision": "precisions", "timing": "timings"}
_PATTERNS = {int: r"^[0-9]+$", float: r"^[0-9]*\.?[0-9]+$"}


def applies(load_shape: str | None, spec: BackendSpec) -> bool:
    """Whether a field declared for ``load_shape`` applies to backend ``spec``."""
    return load_shape in (None, spec.load_shape)


def trigger_form(campaign: Campaign) -> dict[str, dict[str, Any]]:
    """``Param`` keyword arguments by name: the campaign, the matrix (open),
    then the trigger-settable fields by section; defaults from the file."""
    form: dict[str, dict[str, Any]] = {CAMPAIGN: _about(campaign), "models": _models(campaign)}
    for axis in campaign.axes():
        if axis is table.TARGETS and not campaign.targets:
            continue  # the DAG has one task per target of the file: none to choose among
        if not axis.section:
            form[axis.key] = _axis(campaign, axis)
    scalars = [f for f in table.FIELDS if f.trigger and applies(f.load_shape, campaign.spec)]
    for section in dict.fromkeys(f.section for f in scalars):
        for f in scalars:
            if f.section == section:
                form[f.name] = _scalar(campaign, f)
        for axis in campaign.axes():  # an axis edited as JSON waits in its closed section
            if axis.section == section:
                form[axis.key] = {**_axis(campaign, axis), "section": section}
        if section == MODEL and (trusted := _trusted(campaign)):
            form[TRUST] = _trust(trusted)
    return form


def trigger_names(campaign: Campaign) -> list[str]:
    """What a trigger may set, for error messages."""
    return [name for name in trigger_form(campaign) if name != CAMPAIGN]


def _about(campaign: Campaign) -> dict[str, Any]:
    return {
        "default": campaign.name,
        "type": "string",
        "enum": [campaign.name],
        "title": "Campaign",
        "description_md": campaign.settings["description"] or f"Campaign file `{campaign.source}`.",
    }


def _models(campaign: Campaign) -> dict[str, Any]:
    names = list(campaign.model_names)
    return {
        "default": names,
        "type": "array",
        "title": "Models",
        "description": "Models of this campaign to benchmark; each keeps its own settings "
        "from the campaign file (path, lists, max_batch_size).",
        "examples": names,
        "items": {"type": "string", "enum": names},
        "uniqueItems": True,
        "minItems": 1,
    }


def _axis(campaign: Campaign, axis: Axis) -> dict[str, Any]:
    """A multi-select of the axis's choices (or of suggestions, for numbers);
    a JSON list for items that are mappings (Airflow's array editor)."""
    item = axis.item
    values: list[Any] = list(campaign.lists[axis.key])
    spec: dict[str, Any] = {"type": "array" if axis.min_items else ["array", "null"]}
    choices = _choices(axis.fields[0], item, campaign.spec)
    if choices is not None:
        spec["examples"] = list(choices)
        spec["items"] = {"type": "string", "enum": list(choices)}
        extra = f"The {campaign.spec.name} backend supports {', '.join(choices)}."
    elif item.type in (int, float):
        values = [_text(v) for v in values]
        spec["examples"] = [_text(v) for v in _suggestions(axis, campaign)]
        spec["items"] = _numeric_items(item)
        extra = _capitalized(item.bounds(axis.unit)) + (
            "; the menu offers the campaign's values and powers of two, the Configuration "
            "JSON under Advanced Options takes any other"
        )
        caps = [m.key for m in table.MODEL_FIELDS if m.caps == axis.key]
        if caps:
            extra += f"; a model's {', '.join(caps)} still applies"
        extra += "."
    else:
        spec["items"] = item.schema()
        extra = f"A JSON list of mappings with keys {', '.join(item.record or ())}."
    return {
        "default": values,
        **spec,
        "title": axis.title,
        "description": f"{_sentence(axis.help)} {extra}",
        "uniqueItems": True,
        "minItems": axis.min_items,
    }


def _scalar(campaign: Campaign, f: Field) -> dict[str, Any]:
    schema = f.value.schema()
    if (choices := _choices(f.config, f.value, campaign.spec)) is not None:
        schema["enum"] = [*choices, *([None] if f.value.optional else [])]
    text = _sentence(f.help)
    if span := f.value.bounds(f.unit):
        text += f" {_capitalized(span)}."
    if f.value.optional:
        text += f" Empty: {f.unset}."
    return {
        "default": campaign.settings[f.name],
        **schema,
        "title": f.title + (f" ({f.unit})" if f.unit in ("ms", "req/s") else ""),
        "description": text,
        "section": f.section,
    }


def _trusted(campaign: Campaign) -> list[str]:
    return [m.name for m in campaign.models if m.settings["trust_remote_code"]]


def _trust(trusted: list[str]) -> dict[str, Any]:
    return {
        "default": trusted,
        "type": ["array", "null"],
        "title": "Trust remote code",
        "description": "Models whose repository code (custom modeling files) may run on the "
        "workers. Only the campaign file can opt a model in (trust_remote_code: true); "
        "remove one here to load it without.",
        "examples": trusted,
        "items": {"type": "string", "enum": trusted},
        "uniqueItems": True,
        "section": MODEL,
    }


def _choices(config: str | None, value: Value, spec: BackendSpec) -> tuple[str, ...] | None:
    choices = value.options()
    narrowed = _BACKEND_CHOICES.get(config or "")
    if choices is None or narrowed is None:
        return choices
    allowed = getattr(spec, narrowed)
    return tuple(c for c in choices if c in allowed)


def _numeric_items(item: Value) -> dict[str, Any]:
    """Numbers within the bounds, or the digit strings the multi-select sends."""
    schema = item.schema()
    kind = schema.pop("type")
    return {**schema, "type": [kind, "string"], "pattern": _PATTERNS[item.type]}


def _suggestions(axis: Axis, campaign: Campaign) -> list[Any]:
    """The campaign's values (its models' own lists too) and a ladder of
    powers of two within the bounds."""
    item = axis.item
    own = [v for m in campaign.models for v in m.lists.get(axis.key, ())]
    if item.type is int:
        low, high = int(item.minimum or 1), int(item.maximum or 1024)
        ladder: Sequence[Any] = [2**k for k in range(13) if low <= 2**k <= high]
    else:
        ladder = [2.0**k for k in range(-1, 7)]
    return sorted({*campaign.lists[axis.key], *own, *ladder})


def _text(number: float) -> str:
    """A number as the browser writes it (``String(2.5)``, ``String(64)``)."""
    return f"{number:g}"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    return _capitalized(text) + ("" if text.endswith(".") else ".")
