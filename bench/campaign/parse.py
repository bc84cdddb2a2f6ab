"""Campaign files -> :class:`~bench.campaign.model.Campaign`, driven by the field table.

Every error names the file, the key and the problem on one line, because it
surfaces as a DAG import error in the Airflow UI
(``dags/llm_bench_campaign_check.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bench.backends import BACKENDS
from bench.campaign import fields as table
from bench.campaign.model import Campaign, ModelEntry
from bench.campaign.values import check_list, check_value, fail
from bench.core.fields import Value
from bench.core.hashing import frozen
from bench.errors import CampaignError

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def parse_campaign(name: str, data: Any, *, source: str = "<campaign>") -> Campaign:
    """Validate a campaign mapping (parsed YAML) and expand it once to check
    that every matrix point is a valid RunConfig."""
    if not _NAME.fullmatch(name):
        raise CampaignError(
            f"{source}: campaign name {name!r} must match {_NAME.pattern} (it names the DAG)"
        )
    if not isinstance(data, dict):
        raise CampaignError(f"{source}: expected a mapping at the top level")
    where = f"{source}: "
    _unknown_keys(data, table.top_keys(), where)
    settings = {f.name: _field(data, f.key, f.value, f.default, where) for f in table.FIELDS}
    spec = BACKENDS[settings["backend"]]
    campaign = Campaign(
        name=name,
        models=_models(data.get("models"), where),
        settings=MappingProxyType(settings),
        lists=MappingProxyType(
            {
                a.key: check_list(a, _or(data.get(a.key), a.default_for(spec)), where)
                for a in table.AXES
            }
        ),
        exclude=_exclude(data.get("exclude"), where),
        source=source,
    )
    campaign.check(source)
    _check_reference(campaign, where)
    return campaign


def _check_reference(campaign: Campaign, where: str) -> None:
    """An explicit reference precision must be one the file runs (a trigger
    may select a subset without it: then no configuration has a reference)."""
    chosen = campaign.settings["reference_precision"]
    runs = sorted({c.precision for c in campaign.configs()})
    if chosen is not None and chosen not in runs:
        raise fail(where, "reference_precision", f"{chosen} is not run by this campaign "
                   f"(precisions: {', '.join(runs)})")  # fmt: skip


def _or(value: Any, default: Any) -> Any:
    """A key given as null means its default, as if absent."""
    return default if value is None else value


def _field(data: Mapping[str, Any], key: str, spec: Value, default: Any, where: str) -> Any:
    """The value at dotted ``key`` (None or absent: the default), checked."""
    *groups, last = key.split(".")
    node: Any = data
    path = ""
    for group in groups:
        path += group
        node = node.get(group) or {}
        if not isinstance(node, dict):
            raise fail(where, path, f"expected mapping, got {node!r}")
        allowed = {f.key.split(".")[-1] for f in table.FIELDS if f.key.startswith(f"{path}.")}
        _unknown_keys(node, allowed, f"{where}{path}.")
        path += "."
    raw = node.get(last)
    if raw is None:
        return default
    value = check_value(spec, raw, path + last, where)
    return frozen(dict(value)) if isinstance(value, Mapping) else value


def _models(raw: Any, where: str) -> tuple[ModelEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail(where, "models", "at least one model is required")
    models = tuple(_model(i, entry, where) for i, entry in enumerate(raw))
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise fail(where, "models", f"duplicate model name(s): {', '.join(dupes)}")
    return models


def _model(index: int, raw: Any, where: str) -> ModelEntry:
    at = f"{where}models[{index}]."
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise CampaignError(f"{where}models[{index}]: expected a mapping with at least 'name'")
    _unknown_keys(raw, table.model_keys(), at)
    if not raw.get("name"):
        raise fail(at, "name", "required")
    settings = {
        m.key: check_value(m.value, raw[m.key], m.key, at)
        if raw.get(m.key) is not None
        else m.default
        for m in table.MODEL_FIELDS
    }
    lists = {
        a.key: check_list(a, raw[a.model_key], at)
        for a in table.AXES
        if a.model_key and raw.get(a.model_key) is not None
    }
    return ModelEntry(
        name=check_value(table.MODEL_NAME, raw["name"], "name", at),
        settings=MappingProxyType({k: frozen(v) for k, v in settings.items()}),
        lists=MappingProxyType(lists),
    )


def _exclude(raw: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise fail(where, "exclude", f"expected list, got {raw!r}")
    aliases = table.key_aliases()
    keys = (*table.matrix_keys(), *aliases)
    for i, rule in enumerate(raw):
        if not isinstance(rule, dict) or not rule or set(rule) - set(keys):
            raise fail(where, f"exclude[{i}]", f"expected a mapping of {', '.join(keys)}")
    return tuple(MappingProxyType({aliases.get(k, k): v for k, v in rule.items()}) for rule in raw)


def _unknown_keys(data: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CampaignError(
            f"{where}{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )


def load_campaign(path: Path) -> Campaign:
    """Parse ``path``; the DAG id comes from the file stem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise CampaignError(f"{path}{at}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError(f"{path}: cannot read ({exc})") from None
    return parse_campaign(path.stem, data, source=str(path))


def campaign_files(folder: Path) -> list[Path]:
    """The campaign files of ``folder`` (``_name.yaml`` is skipped: a draft)."""
    return sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
