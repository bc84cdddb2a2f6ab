"""A parsed campaign and its matrix.

:class:`Campaign` holds the values of the field table
(:mod:`bench.campaign.fields`) by name, so a field added to the table needs
no attribute here: ``campaign.limit``, ``campaign.batch_sizes`` and
``campaign.notify_webhook`` read the table's values. :meth:`Campaign.expand`
turns it into RunConfigs, one per model x axis point, and says why when a
model contributes none (a ``max_batch_size``, a model's own list that holds
none of the selected values, exclusion rules), so an empty matrix is
reported with its cause.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bench.backends import BACKENDS, BackendSpec
from bench.campaign import fields as table
from bench.campaign.fields import Axis
from bench.core.config import RunConfig
from bench.errors import CampaignError, ConfigError

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class _Values:
    """Attribute access to a table's values (``campaign.limit``)."""

    def _lookup(self, name: str) -> Any:
        raise AttributeError(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy/pickle probe the instance before it is filled
            raise AttributeError(name)
        return self._lookup(name)


@dataclass(frozen=True)
class ModelEntry(_Values):
    """One entry of ``models:``: its name, its keys (path, world_size, ...)
    and its own axis lists (a list absent here is the campaign's)."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    lists: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: _EMPTY)

    def _lookup(self, name: str) -> Any:
        if name in self.settings:
            return self.settings[name]
        if any(a.model_key == name for a in table.AXES):
            return self.lists.get(name)
        raise AttributeError(f"a model entry has no field {name!r}")


@dataclass(frozen=True)
class Lane:
    """One mapped benchmark task of a campaign's DAG: the configurations of
    one world size on one target. Airflow fixes a task's queue, pool and pool
    slots once, not per map index, hence one task per lane."""

    #: cards one configuration of the lane takes (its pool slots)
    world_size: int
    target: str | None
    queue: str
    pool: str

    @property
    def suffix(self) -> str:
        """Of the task ids: "", "_tp8", "_gaudi3", "_tp8_gaudi3"."""
        tp = f"_tp{self.world_size}" if self.world_size > 1 else ""
        return tp + (f"_{self.target}" if self.target else "")


@dataclass(frozen=True)
class Campaign(_Values):
    """A validated campaign file; build it with :func:`bench.campaign.parse_campaign`."""

    name: str
    models: tuple[ModelEntry, ...]
    #: value of every :data:`~bench.campaign.fields.FIELDS` entry, by flat name
    settings: Mapping[str, Any]
    #: every axis list, by key
    lists: Mapping[str, tuple[Any, ...]]
    exclude: tuple[Mapping[str, Any], ...] = ()
    source: str = "<campaign>"
    #: axis values chosen at trigger time: they also filter the models' own lists
    selected: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: _EMPTY)

    def _lookup(self, name: str) -> Any:
        if name in self.settings:
            return self.settings[name]
        if name in self.lists:
            return self.lists[name]
        raise AttributeError(f"a campaign has no field {name!r}")

    @property
    def dag_id(self) -> str:
        return f"llm_bench_{self.name}"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @property
    def summary(self) -> str:
        """The description's first paragraph as plain text (the DAG's one-line
        description), or a generated one."""
        first = self.settings["description"].strip().split("\n\n")[0]
        text = " ".join(re.sub(r"[*`]|^[#>]+", "", first, flags=re.MULTILINE).split())
        n = len(self.configs())
        return f"{text or f'LLM benchmark campaign {self.name}.'} ({n} configurations)"

    @property
    def reference(self) -> str | None:
        """The precision outputs are compared with (``reference_precision``, else
        the most precise one the matrix runs; README "Outputs")."""
        precisions = {c.precision for c in self.configs()}
        return table.reference_precision(self.settings["reference_precision"], precisions)

    @property
    def spec(self) -> BackendSpec:
        return BACKENDS[self.settings["backend"]]

    def axes(self) -> tuple[Axis, ...]:
        """The axes that apply to this campaign's backend."""
        shape = self.spec.load_shape
        return tuple(a for a in table.AXES if a.load_shape in (None, shape))

    # -- expansion --------------------------------------------------------------------

    def configs(self) -> list[RunConfig]:
        """The matrix: one RunConfig per model x axis point, after per-model
        lists, caps (``max_batch_size``) and exclusions."""
        return self.expand()[0]

    def expand(self) -> tuple[list[RunConfig], list[str]]:
        """The matrix, and why each model that contributes nothing does not."""
        out: dict[str, RunConfig] = {}
        reasons: list[str] = []
        for index, model in enumerate(self.models):
            dims, why = self._dimensions(model)
            if why:
                reasons.append(why)
                continue
            removed: dict[int, int] = {}
            kept = 0
            for combo in itertools.product(*dims):
                cell = {"model": model.name}
                for point in combo:
                    cell.update(point)
                rule = next((i for i, r in enumerate(self.exclude) if _matches(r, cell)), None)
                if rule is not None:
                    removed[rule] = removed.get(rule, 0) + 1
                    continue
                config = self._config(index, model, cell)
                self._add(out, config, index)
                kept += 1
            if not kept:
                rules = ", ".join(
                    f"exclude[{i}] {_rule_text(self.exclude[i])} removed {n}"
                    for i, n in sorted(removed.items())
                )
                reasons.append(
                    f"exclusions removed every configuration of model {model.name} ({rules})"
                )
        return list(out.values()), reasons

    def _add(self, out: dict[str, RunConfig], config: RunConfig, index: int) -> None:
        """Add ``config`` under its label (the task's map index and file name);
        the same configuration twice is one, two different ones under one
        label are an error rather than one silently missing."""
        other = out.setdefault(config.label, config)
        if other != config:
            differ = [k for k, v in config.to_dict().items() if other.to_dict()[k] != v]
            raise CampaignError(
                f"{self.source}: models[{index}]: two configurations share the label "
                f"{config.label} (they differ in {', '.join(differ)}); rename a model "
                "or make the label tell them apart"
            )

    def _dimensions(self, model: ModelEntry) -> tuple[list[list[Mapping[str, Any]]], str]:
        """Per dimension, the points of ``model``; or why one has none.

        A backend's load axes (batch sizes, or concurrencies and request
        rates) are alternatives: one dimension holding all their points; when
        all are empty by declaration, one point at the first load axis's
        minimum (bs1, c1). Another axis left empty (one a campaign may omit,
        ``min_items=0``) does not vary: the fields keep their defaults."""
        dims: list[list[Mapping[str, Any]]] = []
        load: list[Mapping[str, Any]] = []
        load_axes = [a for a in self.axes() if a.load_shape]
        for axis in self.axes():
            values, why = self._points(model, axis)
            if why:
                return [], why
            points = [axis.cell_of(v) for v in values]
            if axis.load_shape:
                load += points
            elif points:
                dims.append(points)
        if load_axes:
            first = load_axes[0]
            dims.append(load or [first.cell_of(_minimum(first))])
        return dims, ""

    def _points(self, model: ModelEntry, axis: Axis) -> tuple[Sequence[Any], str]:
        own = model.lists.get(axis.key)
        values: Sequence[Any] = own if own is not None else self.lists[axis.key]
        if own is not None and axis.key in self.selected:
            chosen = self.selected[axis.key]
            values = [v for v in own if v in chosen]
            if own and not values:
                return [], (
                    f"model {model.name} runs only its own {axis.key} {_listed(own)}, "
                    f"none of the selected {_listed(chosen)}"
                )
        for cap in (m for m in table.MODEL_FIELDS if m.caps == axis.key):
            limit = model.settings.get(cap.key)
            if limit is None:
                continue
            below = [v for v in values if v <= limit]
            if values and not below:
                return [], (
                    f"{axis.key} {_listed(values)} are all above {cap.key} {limit} "
                    f"of model {model.name}"
                )
            values = below
        return values, ""

    def _config(self, index: int, model: ModelEntry, cell: Mapping[str, Any]) -> RunConfig:
        kwargs: dict[str, Any] = {}
        for f in table.FIELDS:
            if f.config:
                kwargs[f.config] = f.to_config(self.settings[f.name])
        for m in table.MODEL_FIELDS:
            if m.config:
                value = model.settings.get(m.key, m.default)
                base = kwargs.get(m.config)
                kwargs[m.config] = {**base, **value} if isinstance(base, Mapping) else value
        kwargs.update(cell)
        try:
            return RunConfig(**kwargs)
        except ConfigError as exc:
            point = " x ".join(_point_text(k, v) for k, v in cell.items() if k != "model")
            raise CampaignError(
                f"{self.source}: models[{index}] ({model.name}) x {point}: {exc}"
            ) from None

    def check(self, where: str, *, after: str = "") -> Campaign:
        """Self, once every configuration is valid, the targets are named for
        task ids and labels, and the matrix is not empty."""
        names = [t["name"] for t in self.lists.get("targets", ())]
        for i, name in enumerate(names):
            if not _TARGET_NAME.fullmatch(name):
                raise CampaignError(
                    f"{where}: targets[{i}]: name {name!r}: letters, digits, '_', '-' and '.' "
                    "only (it names a task and ends each label)"
                )
            if name in names[:i]:
                raise CampaignError(f"{where}: targets[{i}]: name {name!r} is used twice")
        configs, reasons = self.expand()
        if not configs:
            raise CampaignError(
                f"{where}: the matrix is empty{after}: {'; '.join(reasons) or 'no models'}"
            )
        return self

    # -- the DAG's shape ----------------------------------------------------------------

    def lanes(self) -> list[Lane]:
        """The mapped benchmark tasks: every target (or the campaign's own
        queue and pool, one implicit target) x every world size its models use."""
        world_sizes = sorted({m.world_size for m in self.models})
        targets = self.lists.get("targets") or ({"name": None, "queue": None, "pool": None},)
        return [
            Lane(
                world_size=ws,
                target=t["name"],
                queue=t["queue"] or self.settings["queue"],
                pool=t["pool"] or self.settings["pool"],
            )
            for t in targets
            for ws in world_sizes
        ]

    def pools(self) -> dict[str, int]:
        """Each Airflow pool the benchmark tasks take slots from, with the
        most slots one of its tasks takes (a pool smaller than that never
        runs the task)."""
        out: dict[str, int] = {}
        for lane in self.lanes():
            out[lane.pool] = max(out.get(lane.pool, 0), lane.world_size)
        return out

    # -- trigger time -------------------------------------------------------------------

    def trigger_form(self) -> dict[str, dict[str, Any]]:
        """The Airflow trigger form: ``Param`` keyword arguments by name
        (:func:`bench.campaign.form.trigger_form`)."""
        from bench.campaign.form import trigger_form

        return trigger_form(self)

    def with_overrides(self, params: Mapping[str, Any]) -> Campaign:
        """This campaign with trigger-time values applied, re-validated
        (:func:`bench.campaign.overrides.with_overrides`)."""
        from bench.campaign.overrides import with_overrides

        return with_overrides(self, params)


def _matches(rule: Mapping[str, Any], cell: Mapping[str, Any]) -> bool:
    return all(cell.get(k) == v for k, v in rule.items())


def _minimum(axis: Axis) -> Any:
    low = axis.item.minimum if axis.item.minimum is not None else 1
    return axis.item.type(low)


def _point_text(key: str, value: Any) -> str:
    return value if isinstance(value, str) else f"{key}={value}"


def _rule_text(rule: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in rule.items()) + "}"


def _listed(values: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"
