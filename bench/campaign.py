"""Campaign files: a YAML description of a benchmark matrix.

``dags/campaigns/<name>.yaml`` becomes Airflow DAG ``llm_bench_<name>``, but
nothing here knows about Airflow: parsing, validation, trigger-time
overrides and the model x precision x batch-size expansion are plain Python,
so the CLI, tests and DAGs share them. The format is documented in
``docs/campaign-format.md``. Every error names the file, the field and the
problem, because it surfaces as a DAG import error in the Airflow UI.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.backends import BACKENDS
from bench.core.config import CONCRETE_DEVICES, PRECISIONS, TIMING_MODES, RunConfig
from bench.errors import CampaignError, ConfigError

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
MATRIX_KEYS = ("model", "precision", "batch_size", "concurrency", "request_rate")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str | None = None
    precisions: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    max_batch_size: int | None = None
    world_size: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Campaign:
    name: str
    models: tuple[ModelEntry, ...]
    description: str = ""
    schedule: str | None = None
    device: str = "cpu"
    backend: str = "hf"
    precisions: tuple[str, ...] = ("bf16",)
    batch_sizes: tuple[int, ...] = (1,)
    concurrencies: tuple[int, ...] = ()
    request_rates: tuple[float, ...] = ()
    max_new_tokens: int = 128
    prompts: str = "default"
    limit: int | None = None
    warmup: int = 1
    seed: int = 0
    stop_at_eos: bool = False
    #: None: the device's default (RunConfig.timing)
    timing: str | None = None
    pool: str = "default_pool"
    queue: str = "default"
    timeout_minutes: float = 60
    retries: int = 1
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    #: Webhook URL (``$VARS`` expand at run time) that gets the regressions.
    notify_webhook: str | None = None
    exclude: tuple[Mapping[str, Any], ...] = ()
    source: str = "<campaign>"

    @property
    def dag_id(self) -> str:
        return f"llm_bench_{self.name}"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    # -- expansion --------------------------------------------------------------------

    def configs(self) -> list[RunConfig]:
        """The matrix: one RunConfig per model x precision x load point,
        after per-model overrides, ``max_batch_size`` and exclusions."""
        out: dict[str, RunConfig] = {}
        stream = BACKENDS[self.backend].load_shape == "stream"
        for index, model in enumerate(self.models):
            precisions = model.precisions or self.precisions
            for precision, shape in itertools.product(precisions, self._load_points(model, stream)):
                cell = {"model": model.name, "precision": precision, **shape}
                if self._excluded(cell):
                    continue
                where = f"models[{index}] ({model.name}) x {precision} x {_shape_label(shape)}"
                config = self._config(model, precision, shape, where)
                out.setdefault(config.label, config)
        return list(out.values())

    def _load_points(self, model: ModelEntry, stream: bool) -> list[dict[str, Any]]:
        if stream:
            points: list[dict[str, Any]] = [{"concurrency": c} for c in self.concurrencies]
            points += [{"request_rate": r} for r in self.request_rates]
            return points or [{"concurrency": 1}]
        sizes = model.batch_sizes or self.batch_sizes
        if model.max_batch_size is not None:
            sizes = tuple(b for b in sizes if b <= model.max_batch_size)
        return [{"batch_size": b} for b in sizes]

    def _excluded(self, cell: Mapping[str, Any]) -> bool:
        return any(all(cell.get(k) == v for k, v in rule.items()) for rule in self.exclude)

    def _config(
        self, model: ModelEntry, precision: str, shape: Mapping[str, Any], where: str
    ) -> RunConfig:
        try:
            return RunConfig(
                model=model.name,
                model_path=model.path,
                precision=precision,
                max_new_tokens=self.max_new_tokens,
                device=self.device,
                backend=self.backend,
                warmup=self.warmup,
                prompts=self.prompts,
                limit=self.limit,
                seed=self.seed,
                ignore_eos=not self.stop_at_eos,
                timing=self.timing,
                trust_remote_code=model.trust_remote_code,
                world_size=model.world_size,
                slo_ttft_ms=self.slo_ttft_ms,
                slo_tpot_ms=self.slo_tpot_ms,
                options={**self.options, **model.options},
                **shape,
            )
        except ConfigError as exc:
            raise CampaignError(f"{self.source}: {where}: {exc}") from None

    # -- trigger-time overrides ---------------------------------------------------------

    def trigger_form(self) -> dict[str, dict[str, Any]]:
        """JSON-schema field specs (Airflow ``Param`` keyword arguments) for the
        trigger form, defaults from this file; :meth:`with_overrides` accepts
        exactly these names and re-validates whatever the form lets through."""
        spec = BACKENDS[self.backend]
        matrix, load, run = "Matrix", "Load", "Run"

        def int_list(
            default: Sequence[int], title: str, text: str, min_items: int = 1
        ) -> dict[str, Any]:
            return {
                "default": list(default),
                "type": "array",
                "title": title,
                "section": matrix,
                "items": {"type": "integer", "minimum": 1, "maximum": 4096},
                "uniqueItems": True,
                "minItems": min_items,
                "description": text,
            }

        return {
            "models": {
                "default": list(self.model_names),
                "type": "array",
                "title": "Models",
                "section": matrix,
                "items": {"type": "string", "enum": list(self.model_names)},
                "uniqueItems": True,
                "minItems": 1,
                "description": "Models of this campaign to benchmark.",
            },
            "precisions": {
                "default": list(self.precisions),
                "type": "array",
                "title": "Precisions",
                "section": matrix,
                "items": {"type": "string", "enum": list(spec.precisions)},
                "uniqueItems": True,
                "minItems": 1,
                "description": f"Weights/compute dtype; the {self.backend} backend supports {', '.join(spec.precisions)}.",
            },
            "batch_sizes": int_list(
                self.batch_sizes,
                "Batch sizes",
                "Sequences per generate() call (a model's max_batch_size still applies).",
            ),
            "concurrencies": int_list(
                self.concurrencies,
                "Concurrency levels",
                "Requests in flight (openai backend only).",
                min_items=0,
            ),
            "max_new_tokens": {
                "default": self.max_new_tokens,
                "type": "integer",
                "minimum": 1,
                "maximum": 32768,
                "title": "Output tokens per request",
                "section": load,
            },
            "prompts": {
                "default": self.prompts,
                "type": "string",
                "minLength": 1,
                "title": "Prompt set",
                "section": load,
                "description": "A set name under prompts/ (e.g. default) or a .txt/.jsonl path on the workers.",
            },
            "limit": {
                "default": self.limit,
                "type": ["null", "integer"],
                "minimum": 1,
                "title": "Requests per config",
                "section": load,
                "description": "Measured requests per configuration; empty = the whole prompt set.",
            },
            "warmup": {
                "default": self.warmup,
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "title": "Warmup iterations",
                "section": load,
            },
            "device": {
                "default": self.device,
                "type": "string",
                "enum": list(CONCRETE_DEVICES),
                "title": "Device",
                "section": run,
            },
            "slo_ttft_ms": {
                "default": self.slo_ttft_ms,
                "type": ["null", "number"],
                "exclusiveMinimum": 0,
                "title": "TTFT SLO (ms)",
                "section": run,
                "description": "A good request's TTFT is at most this.",
            },
            "slo_tpot_ms": {
                "default": self.slo_tpot_ms,
                "type": ["null", "number"],
                "exclusiveMinimum": 0,
                "title": "TPOT SLO (ms)",
                "section": run,
                "description": "A good request's TPOT is at most this.",
            },
        }

    def with_overrides(self, params: Mapping[str, Any]) -> Campaign:
        """Apply values from the Airflow trigger form or a REST ``conf``.

        ``models`` selects a subset of the file's models by name;
        ``precisions``/``batch_sizes``/``concurrencies``/``request_rates``
        replace the campaign lists and filter per-model lists; scalars
        replace their field. The result is fully re-validated.
        """
        data = dict(params)
        changes: dict[str, Any] = {}
        where = f"{self.source} (trigger params)"
        if (names := data.pop("models", None)) is not None:
            names = _as_list(names, "models", where)
            unknown = [n for n in names if n not in self.model_names]
            if unknown or not names:
                raise CampaignError(
                    f"{where}: models: {', '.join(map(repr, unknown)) or 'empty selection'}; "
                    f"this campaign has: {', '.join(self.model_names)}"
                )
            changes["models"] = tuple(m for m in self.models if m.name in names)
        lists = _Field(data, f"{where}: ")
        filters: dict[str, tuple[Any, ...]] = {}
        for key, parsed in (
            ("precisions", lists.choice_list("precisions", PRECISIONS, None)),
            ("batch_sizes", lists.int_list("batch_sizes", None)),
            ("concurrencies", lists.int_list("concurrencies", None)),
            (
                "request_rates",
                lists.number_list("request_rates") if "request_rates" in data else None,
            ),
        ):
            data.pop(key, None)
            if parsed is not None:
                filters[key] = changes[key] = parsed
        if filters:
            # a model whose own list has nothing left in the selection drops out
            filtered = (_filter_model(m, filters) for m in changes.get("models", self.models))
            changes["models"] = tuple(
                m for m in filtered if m.precisions != () and m.batch_sizes != ()
            )
            if not changes["models"]:
                raise CampaignError(f"{where}: the matrix is empty after overrides and exclusions")
        scalars = {f.name for f in dataclasses.fields(self)} - {
            "name",
            "models",
            "source",
            "exclude",
            "options",
            "thresholds",
            "notify_webhook",
            "description",
            "schedule",
        }
        for key, value in data.items():
            if key not in scalars:
                raise CampaignError(f"{where}: unknown parameter {key!r}")
            changes[key] = value
        merged = _campaign_to_mapping(self)
        for key in ("slo_ttft_ms", "slo_tpot_ms"):
            if key in changes:
                merged["slo"][key.removeprefix("slo_")] = changes.pop(key)
        merged.update({k: _plain(v) for k, v in changes.items()})
        return parse_campaign(self.name, merged, source=self.source)


def _filter_model(model: ModelEntry, filters: Mapping[str, tuple[Any, ...]]) -> ModelEntry:
    changes: dict[str, Any] = {}
    if model.precisions is not None and "precisions" in filters:
        changes["precisions"] = tuple(p for p in model.precisions if p in filters["precisions"])
    if model.batch_sizes is not None and "batch_sizes" in filters:
        changes["batch_sizes"] = tuple(b for b in model.batch_sizes if b in filters["batch_sizes"])
    return dataclasses.replace(model, **changes)


def _shape_label(shape: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in shape.items())


def _as_list(value: Any, key: str, where: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise CampaignError(f"{where}: {key} must be a list, got {value!r}")


# -- parsing ------------------------------------------------------------------------------

_MODEL_KEYS = {f.name for f in dataclasses.fields(ModelEntry)}
_TOP_KEYS = {f.name for f in dataclasses.fields(Campaign)} - {
    "name",
    "source",
    "slo_ttft_ms",
    "slo_tpot_ms",
    "notify_webhook",
} | {"slo", "notify"}


class _Field:
    """Typed access to one mapping, with errors that name file and field path."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, problem: str) -> CampaignError:
        return CampaignError(f"{self.where}{key}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int):
            return float(value)
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"unknown value {value!r}; choose one of: {', '.join(choices)}")
        return str(value)

    def int_list(
        self, key: str, default: tuple[int, ...] | None, *, minimum: int = 1
    ) -> tuple[int, ...] | None:
        values = self.get(key, list, None)
        if values is None:
            return default
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise self.fail(key, f"expected integers >= {minimum}, got {v!r}")
        return tuple(values)

    def number_list(self, key: str) -> tuple[float, ...]:
        values = self.get(key, list, [])
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise self.fail(key, f"expected positive numbers, got {v!r}")
        return tuple(float(v) for v in values)

    def choice_list(
        self, key: str, choices: Sequence[str], default: tuple[str, ...] | None
    ) -> tuple[str, ...] | None:
        values = self.get(key, list, None)
        if values is None:
            return default
        bad = [v for v in values if v not in choices]
        if bad or not values:
            problem = f"unknown value(s) {', '.join(map(repr, bad))}" if bad else "empty list"
            raise self.fail(key, f"{problem}; choose from: {', '.join(choices)}")
        return tuple(values)


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CampaignError(
            f"{where}{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )


def _parse_model(index: int, raw: Any, source: str) -> ModelEntry:
    where = f"{source}: models[{index}]."
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise CampaignError(f"{source}: models[{index}]: expected a mapping with at least 'name'")
    _unknown_keys(raw, _MODEL_KEYS, where)
    f = _Field(raw, where)
    name = f.get("name", str)
    if not name:
        raise f.fail("name", "required")
    max_batch = f.get("max_batch_size", int)
    if max_batch is not None and max_batch < 1:
        raise f.fail("max_batch_size", f"must be >= 1, got {max_batch}")
    return ModelEntry(
        name=name,
        path=f.get("path", str),
        precisions=f.choice_list("precisions", PRECISIONS, None),
        batch_sizes=f.int_list("batch_sizes", None),
        max_batch_size=max_batch,
        world_size=f.get("world_size", int, 1),
        options=f.get("options", dict, {}),
        trust_remote_code=f.get("trust_remote_code", bool, False),
    )


def _notify_webhook(notify: Mapping[str, Any], where: str) -> str | None:
    _unknown_keys(notify, {"webhook"}, where)
    return _Field(notify, where).get("webhook", str)


def parse_campaign(name: str, data: Any, *, source: str = "<campaign>") -> Campaign:
    """Validate a campaign mapping (parsed YAML) and expand it once to check
    that every matrix entry is a valid RunConfig."""
    if not _NAME.fullmatch(name):
        raise CampaignError(
            f"{source}: campaign name {name!r} must match {_NAME.pattern} (it names the DAG)"
        )
    if not isinstance(data, dict):
        raise CampaignError(f"{source}: expected a mapping at the top level")
    where = f"{source}: "
    _unknown_keys(data, _TOP_KEYS, where)
    f = _Field(data, where)
    models_raw = f.get("models", list, None)
    if not models_raw:
        raise f.fail("models", "at least one model is required")
    models = tuple(_parse_model(i, m, source) for i, m in enumerate(models_raw))
    dupes = sorted({m.name for m in models if [x.name for x in models].count(m.name) > 1})
    if dupes:
        raise f.fail("models", f"duplicate model name(s): {', '.join(dupes)}")
    slo = _Field(f.get("slo", dict, {}), f"{where}slo.")
    exclude = tuple(f.get("exclude", list, []))
    for i, rule in enumerate(exclude):
        if not isinstance(rule, dict) or not rule or set(rule) - set(MATRIX_KEYS):
            raise f.fail(f"exclude[{i}]", f"expected a mapping of {', '.join(MATRIX_KEYS)}")
    campaign = Campaign(
        name=name,
        models=models,
        description=f.get("description", str, ""),
        schedule=f.get("schedule", str),
        device=f.choice("device", CONCRETE_DEVICES, "cpu"),
        backend=f.choice("backend", tuple(BACKENDS), "hf"),
        precisions=f.choice_list("precisions", PRECISIONS, ("bf16",)) or ("bf16",),
        batch_sizes=f.int_list("batch_sizes", (1,)) or (1,),
        concurrencies=f.int_list("concurrencies", ()) or (),
        request_rates=f.number_list("request_rates"),
        max_new_tokens=f.get("max_new_tokens", int, 128),
        prompts=f.get("prompts", str, "default"),
        limit=f.get("limit", int),
        warmup=f.get("warmup", int, 1),
        seed=f.get("seed", int, 0),
        stop_at_eos=f.get("stop_at_eos", bool, False),
        timing=None if data.get("timing") is None else f.choice("timing", TIMING_MODES, "stream"),
        pool=f.get("pool", str, "default_pool"),
        queue=f.get("queue", str, "default"),
        timeout_minutes=f.get("timeout_minutes", (int, float), 60.0),
        retries=f.get("retries", int, 1),
        slo_ttft_ms=slo.get("ttft_ms", (int, float)),
        slo_tpot_ms=slo.get("tpot_ms", (int, float)),
        options=f.get("options", dict, {}),
        thresholds=f.get("thresholds", dict, {}),
        notify_webhook=_notify_webhook(f.get("notify", dict, {}), f"{where}notify."),
        exclude=exclude,
        source=source,
    )
    if campaign.timeout_minutes <= 0:
        raise f.fail("timeout_minutes", "must be > 0")
    if campaign.retries < 0:
        raise f.fail("retries", "must be >= 0")
    if not campaign.configs():
        raise CampaignError(f"{source}: the matrix is empty after overrides and exclusions")
    return campaign


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
    return sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))


def _campaign_to_mapping(campaign: Campaign) -> dict[str, Any]:
    """Inverse of parse_campaign (for re-validation after overrides)."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(campaign):
        if f.name in ("name", "source", "slo_ttft_ms", "slo_tpot_ms", "notify_webhook"):
            continue
        value = getattr(campaign, f.name)
        data[f.name] = _plain(value)
    data["slo"] = {"ttft_ms": campaign.slo_ttft_ms, "tpot_ms": campaign.slo_tpot_ms}
    if campaign.notify_webhook:
        data["notify"] = {"webhook": campaign.notify_webhook}
    return data


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items() if v is not None}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
