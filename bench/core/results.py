"""A finished run and its JSONL form (the spool and ``--output`` format).

One line per request (``"kind": "request"``), then one summary line
(``"kind": "summary"``) holding the config, fingerprint, environment,
campaign, status and run metrics. The summary comes last so a truncated file
is detectably incomplete. Files are written to a temporary name, fsynced and
renamed: a reader never sees half a result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.core.config import RunConfig
from bench.core.metrics import RunMetrics
from bench.core.records import RequestResult
from bench.errors import ConfigError, ResultFileError

SCHEMA_VERSION = 1
STATUSES: tuple[str, ...] = ("ok", "failed", "oom", "timeout")
#: ``primary``: the campaign's run of a configuration (a night of its history);
#: ``confirm``: a same-night re-run of a suspicious one, judged together with
#: it and stored beside it, never as a night of its own (docs/regressions.md).
ROLES: tuple[str, ...] = ("primary", "confirm")


@dataclass(frozen=True)
class CampaignRef:
    """Which campaign a run belongs to; CLI runs get a campaign of their own."""

    dag_run_id: str
    dag_id: str | None = None
    trigger: str = "cli"

    def to_json(self) -> dict[str, Any]:
        return {"dag_run_id": self.dag_run_id, "dag_id": self.dag_id, "trigger": self.trigger}


@dataclass(frozen=True)
class RunResult:
    run_uid: str
    config: RunConfig
    fingerprint: str
    status: str
    started_at: datetime
    finished_at: datetime
    campaign: CampaignRef
    prompt_set: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    metrics: RunMetrics | None = None
    requests: tuple[RequestResult, ...] = ()
    error: str | None = None
    warmup_s: float | None = None
    #: Device and host telemetry over the measured window (bench.telemetry.summarize).
    telemetry: dict[str, Any] | None = None
    role: str = "primary"
    #: Which try of its Airflow task this run is (``bench run --attempt``; 1 from
    #: the CLI); None in result files written before attempts were recorded.
    attempt: int | None = 1

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"unknown run status {self.status!r}")
        if self.attempt is not None and self.attempt < 1:
            raise ConfigError(f"a run's attempt counts from 1, not {self.attempt}")
        if self.role not in ROLES:
            raise ConfigError(f"unknown run role {self.role!r}; one of: {', '.join(ROLES)}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary_json(self) -> dict[str, Any]:
        return {
            "kind": "summary",
            "schema": SCHEMA_VERSION,
            "run_uid": self.run_uid,
            "status": self.status,
            "error": self.error,
            "fingerprint": self.fingerprint,
            "config": self.config.to_dict(),
            "prompt_set": self.prompt_set,
            "campaign": self.campaign.to_json(),
            "environment": self.environment,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "warmup_s": self.warmup_s,
            "metrics": self.metrics.to_json() if self.metrics else None,
            "telemetry": self.telemetry,
            "role": self.role,
            "attempt": self.attempt,
        }

    def jsonl_lines(self) -> Iterator[str]:
        for request in self.requests:
            yield json.dumps(request.to_json(), separators=(",", ":"))
        yield json.dumps(self.summary_json(), separators=(",", ":"))


def write_jsonl(result: RunResult, path: Path) -> Path:
    """Atomically write ``result`` to ``path`` (created with its parents).

    A full disk (or a file-size limit) raises :class:`ResultFileError` in one
    line and leaves nothing behind: the temporary file is removed, so neither
    a later spool drain nor the disk's last bytes trip on half a result.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as fh:
            for line in result.jsonl_lines():
                fh.write(line)
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ResultFileError(f"cannot write the result to {path}: {exc.strerror or exc}") from None
    return path


def read_jsonl(path: Path) -> RunResult:
    """Parse a result file; :class:`ResultFileError` names the bad line."""
    requests: list[RequestResult] = []
    summary: dict[str, Any] | None = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"cannot read result file {path}: {exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if summary is not None:
                raise ValueError("data after the summary line")
            if obj.get("kind") == "request":
                requests.append(RequestResult.from_json(obj))
            elif obj.get("kind") == "summary":
                summary = obj
            else:
                raise ValueError(f"unknown kind {obj.get('kind')!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ResultFileError(f"{path}:{lineno}: {exc}") from None
    if summary is None:
        raise ResultFileError(f"{path}: no summary line (incomplete file)")
    try:
        return _result_from_summary(summary, tuple(requests))
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultFileError(f"{path}: bad summary: {exc}") from None


def _result_from_summary(obj: dict[str, Any], requests: tuple[RequestResult, ...]) -> RunResult:
    if obj.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"unsupported schema {obj.get('schema')!r}")
    campaign = obj["campaign"]
    return RunResult(
        run_uid=obj["run_uid"],
        config=RunConfig.from_mapping(obj["config"]),
        fingerprint=obj["fingerprint"],
        status=obj["status"],
        error=obj.get("error"),
        started_at=datetime.fromisoformat(obj["started_at"]),
        finished_at=datetime.fromisoformat(obj["finished_at"]),
        campaign=CampaignRef(
            dag_run_id=campaign["dag_run_id"],
            dag_id=campaign.get("dag_id"),
            trigger=campaign.get("trigger", "cli"),
        ),
        prompt_set=obj.get("prompt_set") or {},
        environment=obj.get("environment"),
        metrics=RunMetrics.from_json(obj["metrics"]) if obj.get("metrics") else None,
        requests=requests,
        warmup_s=obj.get("warmup_s"),
        telemetry=obj.get("telemetry"),
        role=obj.get("role") or "primary",
        attempt=obj.get("attempt"),
    )
