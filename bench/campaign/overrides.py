"""Trigger-time values (the Airflow form, a REST ``conf``) applied to a campaign.

A trigger may change exactly what the form shows (:mod:`bench.campaign.form`
builds both from the same table): ``models`` selects a subset of the file's
models; an axis list replaces the campaign's list and filters each model's
own list; ``trust_remote_code`` can withdraw a model's opt-in but never
grant one; a scalar replaces its value. Settings the DAG is built with
(pool, queue, timeouts) cannot change per run, so they are refused rather
than silently ignored. The result is validated like a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bench.campaign import fields as table
from bench.campaign.form import CAMPAIGN, TRUST, applies, trigger_names
from bench.campaign.values import check_list, check_value, fail
from bench.errors import CampaignError

if TYPE_CHECKING:  # model.py calls in here: a runtime import would be a cycle
    from bench.campaign.model import Campaign, ModelEntry


def with_overrides(campaign: Campaign, params: Mapping[str, Any]) -> Campaign:
    """``campaign`` with ``params`` applied, fully re-validated (CampaignError
    naming the parameter, or why the matrix came out empty)."""
    where = f"{campaign.source} (trigger params)"
    at = f"{where}: "
    settings = dict(campaign.settings)
    lists = dict(campaign.lists)
    selected = dict(campaign.selected)
    models = campaign.models
    trusted: Any = None
    for key, raw in params.items():
        if key == "models":
            models = _select_models(campaign, raw, where)
        elif (axis := table.axis(key)) is not None:
            if not applies(axis.load_shape, campaign.spec):
                raise fail(at, key, _not_applicable(campaign))
            lists[key] = selected[key] = check_list(axis, raw, at)
        elif key == TRUST:
            trusted = [] if raw is None else raw
        elif key == CAMPAIGN:
            if raw != campaign.name:
                raise fail(at, key, f"this is campaign {campaign.name!r}, not {raw!r}")
        elif (f := table.field(key)) is not None and f.trigger:
            if not applies(f.load_shape, campaign.spec):
                raise fail(at, key, _not_applicable(campaign))
            settings[key] = check_value(f.value, raw, key, at)
        elif f is not None:
            raise fail(
                at,
                key,
                "set in the campaign file only (the DAG is built with it); "
                f"a trigger may set: {', '.join(trigger_names(campaign))}",
            )
        else:
            raise CampaignError(f"{at}unknown parameter {key!r}")
    if trusted is not None:
        models = _trust(models, trusted, at)
    changed = dataclasses.replace(
        campaign,
        models=models,
        settings=MappingProxyType(settings),
        lists=MappingProxyType(lists),
        selected=MappingProxyType(selected),
    )
    return changed.check(where, after=" after overrides and exclusions")


def _select_models(campaign: Campaign, raw: Any, where: str) -> tuple[ModelEntry, ...]:
    if not isinstance(raw, list | tuple):
        raise CampaignError(f"{where}: models must be a list, got {raw!r}")
    unknown = [n for n in raw if n not in campaign.model_names]
    if unknown or not raw:
        raise CampaignError(
            f"{where}: models: {', '.join(map(repr, unknown)) or 'empty selection'}; "
            f"this campaign has: {', '.join(campaign.model_names)}"
        )
    return tuple(m for m in campaign.models if m.name in raw)


def _trust(models: tuple[ModelEntry, ...], names: Any, at: str) -> tuple[ModelEntry, ...]:
    """Withdraw trust_remote_code from the models not in ``names``; the file
    alone can grant it."""
    if not isinstance(names, list | tuple):
        raise fail(at, TRUST, f"expected list, got {names!r}")
    opted_in = [m.name for m in models if m.settings["trust_remote_code"]]
    granted = [n for n in names if n not in opted_in]
    if granted:
        raise fail(
            at,
            TRUST,
            f"{', '.join(map(repr, granted))} not opted in by the campaign file, "
            f"which alone can trust a model's code (opted in: {', '.join(opted_in) or 'none'})",
        )
    return tuple(
        m
        if m.name in names or not m.settings["trust_remote_code"]
        else dataclasses.replace(
            m, settings=MappingProxyType({**m.settings, "trust_remote_code": False})
        )
        for m in models
    )


def _not_applicable(campaign: Campaign) -> str:
    return f"does not apply to backend {campaign.spec.name} ({campaign.spec.summary})"
