"""Write runs into the results DB: one transaction per run, never a duplicate.

A run is identified twice: by its attempt id (``run_uid``, from the result
file) and by its slot (campaign, config). Loading is idempotent on the
first: the same file loaded again changes nothing. A newer attempt for the
same slot (an Airflow retry) replaces the older one, requests and summary
included; an older attempt arriving late (a spool drained after the retry
already loaded) is skipped, so the newest attempt always wins whatever the
loading order. A confirm run (``role="confirm"``) has a slot of its own, the
primary run it confirms, with the same rules.

Parallel writers (one per mapped task) touch shared rows in one fixed order:
campaign, environment, config, run. Shared rows are only ever inserted
(``ON CONFLICT DO NOTHING``), never updated, so a writer waits at most for
another writer's insert of the same row to commit, and no cycle of waits (a
deadlock) can form. A deadlock or unique-key race reported anyway is retried.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from bench.core.config import RunConfig, column_values
from bench.core.hashing import canonical_json, sha256_hex
from bench.core.metrics import RunMetrics
from bench.core.records import run_output_digest
from bench.core.results import STATUSES, CampaignRef, RunResult
from bench.errors import ConfigError, StoreError
from bench.store import copyrows
from bench.store.db import translate_errors

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Outcomes of :func:`load`.
INSERTED, REPLACED, UNCHANGED, SUPERSEDED = "inserted", "replaced", "unchanged", "superseded"
FAILURE_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s != "ok")
SUMMARY_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunMetrics))
ENVIRONMENT_COLUMNS: tuple[str, ...] = (
    "host",
    "device",
    "device_name",
    "device_count",
    "driver_version",
    "runtime_version",
    "python_version",
    "platform",
    "git_sha",
)
_RETRYABLE = (
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.UniqueViolation,
)
_ATTEMPTS = 5


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load` did with one result."""

    run_id: int
    action: str  # inserted | replaced | unchanged | superseded
    n_requests: int

    @property
    def changed(self) -> bool:
        return self.action in (INSERTED, REPLACED)


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken to be UTC already (never local time)."""
    return (
        moment.replace(tzinfo=timezone.utc)
        if moment.tzinfo is None
        else moment.astimezone(timezone.utc)
    )


def _jsonb(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _in_transaction(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` in one transaction, retrying deadlocks and unique races."""
    with translate_errors(engine):
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with engine.begin() as conn:
                    return work(conn)
            except (sa_exc.DBAPIError, psycopg2.Error) as exc:
                orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
                if attempt == _ATTEMPTS or not isinstance(orig, _RETRYABLE):
                    raise
                log.info("retrying a results DB transaction after %s", type(orig).__name__)
                time.sleep(0.02 * attempt)
    raise AssertionError("unreachable")


# -- campaigns ----------------------------------------------------------------------------


def ensure_campaign(
    engine: sa.Engine, campaign: CampaignRef, *, params: dict[str, Any], started_at: datetime
) -> int:
    """Create or refresh the campaign row of an Airflow DAG run; its id.

    Called by the DAG's first task, so the trigger form's ``params`` and the
    campaign start are recorded even if every benchmark then fails. Safe to
    repeat (task retries): a second call updates params/dag_id/trigger and
    keeps the earliest start.
    """

    def work(conn: sa.Connection) -> int:
        return int(
            conn.execute(
                sa.text(
                    "INSERT INTO campaign (dag_id, dag_run_id, trigger, started_at, params)"
                    " VALUES (:dag_id, :dag_run_id, :trigger, :started_at, CAST(:params AS jsonb))"
                    " ON CONFLICT (dag_run_id) DO UPDATE SET"
                    "  dag_id = COALESCE(EXCLUDED.dag_id, campaign.dag_id),"
                    "  trigger = EXCLUDED.trigger, params = EXCLUDED.params,"
                    "  started_at = LEAST(campaign.started_at, EXCLUDED.started_at)"
                    " RETURNING id"
                ),
                {**campaign.to_json(), "started_at": _utc(started_at), "params": _jsonb(params)},
            ).scalar_one()
        )

    return _in_transaction(engine, work)


def finish_campaign(engine: sa.Engine, dag_run_id: str, finished_at: datetime) -> None:
    """Stamp the campaign's end (the DAG's last task); StoreError if unknown."""

    def work(conn: sa.Connection) -> None:
        found = conn.execute(
            sa.text(
                "UPDATE campaign SET finished_at = :finished_at WHERE dag_run_id = :dag_run_id RETURNING id"
            ),
            {"finished_at": _utc(finished_at), "dag_run_id": dag_run_id},
        ).first()
        if found is None:
            raise StoreError(f"no campaign with dag_run_id {dag_run_id!r}")

    _in_transaction(engine, work)


def _insert_or_get(
    conn: sa.Connection,
    table: str,
    key: str,
    key_value: Any,
    insert_sql: str,
    params: Mapping[str, Any],
) -> int:
    """Id of the row whose unique ``key`` is ``key_value``, inserting it if missing.

    Reads first: the common case (the row exists) takes no lock and burns no
    identity value. ``table``/``key`` are module constants, never input.
    """
    select = sa.text(f"SELECT id FROM {table} WHERE {key} = :value")
    row_id = conn.execute(select, {"value": key_value}).scalar()
    if row_id is None:
        row_id = conn.execute(
            sa.text(insert_sql + f" ON CONFLICT ({key}) DO NOTHING RETURNING id"), params
        ).scalar()
    if row_id is None:  # inserted by a concurrent writer that has committed meanwhile
        row_id = conn.execute(select, {"value": key_value}).scalar_one()
    return int(row_id)


def _campaign_id(conn: sa.Connection, result: RunResult) -> int:
    campaign = result.campaign
    # A shell run is its own campaign, finished when the run is.
    finished_at = _utc(result.finished_at) if campaign.trigger == "cli" else None
    return _insert_or_get(
        conn,
        "campaign",
        "dag_run_id",
        campaign.dag_run_id,
        "INSERT INTO campaign (dag_id, dag_run_id, trigger, started_at, finished_at)"
        " VALUES (:dag_id, :dag_run_id, :trigger, :started_at, :finished_at)",
        {**campaign.to_json(), "started_at": _utc(result.started_at), "finished_at": finished_at},
    )


def _environment_id(conn: sa.Connection, env: Mapping[str, Any] | None) -> int | None:
    if not env:
        return None
    known = {*ENVIRONMENT_COLUMNS, "packages", "extra", "fingerprint"}
    extra = dict(env.get("extra") or {})
    extra.update(
        {k: v for k, v in env.items() if k not in known}
    )  # keep unknown keys, lose nothing
    fingerprint = env.get("fingerprint") or sha256_hex(canonical_json(env))
    params = {name: env.get(name) for name in ENVIRONMENT_COLUMNS}
    params |= {
        "fingerprint": fingerprint,
        "packages": _jsonb(env.get("packages") or {}),
        "extra": _jsonb(extra),
    }
    columns = ", ".join(ENVIRONMENT_COLUMNS)
    values = ", ".join(f":{name}" for name in ENVIRONMENT_COLUMNS)
    return _insert_or_get(
        conn,
        "environment",
        "fingerprint",
        fingerprint,
        f"INSERT INTO environment (fingerprint, {columns}, packages, extra)"
        f" VALUES (:fingerprint, {values}, CAST(:packages AS jsonb), CAST(:extra AS jsonb))",
        params,
    )


def _identity(config: RunConfig, prompt_set: Mapping[str, Any]) -> dict[str, Any]:
    """What the fingerprint hashed; best effort for a run that died before
    its plan existed (no prompt set hash, device still "auto")."""
    try:
        return config.identity(
            prompt_set_sha=str(prompt_set["sha"]), n_requests=int(prompt_set["n_requests"])
        )
    except (KeyError, TypeError, ValueError, ConfigError):
        ident = config.to_dict()
        ident["prompt_set_sha"] = prompt_set.get("sha")
        ident["n_requests"] = prompt_set.get("n_requests")
        return ident


def _config_id(
    conn: sa.Connection, config: RunConfig, fingerprint: str, prompt_set: Mapping[str, Any]
) -> int:
    """The ``benchmark_config`` row: the fields declared ``column=True``
    (bench/core/config.py) plus what only the run knows (prompt set, request
    count) and the identity the fingerprint hashed."""
    identity = _identity(config, prompt_set)
    params = {
        **column_values(config),
        "fingerprint": fingerprint,
        "options": _jsonb(identity.get("options", {})),
        "prompt_set_sha": identity.get("prompt_set_sha"),
        "n_requests": identity.get("n_requests"),
        "label": config.replace(target=None).label,  # the target is the run's, not the config's
        "identity": _jsonb(identity),
    }
    plain = [k for k in params if k not in ("options", "identity")]
    return _insert_or_get(
        conn,
        "benchmark_config",
        "fingerprint",
        fingerprint,
        f"INSERT INTO benchmark_config ({', '.join(plain)}, options, identity)"
        f" VALUES ({', '.join(':' + k for k in plain)}, CAST(:options AS jsonb), CAST(:identity AS jsonb))",
        params,
    )


# -- runs ---------------------------------------------------------------------------------


def history_key(env: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a run adds to its configuration's fingerprint to name its history
    (migration 014): the device model and the cards it saw, from its
    environment; '' and 0 when the run died before one was captured."""
    env = env or {}
    return {"device_model": env.get("device_name") or "", "cards": env.get("device_count") or 0}


def _copy_requests(conn: sa.Connection, run_id: int, result: RunResult) -> None:
    if not result.requests:
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            copyrows.COPY_SQL,
            copyrows.ChunkReader(copyrows.encode(run_id, result.requests)),
            size=1 << 20,
        )
    finally:
        cursor.close()


def _insert_summary(conn: sa.Connection, run_id: int, metrics: RunMetrics) -> None:
    values = metrics.to_json()
    conn.execute(
        sa.text(
            f"INSERT INTO run_summary (run_id, {', '.join(SUMMARY_COLUMNS)})"
            f" VALUES (:run_id, {', '.join(':' + c for c in SUMMARY_COLUMNS)})"
        ),
        {"run_id": run_id, **{c: values[c] for c in SUMMARY_COLUMNS}},
    )


def _slot(
    conn: sa.Connection, result: RunResult, campaign_id: int, config_id: int
) -> dict[str, Any]:
    """Where a run goes: its (campaign, config) slot, or for a confirm run the
    primary run it confirms (it takes no config of its own: see migration 015)."""
    target = result.config.target or ""
    if result.role != "confirm":
        return {
            "campaign_id": campaign_id,
            "config_id": config_id,
            "confirm_of": None,
            "target": target,
        }
    primary = conn.execute(
        sa.text(
            "SELECT id FROM run WHERE campaign_id = :campaign_id AND config_id = :config_id"
            " AND target = :target"
        ),
        {"campaign_id": campaign_id, "config_id": config_id, "target": target},
    ).scalar()
    if primary is None:
        raise StoreError(
            f"confirm run {result.run_uid} of {result.config.label}: campaign "
            f"{result.campaign.dag_run_id} has no run of that configuration to confirm"
        )
    return {
        "campaign_id": campaign_id,
        "config_id": None,
        "confirm_of": int(primary),
        "target": target,
    }


def _run_digest(result: RunResult) -> bytes | None:
    """The run's output digest (bench.core.records.run_output_digest), raw."""
    ordered = sorted(result.requests, key=lambda r: r.request_index)
    digest = run_output_digest(r.output_sha for r in ordered)
    return None if digest is None else bytes.fromhex(digest)


def _load(conn: sa.Connection, result: RunResult) -> LoadReport:
    n_requests = len(result.requests)
    existing = conn.execute(
        sa.text("SELECT id FROM run WHERE run_uid = :uid"), {"uid": result.run_uid}
    ).scalar()
    if existing is not None:
        return LoadReport(int(existing), UNCHANGED, n_requests)
    campaign_id = _campaign_id(conn, result)
    environment_id = _environment_id(conn, result.environment)
    config_id = _config_id(conn, result.config, result.fingerprint, result.prompt_set)
    slot = _slot(conn, result, campaign_id, config_id)
    occupant = (
        "SELECT id, started_at FROM run WHERE confirm_of = :confirm_of FOR UPDATE"
        if slot["confirm_of"] is not None
        else "SELECT id, started_at FROM run WHERE campaign_id = :campaign_id"
        " AND config_id = :config_id AND target = :target FOR UPDATE"
    )
    previous = conn.execute(sa.text(occupant), slot).first()
    if previous is not None:
        if previous.started_at > _utc(result.started_at):
            log.info(
                "run %s is older than run %s of its slot; skipped", result.run_uid, previous.id
            )
            return LoadReport(int(previous.id), SUPERSEDED, n_requests)
        # request rows go with it (trigger), summary, regressions and its confirm run by cascade
        conn.execute(sa.text("DELETE FROM run WHERE id = :id"), {"id": previous.id})
    run_id = int(
        conn.execute(
            sa.text(
                "INSERT INTO run (run_uid, campaign_id, config_id, confirm_of, environment_id,"
                " status, error, started_at, finished_at, warmup_s, prompt_set, config, telemetry,"
                " output_sha, device_model, cards, target, attempt)"
                " VALUES (:run_uid, :campaign_id, :config_id, :confirm_of, :environment_id,"
                " :status, :error, :started_at, :finished_at, :warmup_s, CAST(:prompt_set AS jsonb),"
                " CAST(:config AS jsonb), CAST(:telemetry AS jsonb), :output_sha, :device_model,"
                " :cards, :target, :attempt)"
                " RETURNING id"
            ),
            {
                **slot,
                "run_uid": result.run_uid,
                "environment_id": environment_id,
                "status": result.status,
                "error": result.error,
                "started_at": _utc(result.started_at),
                "finished_at": _utc(result.finished_at),
                "warmup_s": result.warmup_s,
                "prompt_set": _jsonb(result.prompt_set),
                "config": _jsonb(result.config.to_dict()),
                "telemetry": None if result.telemetry is None else _jsonb(result.telemetry),
                "output_sha": _run_digest(result),
                **history_key(result.environment),
                "attempt": result.attempt,
            },
        ).scalar_one()
    )
    if result.status == "ok" and slot["config_id"] is not None:
        conn.execute(
            sa.text(
                "INSERT INTO history (config_id, device_model, cards, first_seen_at)"
                " VALUES (:config_id, :device_model, :cards, :started_at) ON CONFLICT DO NOTHING"
            ),
            {
                "config_id": config_id,
                "started_at": _utc(result.started_at),
                **history_key(result.environment),
            },
        )
    _copy_requests(conn, run_id, result)
    if result.metrics is not None:
        _insert_summary(conn, run_id, result.metrics)
    return LoadReport(run_id, REPLACED if previous is not None else INSERTED, n_requests)


def load(engine: sa.Engine, result: RunResult) -> LoadReport:
    """Load one result in one transaction and say what happened (see module doc)."""
    return _in_transaction(engine, lambda conn: _load(conn, result))


def load_result(engine: sa.Engine, result: RunResult) -> int:
    """Load one result (run row, request rows by COPY, summary); its run id.

    Idempotent: a result already loaded returns its existing id; a retry
    (new attempt, same campaign and config) replaces the older attempt.
    """
    return load(engine, result).run_id


def set_agreement(
    engine: sa.Engine, values: Mapping[int, tuple[float | None, float | None]]
) -> None:
    """Store runs' agreement with their reference precision (run id ->
    (output_prefix_match, output_exact_match); None clears), computed by the
    gate once a campaign's runs are in (bench.outputs.update_agreement)."""
    if not values:
        return

    def work(conn: sa.Connection) -> None:
        conn.execute(
            sa.text(
                "UPDATE run_summary SET output_prefix_match = :prefix,"
                " output_exact_match = :exact WHERE run_id = :run_id"
            ),
            [{"run_id": k, "prefix": p, "exact": e} for k, (p, e) in values.items()],
        )

    _in_transaction(engine, work)


def record_failure(
    engine: sa.Engine,
    *,
    campaign: CampaignRef,
    config: RunConfig,
    fingerprint: str,
    prompt_set: dict[str, Any],
    status: str,
    error: str,
    started_at: datetime,
    finished_at: datetime,
    role: str = "primary",
    attempt: int = 1,
) -> int:
    """Record a run whose process crashed, was killed or timed out: a run
    row with the error and no requests (environment unknown), replacing any
    older attempt of (campaign, config), or of the confirm run. Its run id.
    ``attempt``: which try of the task this was."""
    if status not in FAILURE_STATUSES:
        raise ConfigError(
            f"a recorded failure's status is one of {', '.join(FAILURE_STATUSES)}, not {status!r}"
        )
    result = RunResult(
        run_uid=f"failure-{uuid.uuid4().hex}",
        config=config,
        fingerprint=fingerprint,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        campaign=campaign,
        prompt_set=dict(prompt_set),
        error=error,
        role=role,
        attempt=attempt,
    )
    return load(engine, result).run_id


__all__ = [
    "INSERTED",
    "REPLACED",
    "SUPERSEDED",
    "UNCHANGED",
    "LoadReport",
    "ensure_campaign",
    "finish_campaign",
    "history_key",
    "load",
    "load_result",
    "record_failure",
    "set_agreement",
]
