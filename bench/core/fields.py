"""One declaration per field: what a value may be, and what each part of the
project does with it.

A configuration field is declared once, as a dataclass field whose metadata
is a :class:`Setting` (built by :func:`setting`). Everything else reads that
declaration instead of keeping its own list: validation and the fingerprint
(:class:`bench.core.config.RunConfig`), the ``bench run`` flags
(``bench/cli/run.py``), the ``benchmark_config`` columns
(``bench/store/writer.py``), campaign files, trigger-time overrides and the
Airflow trigger form (``bench/campaign/``). Lists kept by hand in each of
those places drift apart; a table read by all of them cannot.

A :class:`Value` is the checkable part (type, bounds, choices, allowed
``${VAR}`` references). It renders itself as a JSON schema for the trigger
form and as words for help texts and docs, so bounds are stated where they
are enforced.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.core.envvars import disallowed

#: How a value's type is named in messages ("expected int"), schemas and docs.
_TYPE_NAMES = {int: "int", float: "number", str: "str", bool: "bool", dict: "mapping"}
_SCHEMA_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object"}
_NOUNS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


class Invalid(ValueError):
    """A value a :class:`Value` refuses; rendered by the caller, which knows
    where the value came from (a config field, a campaign key)."""

    def __init__(
        self, rule: str, value: Any, detail: str = "", inner: Invalid | None = None
    ) -> None:
        super().__init__(rule)
        #: type | min | max | positive | choice | empty | variable | key (of a record)
        self.rule = rule
        self.value = value
        #: the variable (rule variable) or the record key (rule key)
        self.detail = detail
        #: why the record key's value was refused (rule key; None: an unknown key)
        self.inner = inner


def _number_text(number: float) -> str:
    return f"{number:g}"


@dataclass(frozen=True)
class Value:
    """The type and bounds of one value, checked the same way everywhere."""

    type: type
    minimum: float | None = None
    maximum: float | None = None
    #: strictly greater than 0 (rates, SLOs)
    positive: bool = False
    #: the allowed strings, or a function returning them (a registry read late)
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    #: None is allowed and means "not set"
    optional: bool = False
    non_empty: bool = False
    #: ``${VAR}`` references allowed in a string (None: no check)
    variables: tuple[str, ...] | None = None
    #: for a mapping with fixed keys (a matrix item such as ``{input: 128, output: 128}``):
    #: each key's value
    record: Mapping[str, Value] | None = None

    def options(self) -> tuple[str, ...] | None:
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    # -- checking -----------------------------------------------------------------------

    def check(self, value: Any) -> Any:
        """The value, normalised (``"4"`` -> 4, 2 -> 2.0 for numbers); Invalid if refused."""
        if value is None:
            if self.optional:
                return None
            raise Invalid("type", value)
        value = self._typed(value)
        if self.type in (int, float):
            self._bounded(value)
        elif self.type is str:
            self._string(value)
        elif self.record is not None:
            value = _record(value, self.record)
        return value

    def _typed(self, value: Any) -> Any:
        if isinstance(value, bool) and self.type is not bool:
            raise Invalid("type", value)
        if self.type is int:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            if isinstance(value, int):
                return value
        elif self.type is float:
            if isinstance(value, int | float | str):
                try:
                    number = float(value)
                except ValueError:
                    raise Invalid("type", value) from None
                if math.isfinite(number):
                    return number
        elif self.type is dict:
            if isinstance(value, Mapping):
                return value
        elif isinstance(value, self.type):
            return value
        raise Invalid("type", value)

    def _bounded(self, number: float) -> None:
        if self.positive and number <= 0:
            raise Invalid("positive", number)
        if self.minimum is not None and number < self.minimum:
            raise Invalid("min", number)
        if self.maximum is not None and number > self.maximum:
            raise Invalid("max", number)

    def _string(self, text: str) -> None:
        if self.non_empty and not text.strip():
            raise Invalid("empty", text)
        choices = self.options()
        if choices is not None and text not in choices:
            raise Invalid("choice", text)
        if self.variables is not None and (name := disallowed(text, self.variables)) is not None:
            raise Invalid("variable", text, detail=name)

    # -- describing ---------------------------------------------------------------------

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]

    def bounds(self, unit: str = "") -> str:
        """Bounds in words: ``1 to 4096 tokens``, ``at least 0``, ``above 0 ms``
        (the unit where it reads well; empty if unbounded)."""
        low, high = self.minimum, self.maximum
        units = f" {unit}" if unit else ""
        if low is not None and high is not None:
            return f"{_number_text(low)} to {_number_text(high)}{units}"
        if self.positive:
            return f"above 0{units}" + (f", at most {_number_text(high)}" if high else "")
        if low is not None:
            return f"at least {_number_text(low)}"
        return f"at most {_number_text(high)}{units}" if high is not None else ""

    def schema(self) -> dict[str, Any]:
        """JSON schema of this value (the trigger form validates with it)."""
        kind = _SCHEMA_TYPES[self.type]
        out: dict[str, Any] = {"type": ["null", kind] if self.optional else kind}
        if self.positive:
            out["exclusiveMinimum"] = 0
        if self.minimum is not None:
            out["minimum"] = _schema_number(self.minimum, self.type)
        if self.maximum is not None:
            out["maximum"] = _schema_number(self.maximum, self.type)
        if (choices := self.options()) is not None:
            out["enum"] = [*choices, *([None] if self.optional else [])]
        elif self.non_empty:
            out["minLength"] = 1
        if self.record is not None:
            out["properties"] = {k: v.schema() for k, v in self.record.items()}
            out["required"] = [k for k, v in self.record.items() if not v.optional]
            out["additionalProperties"] = False
        return out

    def message(self, name: str, error: Invalid) -> str:
        """``error`` as a one-line message about field ``name`` (config style)."""
        value = error.value
        if error.rule == "type":
            if self.type is dict:
                return f"{name} must be a mapping, got {type(value).__name__}"
            noun = "a positive number" if self.positive else _NOUNS[self.type]
            return f"{name} must be {noun}, got {value!r}"
        if error.rule == "positive":
            return f"{name} must be a positive number, got {value:g}"
        if error.rule in ("min", "max"):
            sign, bound = (">=", self.minimum) if error.rule == "min" else ("<=", self.maximum)
            return f"{name} must be {sign} {_number_text(bound or 0)}, got {value:g}"
        if error.rule == "choice":
            return f"unknown {name} {value!r}; choose one of: {', '.join(self.options() or ())}"
        if error.rule == "empty":
            return f"{name} must be a non-empty string, got {value!r}"
        if error.rule == "key":
            if error.inner is None:
                known = ", ".join(self.record or ())
                return f"{name}.{error.detail}: unknown key (keys: {known})"
            inner = (self.record or {})[error.detail]
            return inner.message(f"{name}.{error.detail}", error.inner)
        return (
            f"{name} refers to ${{{error.detail}}}; only these variables expand: "
            f"{', '.join(self.variables or ())}"
        )


class _Unset:
    """Marks a metadata value that was not given (``None`` is a real value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _record(value: Mapping[str, Any], record: Mapping[str, Value]) -> dict[str, Any]:
    """A mapping with exactly ``record``'s keys, each value checked."""
    unknown = sorted(set(value) - set(record))
    if unknown:
        raise Invalid("key", value, detail=str(unknown[0]))
    out = {}
    for key, spec in record.items():
        try:
            out[key] = spec.check(value.get(key))
        except Invalid as exc:
            raise Invalid("key", value, detail=key, inner=exc) from None
    return out


def _schema_number(number: float, kind: type) -> float | int:
    return int(number) if kind is int else number


# -- settings: the metadata of one configuration field ---------------------------------------


@dataclass(frozen=True)
class Setting:
    """Everything the project does with one :class:`RunConfig` field.

    Campaign keys: ``campaign`` names the top-level key that sets the field
    for every configuration (dots for nesting: ``slo.ttft_ms``); ``axis``
    names the campaign list that makes the field a matrix dimension
    (``batch_sizes``); ``model_key`` the key in a ``models:`` entry that sets
    it (or, with ``axis``, overrides the list) for one model.
    """

    value: Value
    #: lower-case phrase for ``--help``, the form and the docs (no final period)
    help: str
    #: short title for the trigger form and docs
    title: str
    #: ``bench run --help`` group and trigger-form section
    section: str
    #: the flag of ``bench run``: True = derived from the name, False = none
    flag: str | bool = True
    #: the unit the value is counted in ("tokens", "ms"), shown after defaults and bounds
    unit: str = ""
    #: what an unset (None) value means, for help texts
    unset: str = "none"
    #: part of the comparability fingerprint
    fingerprint: bool = True
    #: for a field added after histories existed: the value (or a function of the
    #: config giving the value) that reproduces the behaviour from before the
    #: field; the field enters the identity only when it differs from it
    legacy: Any = UNSET
    #: the value the identity uses, when it differs from the stored one (a
    #: default resolved from other fields, e.g. the device's timing mode)
    resolved: Callable[[Any], Any] | None = None
    #: a :class:`~bench.backends.BackendSpec` attribute that supplies the value
    #: when none is given (the backend knows it: bf16 in process, unknown for
    #: an endpoint); campaigns use it for an axis they leave out
    backend_default: str | None = None
    #: copied into the ``benchmark_config`` column of the same name
    column: bool = False
    campaign: str | None = None
    axis: str | None = None
    model_key: str | None = None
    #: a campaign's default, where it differs from the field's ("cpu" for device)
    campaign_default: Any = UNSET
    #: the campaign's value type, where it is narrower (no "auto" device)
    campaign_value: Value | None = None
    #: the flag and campaign key state the opposite (``--stop-at-eos`` sets ``ignore_eos`` false)
    inverted: bool = False
    #: the trigger form shows it and a trigger may change it
    trigger: bool = True
    #: applies only to backends of this load shape ("batch" or "stream")
    load_shape: str | None = None

    def legacy_value(self, config: Any) -> Any:
        return self.legacy(config) if callable(self.legacy) else self.legacy

    @property
    def has_legacy(self) -> bool:
        return self.legacy is not UNSET


_KEY = "bench.setting"


def setting(value: Value, help: str, *, default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field carrying its :class:`Setting` (keywords as there);
    no ``default`` makes the field required."""
    metadata = {_KEY: Setting(value=value, help=help, **meta)}
    if isinstance(default, Mapping):
        shared = default  # read-only (a MappingProxyType): one instance may be shared
        return dataclasses.field(default_factory=lambda: shared, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Declared:
    """A declared field: its name, default and :class:`Setting`."""

    name: str
    default: Any
    setting: Setting

    @property
    def flag(self) -> str | None:
        flag = self.setting.flag
        if flag is True:
            return "--" + self.name.replace("_", "-")
        return flag or None


_DECLARED: dict[type, tuple[Declared, ...]] = {}


def declared(cls: type) -> tuple[Declared, ...]:
    """The declared fields of dataclass ``cls``, in declaration order (read once)."""
    if cls not in _DECLARED:
        _DECLARED[cls] = tuple(
            Declared(
                f.name,
                f.default if f.default_factory is dataclasses.MISSING else f.default_factory(),
                f.metadata[_KEY],
            )
            for f in dataclasses.fields(cls)
            if _KEY in f.metadata
        )
    return _DECLARED[cls]
