"""Named trend queries: ``sql/queries/<name>.sql``, loaded and run by name.

Each file is plain SQL runnable with ``psql -v name=value -f FILE`` and
starts with a header the code reads too::

    -- query: metric_series
    -- question: How has one metric of a model moved ...?
    -- param: model text                       (no default: required)
    -- param: last int = 30                     positive integer
    -- param: metric run_metric = ttft_p50_ms   checked against RUN_METRICS
    -- columns: ...
    -- index: ...

Parameters use psql's variable syntax: ``:'name'`` for a quoted value,
``:name`` for a bare number. :func:`load_query` rewrites them into
SQLAlchemy bind parameters; psycopg2 then inlines the values as literals,
exactly what psql does, so both run the same plan. Optional text
parameters default to ``''``, which the SQL reads as "no filter".
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.core.metrics import RunMetrics
from bench.errors import ConfigError, StoreError
from bench.store.db import get_engine, translate_errors
from bench.store.sqlfiles import queries_dir

#: SQLAlchemy URL for readers (``bench_reader``); unset: the results DB, read-only.
READER_URL_ENV = "BENCH_READER_DB_URL"
#: Columns of run_summary / v_run_trend a trend can follow (every RunMetrics field).
RUN_METRICS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunMetrics))
#: Per-request columns whose percentiles request_percentiles recomputes.
REQUEST_METRICS: tuple[str, ...] = ("ttft_ms", "tpot_ms", "e2e_ms", "itl_ms")
PARAM_KINDS: tuple[str, ...] = ("text", "int", "float", "timestamp", "run_metric", "request_metric")

_HEADER_KEY = re.compile(r"^--\s(\w+):\s?(.*)$")
_CONTINUATION = re.compile(r"^--\s{2,}(.*)$")
_PARAM = re.compile(r"^(\w+)\s+(\w+)(?:\s*=\s*(''|\S+))?(?:\s+(.*))?$")
#: A psql variable: :'name' or :name, but not a ::cast or a time like 10:30.
_PSQL_VAR = re.compile(r"(?<![:\w]):(?:'(\w+)'|(\w+))")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: str | None  # None: required
    help: str

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class NamedQuery:
    """One ``sql/queries/<name>.sql`` file, header parsed."""

    name: str
    question: str
    params: tuple[Param, ...]
    columns: str
    index: str
    psql: str
    text: str  # the file as psql runs it

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def bind_sql(self) -> str:
        """The body with ``:'x'`` -> ``CAST(:x AS text)``, comment lines dropped
        (SQLAlchemy would read a colon in a comment as a parameter)."""
        body = "\n".join(
            line for line in self.text.splitlines() if not line.lstrip().startswith("--")
        )

        def bind(match: re.Match[str]) -> str:
            quoted, bare = match.groups()
            return f"CAST(:{quoted} AS text)" if quoted else f":{bare}"

        return _PSQL_VAR.sub(bind, body)


def _parse(name: str, text: str) -> NamedQuery:
    header: dict[str, list[str]] = {}
    last_key: str | None = None
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        if (cont := _CONTINUATION.match(line)) and last_key is not None:
            header[last_key][-1] += " " + cont.group(1).strip()
        elif key := _HEADER_KEY.match(line):
            last_key = key.group(1)
            header.setdefault(last_key, []).append(key.group(2).strip())
    if header.get("query") != [name]:
        raise StoreError(f"sql/queries/{name}.sql: header must start with '-- query: {name}'")
    params = []
    for spec in header.get("param", []):
        match = _PARAM.match(spec)
        if not match or match.group(2) not in PARAM_KINDS:
            raise StoreError(f"sql/queries/{name}.sql: bad param line {spec!r}")
        pname, kind, default, help_text = match.groups()
        params.append(
            Param(pname, kind, "" if default == "''" else default, (help_text or "").strip())
        )
    return NamedQuery(
        name=name,
        question=" ".join(header.get("question", [""])),
        params=tuple(params),
        columns=" ".join(header.get("columns", [""])),
        index=" ".join(header.get("index", [""])),
        psql=" ".join(header.get("psql", [""])).replace("\\ ", ""),
        text=text,
    )


def parse_file(path: Path) -> NamedQuery:
    """A query file outside ``sql/queries/`` (another version of a shipped one,
    e.g. for a side-by-side timing), header checked like a shipped one's."""
    return _parse(path.stem, path.read_text(encoding="utf-8"))


def available() -> list[str]:
    """Names of the shipped queries (file stems), sorted."""
    return sorted(p.stem for p in queries_dir().glob("*.sql"))


def query(name: str) -> NamedQuery:
    """The parsed query ``name``; ConfigError naming the choices if unknown."""
    if not re.fullmatch(r"\w+", name) or not (queries_dir() / f"{name}.sql").is_file():
        raise ConfigError(f"unknown query {name!r}; choose one of: {', '.join(available())}")
    return _parse(name, (queries_dir() / f"{name}.sql").read_text(encoding="utf-8"))


def load_query(name: str) -> str:
    """SQL of query ``name`` for ``sqlalchemy.text()``: ``:name`` bind
    parameters, text values passed as ``str``. :func:`run_query` adds
    defaults and validation on top; use it unless composing SQL."""
    return query(name).bind_sql


def _coerce(q: NamedQuery, p: Param, value: Any) -> Any:
    where = f"query {q.name}: parameter {p.name}"
    if p.kind == "int":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
            raise ConfigError(f"{where} must be a positive integer, got {value!r}")
        return number
    if p.kind == "float":
        try:
            real = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(real):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return real
    if p.kind == "timestamp":
        if isinstance(value, datetime | date):
            return value.isoformat()
        text = str(value).strip()
        if text:
            try:
                datetime.fromisoformat(text)
            except ValueError:
                raise ConfigError(
                    f"{where} must be an ISO date or time (2025-01-31, 2025-01-31T02:00Z), got {value!r}"
                ) from None
        return text
    if p.kind in ("run_metric", "request_metric"):
        choices = RUN_METRICS if p.kind == "run_metric" else REQUEST_METRICS
        if value not in choices:
            raise ConfigError(f"unknown metric {value!r}; choose one of: {', '.join(choices)}")
        return str(value)
    return str(value)


def bind_params(name: str, **params: Any) -> dict[str, Any]:
    """Validated, defaulted parameters of query ``name``; ConfigError (one
    line) for an unknown, missing or malformed one. ``None`` means "default"."""
    q = query(name)
    unknown = sorted(set(params) - {p.name for p in q.params})
    if unknown:
        takes = ", ".join(p.name for p in q.params)
        raise ConfigError(f"query {name} has no parameter {', '.join(unknown)}; it takes: {takes}")
    bound: dict[str, Any] = {}
    for p in q.params:
        value = params.get(p.name)
        if value is None:
            if p.required:
                raise ConfigError(f"query {name} needs parameter {p.name} ({p.help})")
            value = p.default
        bound[p.name] = _coerce(q, p, value)
    return bound


def reader_engine(url: str | None = None) -> sa.Engine:
    """The engine of readers (the Airflow page, reports, trend commands):
    ``url``, else ``BENCH_READER_DB_URL`` (a login with the ``bench_reader``
    role of migration 010), else the results DB itself. Every transaction is
    ``READ ONLY`` either way, so a reader cannot write even through the
    owner's login; the role makes that hold for SQL typed by hand too."""
    url = url or os.environ.get(READER_URL_ENV, "").strip() or None
    if url:
        try:
            backend = sa.make_url(url).get_backend_name()
        except sa.exc.ArgumentError:
            raise ConfigError(f"{READER_URL_ENV} is not a SQLAlchemy URL") from None
        if backend != "postgresql":
            raise ConfigError(f"{READER_URL_ENV} must point at PostgreSQL, got {backend!r}")
    return get_engine(url).execution_options(postgresql_readonly=True)


def run_query(engine: sa.Engine, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run query ``name`` and return its rows as dicts (column order kept)."""
    bound = bind_params(name, **params)
    with translate_errors(engine), engine.connect() as conn:
        rows = conn.execute(sa.text(load_query(name)), bound).mappings()
        return [dict(row) for row in rows]


__all__ = [
    "READER_URL_ENV",
    "REQUEST_METRICS",
    "RUN_METRICS",
    "NamedQuery",
    "Param",
    "available",
    "bind_params",
    "load_query",
    "parse_file",
    "query",
    "reader_engine",
    "run_query",
]
