"""Synthetic results built through the real dataclasses (RunConfig,
RequestResult, bench.core.metrics.summarize, RunResult): what `bench run` would
have produced, with timings chosen by the test."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.core.config import RunConfig
from bench.core.hashing import canonical_json, sha256_hex
from bench.core.metrics import summarize
from bench.core.records import RequestResult
from bench.core.results import CampaignRef, RunResult

T0 = datetime(2025, 1, 1, 2, 0, tzinfo=timezone.utc)
PROMPT_SHA = "f" * 64


def environment(host: str = "node-1", driver: str = "1.19.0") -> dict[str, Any]:
    env: dict[str, Any] = {
        "host": host,
        "device": "cpu",
        "device_name": "Test CPU",
        "device_count": 2,
        "driver_version": driver,
        "runtime_version": None,
        "python_version": "3.11.9",
        "platform": "Linux-test",
        "packages": {"torch": "2.13.0", "transformers": "4.55.4"},
        "git_sha": "abc123",
        "extra": {},
    }
    env["fingerprint"] = sha256_hex(canonical_json(env))
    return env


def config(
    model: str = "tiny", precision: str = "fp32", batch_size: int = 1, **kw: Any
) -> RunConfig:
    return RunConfig(
        model=model,
        precision=precision,
        batch_size=batch_size,
        device="cpu",
        backend="hf",
        max_new_tokens=kw.pop("max_new_tokens", 4),
        **kw,
    )


def requests(
    ttfts: Sequence[float], *, n_tokens: int = 4, gap_ms: float = 2.0
) -> tuple[RequestResult, ...]:
    out = []
    for i, ttft in enumerate(ttfts):
        itl = tuple(gap_ms + 0.125 * k + 0.001 * i for k in range(n_tokens - 1))
        out.append(
            RequestResult(
                request_index=i,
                prompt_sha=f"{i:064x}",
                input_tokens=10 + i,
                output_tokens=n_tokens,
                ttft_ms=ttft,
                tpot_ms=sum(itl) / len(itl) if itl else None,
                e2e_ms=ttft + sum(itl),
                itl_ms=itl,
            )
        )
    return tuple(out)


def result(
    cfg: RunConfig | None = None,
    *,
    ttfts: Sequence[float] = (10.0, 11.0, 12.0, 13.0),
    started_at: datetime = T0,
    campaign: CampaignRef | None = None,
    status: str = "ok",
    error: str | None = None,
    duration_s: float = 1.0,
    run_uid: str | None = None,
    env: dict[str, Any] | None = None,
    n_tokens: int = 4,
    reqs: tuple[RequestResult, ...] | None = None,
) -> RunResult:
    cfg = cfg or config()
    reqs = requests(ttfts, n_tokens=n_tokens) if reqs is None else reqs
    uid = run_uid or uuid.uuid4().hex
    prompt_set = {"name": "default", "sha": PROMPT_SHA, "n_prompts": 200, "n_requests": len(reqs)}
    return RunResult(
        run_uid=uid,
        config=cfg,
        fingerprint=cfg.fingerprint(prompt_set_sha=PROMPT_SHA, n_requests=len(reqs)),
        status=status,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=duration_s),
        campaign=campaign or CampaignRef(dag_run_id=f"cli__{uid}", trigger="cli"),
        prompt_set=prompt_set,
        environment=environment() if env is None else env,
        metrics=summarize(reqs, duration_s=duration_s) if status == "ok" or reqs else None,
        requests=reqs,
        error=error,
        warmup_s=0.5,
    )


def nightly(night: int, dag_id: str = "llm_bench_nightly") -> CampaignRef:
    """The campaign of night ``night`` (0 = T0)."""
    day = (T0 + timedelta(days=night)).strftime("%Y-%m-%dT%H:%M:%S")
    return CampaignRef(dag_run_id=f"scheduled__{day}+00:00", dag_id=dag_id, trigger="scheduled")
