"""The campaign field table: every key a campaign file may hold, declared once.

Parsing (:mod:`bench.campaign.parse`), trigger-time overrides
(:mod:`bench.campaign.overrides`), the Airflow trigger form
(:mod:`bench.campaign.form`), the matrix expansion
(:class:`bench.campaign.model.Campaign`) and ``docs/campaign-format.md``
(checked by a test) all read these tables and nothing else.

Three kinds of entries:

- :class:`Field`, a top-level key (dots for nesting: ``slo.ttft_ms``). Keys
  that set a :class:`~bench.core.config.RunConfig` field for every
  configuration come from that field's declaration (``campaign=``), its
  default included; campaign-only keys are declared below, in
  :data:`ABOUT` (description, schedule) and :data:`AIRFLOW` (pool, queue, ...).
- :class:`Axis`, a matrix dimension: a list whose values multiply with the
  other axes. Declared on the RunConfig field (``axis=``), or here for an
  axis whose items set several fields (see ``docs/architecture.md``).
- :class:`ModelField`, a key of one ``models:`` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bench.core.config import FIELD as CONFIG_FIELD
from bench.core.config import FIELDS as CONFIG_FIELDS
from bench.core.envvars import WEBHOOK_VARS
from bench.core.fields import UNSET, Declared, Value


@dataclass(frozen=True)
class Field:
    """A top-level campaign key (``key`` dotted for nesting)."""

    key: str
    value: Value
    default: Any
    help: str
    title: str = ""
    #: trigger-form section; ignored unless ``trigger``
    section: str = ""
    #: the trigger form shows it and a trigger may change it
    trigger: bool = False
    #: the RunConfig field it sets for every configuration
    config: str | None = None
    #: the key states the opposite of the RunConfig field (stop_at_eos / ignore_eos)
    inverted: bool = False
    unit: str = ""
    unset: str = "none"
    #: applies only to backends of this load shape
    load_shape: str | None = None

    @property
    def name(self) -> str:
        """Flat name: the :class:`Campaign` attribute and the trigger parameter."""
        return self.key.replace(".", "_")

    def to_config(self, value: Any) -> Any:
        return (not value) if self.inverted else value


@dataclass(frozen=True)
class Axis:
    """A matrix dimension: the campaign list ``key`` (e.g. ``batch_sizes``)."""

    key: str
    #: what each item is (checked with the same rules as the RunConfig field)
    item: Value
    default: tuple[Any, ...]
    help: str
    title: str
    #: the RunConfig fields one item sets (one for a plain list)
    fields: tuple[str, ...]
    unit: str = ""
    #: key of a ``models:`` entry that replaces the list for that model
    model_key: str | None = None
    #: at least this many values; 0 for a load axis with siblings (concurrencies
    #: beside request_rates): when all are empty, one point at the first's minimum
    min_items: int = 1
    #: applies only to backends of this load shape; the load axes of a backend
    #: are alternatives (their points are concatenated, not multiplied)
    load_shape: str | None = None
    #: an item -> the RunConfig fields it sets (default ``{fields[0]: item}``)
    cell: Callable[[Any], Mapping[str, Any]] | None = None
    #: a BackendSpec attribute giving the default list's one item, when the
    #: field's default depends on the backend (precision: bf16, or unknown)
    backend_default: str | None = None
    #: trigger-form section (closed at first); "" = the open matrix section
    section: str = ""
    #: short names an ``exclude`` rule may use for the fields (``input``)
    aliases: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def default_for(self, spec: Any) -> tuple[Any, ...]:
        """The list a campaign of backend ``spec`` gets when it leaves the axis out."""
        if self.backend_default and not self.default:
            return (getattr(spec, self.backend_default),)
        return self.default

    def cell_of(self, item: Any) -> Mapping[str, Any]:
        return self.cell(item) if self.cell is not None else {self.fields[0]: item}


@dataclass(frozen=True)
class ModelField:
    """A key of one ``models:`` entry."""

    key: str
    value: Value
    default: Any
    help: str
    #: the RunConfig field it sets for this model's configurations (mappings
    #: are merged over the campaign's, e.g. options)
    config: str | None = None
    #: the axis whose larger values this one drops for the model (max_batch_size)
    caps: str | None = None


def _campaign_value(field: Declared) -> Value:
    meta = field.setting
    return meta.campaign_value or meta.value


def _campaign_default(field: Declared) -> Any:
    meta = field.setting
    default = field.default if meta.campaign_default is UNSET else meta.campaign_default
    return (not default) if meta.inverted else default


def _from_config() -> tuple[list[Field], list[Axis], list[ModelField]]:
    """The entries the RunConfig declarations ask for (``campaign=``,
    ``axis=``, ``model_key=``), defaults and bounds included."""
    fields: list[Field] = []
    axes: list[Axis] = []
    model_fields: list[ModelField] = []
    load_axes = [f.setting.load_shape for f in CONFIG_FIELDS if f.setting.axis]
    for f in CONFIG_FIELDS:
        meta = f.setting
        if meta.axis:
            item = dataclasses.replace(_campaign_value(f), optional=False)
            axes.append(
                Axis(
                    key=meta.axis,
                    item=item,
                    default=() if f.default is None else (f.default,),
                    help=meta.help,
                    title=meta.title,
                    fields=(f.name,),
                    unit=meta.unit,
                    model_key=meta.model_key,
                    # one of several load axes of a backend may be empty
                    min_items=0 if meta.load_shape and load_axes.count(meta.load_shape) > 1 else 1,
                    load_shape=meta.load_shape,
                    backend_default=meta.backend_default,
                )
            )
        elif meta.model_key:
            model_fields.append(
                ModelField(meta.model_key, _campaign_value(f), f.default, meta.help, config=f.name)
            )
        if meta.campaign:
            fields.append(
                Field(
                    key=meta.campaign,
                    value=_campaign_value(f),
                    default=_campaign_default(f),
                    help=meta.help,
                    title=meta.title,
                    section=meta.section,
                    trigger=meta.trigger,
                    config=f.name,
                    inverted=meta.inverted,
                    unit=meta.unit,
                    unset=meta.unset,
                    load_shape=meta.load_shape,
                )
            )
    return fields, axes, model_fields


#: Precisions a reference may be, most precise first: the default reference is
#: the first of these a campaign runs.
REFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8")


def reference_precision(explicit: str | None, precisions: Iterable[str]) -> str | None:
    """The precision outputs are compared with: ``explicit``, else the most
    precise of ``precisions`` (None when they hold none of
    :data:`REFERENCE_PRECISIONS`, e.g. only an endpoint's ``unknown``)."""
    if explicit is not None:
        return explicit
    held = set(precisions)
    return next((p for p in REFERENCE_PRECISIONS if p in held), None)


#: Campaign-only keys about the campaign itself (listed first in the docs).
ABOUT: tuple[Field, ...] = (
    Field(
        "description",
        Value(str),
        "",
        "markdown: the DAG's documentation and the top of its trigger form",
        title="Description",
    ),
    Field(
        "schedule",
        Value(str, optional=True),
        None,
        'cron expression ("0 2 * * *"); null: manual and API triggers only',
        title="Schedule",
        unset="manual and API triggers only",
    ),
)

#: Campaign-only keys of the DAG around the configurations (the DAG is built
#: with them, so a trigger cannot change them).
AIRFLOW: tuple[Field, ...] = (
    Field(
        "pool",
        Value(str, non_empty=True),
        "default_pool",
        "Airflow pool the benchmark tasks take slots from (slots = cards; a "
        "configuration takes world_size slots)",
        title="Pool",
    ),
    Field(
        "queue",
        Value(str, non_empty=True),
        "default",
        'Celery queue of the benchmark tasks ("hpu" on the Gaudi workers)',
        title="Queue",
    ),
    Field(
        "timeout_minutes",
        Value(float, positive=True),
        60.0,
        "execution timeout of one benchmark task (the child is killed a minute earlier)",
        title="Timeout",
        unit="minutes",
    ),
    Field(
        "retries",
        Value(int, minimum=0),
        1,
        "retries of a failed benchmark task (a retry replaces its run, never duplicates it)",
        title="Retries",
    ),
    Field(
        "thresholds",
        Value(dict),
        MappingProxyType({}),
        "regression thresholds per metric (README, Regressions); checked by the plan task",
        title="Thresholds",
    ),
    Field(
        "reference_precision",
        Value(str, choices=REFERENCE_PRECISIONS, optional=True),
        None,
        "the precision each configuration's outputs are compared with (output_exact_match, "
        "output_prefix_match); the campaign must run it",
        title="Reference precision",
        unset="the most precise one the campaign runs (fp32 > bf16 > fp16 > fp8)",
    ),
    Field(
        "notify.webhook",
        Value(str, optional=True, variables=WEBHOOK_VARS),
        None,
        'URL that gets the confirmed regressions as {"text": ...} (Slack, Mattermost, '
        "Teams); may use ${BENCH_NOTIFY_WEBHOOK}, expanded when posting",
        title="Notification webhook",
        unset="no notification",
    ),
)

_CONFIG_FIELDS, _AXES, _CONFIG_MODEL_FIELDS = _from_config()

#: Workload shapes: the input/output pairs published tables are quoted by.
SHAPES = Axis(
    key="shapes",
    item=Value(
        dict,
        record={
            # the RunConfig fields' own bounds
            "input": dataclasses.replace(
                CONFIG_FIELD["input_tokens"].setting.value, optional=False
            ),
            "output": CONFIG_FIELD["max_new_tokens"].setting.value,
        },
    ),
    default=(),
    help="workload shapes: exact prompt tokens (chat template and BOS included) and output "
    "tokens per request, e.g. {input: 128, output: 128}; each multiplies the matrix and "
    "replaces max_new_tokens",
    title="Shapes",
    fields=("input_tokens", "max_new_tokens"),
    unit="tokens",
    model_key="shapes",
    min_items=0,  # omitted: the prompt set as is, max_new_tokens as declared
    # a JSON editor: beside the output length, not in the open matrix of menus
    section=CONFIG_FIELD["max_new_tokens"].setting.section,
    cell=lambda item: {"input_tokens": item["input"], "max_new_tokens": item["output"]},
    aliases=MappingProxyType({"input": "input_tokens", "output": "max_new_tokens"}),
)

#: The node pools a campaign runs on (README "Campaigns across node pools"):
#: each configuration once per target, its task routed to the target's Celery
#: queue and Airflow pool (the campaign's ``queue``/``pool`` where it leaves
#: them out), its label ending in ``@<name>``. Last, so ``exclude`` rules and
#: labels read model x precision x batch x ... x target.
TARGETS = Axis(
    key="targets",
    item=Value(
        dict,
        record={
            "name": Value(str, non_empty=True),
            "queue": Value(str, optional=True, non_empty=True),
            "device": Value(str, optional=True, choices=("cpu", "cuda", "hpu")),
            "pool": Value(str, optional=True, non_empty=True),
            "device_model": Value(str, optional=True, non_empty=True),
        },
    ),
    default=(),
    min_items=0,  # none: the campaign's queue, pool and device, one implicit target
    help="node pools to run every configuration on: {name, queue, device, pool, device_model}; "
    "a task checks its node's device model against device_model before the model loads",
    title="Targets",
    fields=("target", "device", "device_model"),
    cell=lambda t: (
        {"target": t["name"], "device_model": t["device_model"]}
        | ({"device": t["device"]} if t["device"] else {})
    ),
)

#: Every top-level key with a single value, in documentation order.
FIELDS: tuple[Field, ...] = (*ABOUT, *_CONFIG_FIELDS, *AIRFLOW)
#: Every matrix axis, in expansion order (after ``models``).
AXES: tuple[Axis, ...] = (*_AXES, SHAPES, TARGETS)
#: Every key of a ``models:`` entry besides ``name`` and the axes' model keys.
MODEL_FIELDS: tuple[ModelField, ...] = (
    *_CONFIG_MODEL_FIELDS,
    ModelField(
        "max_batch_size",
        Value(int, minimum=1, maximum=4096, optional=True),
        None,
        "drop this model's batch sizes above this value",
        caps="batch_sizes",
    ),
)
#: A model's ``name`` is the RunConfig ``model``: its rules, ${VAR} allow-list included.
MODEL_NAME: Value = CONFIG_FIELD["model"].setting.value
#: Structural keys, parsed by :mod:`bench.campaign.parse` (listed for docs and checks).
STRUCTURE: Mapping[str, str] = MappingProxyType(
    {
        "models": "the models to benchmark (required, at least one; keys below)",
        "exclude": "matrix points to drop: each a mapping of matrix keys, matching when all agree",
    }
)


# Lookups read the tables above at call time (a test may extend them).


def field(name: str) -> Field | None:
    """The top-level entry whose flat name (``slo_ttft_ms``) is ``name``."""
    return next((f for f in FIELDS if f.name == name), None)


def axis(key: str) -> Axis | None:
    return next((a for a in AXES if a.key == key), None)


def matrix_keys() -> tuple[str, ...]:
    """Keys a matrix point has: what ``exclude`` rules and error messages name."""
    return ("model", *dict.fromkeys(f for a in AXES for f in a.fields))


def key_aliases() -> Mapping[str, str]:
    """Short names of matrix keys an ``exclude`` rule may use (``input`` for
    ``input_tokens``)."""
    return {alias: name for a in AXES for alias, name in a.aliases.items()}


def top_keys() -> frozenset[str]:
    """Top-level keys of a file: each field's first segment, the axes, the structure."""
    return frozenset({f.key.split(".")[0] for f in FIELDS} | {a.key for a in AXES} | set(STRUCTURE))


def model_keys() -> frozenset[str]:
    """Keys of a ``models:`` entry."""
    return frozenset(
        {"name"} | {m.key for m in MODEL_FIELDS} | {a.model_key for a in AXES if a.model_key}
    )
