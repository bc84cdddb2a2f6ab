"""Run one configuration: plan, load, warm up, measure, summarize.

Setup problems (bad config, prompts, device, model) raise a
:class:`~bench.errors.BenchError` before anything is measured. Once the
measured phase has begun, a failure becomes a :class:`RunResult` with status
``failed`` or ``oom`` and the error text, so the caller can record it.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from bench.backends import create_backend, get_spec
from bench.backends.base import Backend, Progress, Request
from bench.backends.devices import check_device_model, resolve_device
from bench.backends.habana.device import apply_habana_env_defaults
from bench.core.config import RANDOM_PROMPTS, RunConfig
from bench.core.metrics import dual_windows, request_result, summarize
from bench.core.prompts import Prompt, PromptSet, load_prompt_set, plan_requests
from bench.core.prompts.exact import RANDOM_DEFAULT_COUNT, PromptTokens, build_exact
from bench.core.prompts.lengths import describe, reply_lengths, require_replies
from bench.core.results import CampaignRef, RunResult
from bench.environment import capture_environment
from bench.errors import BenchmarkFailed, ConfigError
from bench.paths import prompt_cache_dir
from bench.telemetry import telemetry_sampler

log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """Receives request counts; the CLI supplies a visible one."""

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


#: Builds a sink from (total requests, config label).
ProgressFactory = Callable[[int, str], ProgressSink]


class RunObserver(Protocol):
    """Told where a run is: the phase that begins and the plan once it exists.

    A process watching from outside (the Airflow task, through the outcome
    file of :mod:`bench.orchestration.child`) learns the run's history key
    before the model loads, so a run that dies later is still recorded
    under the right configuration.
    """

    def phase(self, name: str) -> None: ...

    def planned(self, plan: Plan) -> None: ...


class _Unobserved:
    def phase(self, name: str) -> None:
        pass

    def planned(self, plan: Plan) -> None:
        pass


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def classify_failure(exc: BaseException) -> str:
    """Run status for an exception raised while measuring: ``oom`` or ``failed``."""
    if isinstance(exc, BenchmarkFailed):
        return exc.status
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "oom"
    text = str(exc).lower()
    if "out of memory" in text or "allocation failed" in text:
        return "oom"
    return "failed"


def one_line(exc: BaseException, limit: int = 2000) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:limit]


class Plan:
    """The requests of a run (warmup and measured) and its history key.

    ``prompt_set``: the prompts requests are made of; for a token-exact run
    (``input_tokens``) the set built from ``source`` (None: random tokens).
    ``lengths``: for ``output_lengths: dataset``, the output tokens each
    prompt (by sha) asks for."""

    def __init__(
        self,
        config: RunConfig,
        prompt_set: PromptSet,
        source: PromptSet | None = None,
        lengths: Mapping[str, int] | None = None,
    ) -> None:
        per_iteration = config.batch_size
        if get_spec(config.backend).load_shape == "stream":
            per_iteration = config.concurrency or 1
        prompts = plan_requests(prompt_set, limit=config.limit, batch_size=config.batch_size)
        self.config = config
        self.prompt_set = prompt_set
        self.source = source if config.input_tokens is not None else prompt_set
        self.lengths = lengths

        def request(index: int, prompt: Prompt) -> Request:
            return Request(index, prompt, lengths[prompt.sha] if lengths is not None else None)

        self.measured = tuple(request(i, p) for i, p in enumerate(prompts))
        warm = config.warmup * per_iteration
        self.warmup = tuple(request(-1 - i, prompts[i % len(prompts)]) for i in range(warm))
        self.fingerprint = config.fingerprint(
            prompt_set_sha=prompt_set.sha, n_requests=len(self.measured)
        )

    def prompt_set_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.prompt_set.name,
            "sha": self.prompt_set.sha,
            "n_prompts": len(self.prompt_set),
            "n_requests": len(self.measured),
        }
        if self.config.input_tokens is not None:
            out["input_tokens"] = self.config.input_tokens
            out["source_sha"] = self.source.sha if self.source is not None else None
        if self.lengths is not None:
            wanted = [r.wanted(self.config.max_new_tokens) for r in self.measured]
            out["output_lengths"] = dict(describe(wanted, self.config.max_new_tokens))
        return out


def counting_rule(config: RunConfig) -> tuple[PromptTokens, int | None]:
    """How the backend's model counts tokens (its tokenizer and chat-template
    rule) and its context length, read before any weights load."""
    rule = getattr(get_spec(config.backend).load_class(), "prompt_rule", None)
    if rule is None:
        raise ConfigError(f"backend {config.backend} cannot count tokens before it runs")
    tokens, context = rule(config)
    return tokens, context


def output_lengths(config: RunConfig, prompt_set: PromptSet) -> dict[str, int] | None:
    """For ``output_lengths: dataset``, each planned prompt's output length:
    its reply's tokens for this model, capped at ``max_new_tokens``."""
    if config.output_lengths != "dataset":
        return None
    require_replies(prompt_set)
    tokens, _ = counting_rule(config)
    planned = plan_requests(prompt_set, limit=config.limit, batch_size=config.batch_size)
    return reply_lengths(planned, tokens, config.max_new_tokens)


def requests_set(config: RunConfig, source: PromptSet | None) -> PromptSet:
    """The prompt set a run's requests come from: ``source`` as is, or for
    ``input_tokens`` the token-exact set built (or read from the cache under
    ``$BENCH_HOME``) with the backend's own counting rule, before any weights
    load; a length the model's context cannot hold is refused here."""
    n_tokens = config.input_tokens
    if n_tokens is None:
        assert source is not None  # only random prompts have no source, and they need a length
        return source
    tokens, context = counting_rule(config)
    if context is not None and n_tokens + config.max_new_tokens > context:
        raise ConfigError(
            f"input_tokens {n_tokens} + max_new_tokens {config.max_new_tokens} exceeds the "
            f"model's context of {context} tokens (at most {context - config.max_new_tokens} "
            "input tokens with this output length)"
        )
    if source is None:
        count = config.limit or RANDOM_DEFAULT_COUNT
    else:  # request i starts at prompt i: more would repeat, and the set is cycled anyway
        count = min(config.limit or len(source), len(source))
    return build_exact(
        tokens, n_tokens, count, source=source, seed=config.seed, cache_dir=prompt_cache_dir()
    )


def prepare(config: RunConfig) -> Plan:
    """Validate everything that can be checked without loading a model."""
    source = None if config.prompts == RANDOM_PROMPTS else load_prompt_set(config.prompts)
    spec = get_spec(config.backend)
    if spec.name == "habana":  # before device detection imports habana_frameworks
        apply_habana_env_defaults(config.options)
    device = config.device
    if device == "auto" and len(spec.devices) == 1:
        device = spec.devices[0]  # habana means hpu: say so if it is missing
    # A stream backend's device names the remote server's hardware: only
    # "auto" is resolved here (the client usually runs on the serving node).
    if device == "auto" or spec.load_shape != "stream":
        device = resolve_device(device)
    # the stored config says which timing mode was in effect, never "default"
    resolved = config.replace(device=device)
    resolved = resolved.replace(timing=resolved.effective_timing)
    built = requests_set(resolved, source)
    return Plan(resolved, built, source, output_lengths(resolved, built))


def run_benchmark(
    config: RunConfig,
    *,
    campaign: CampaignRef | None = None,
    progress: ProgressFactory | None = None,
    clock: Callable[[], float] = time.perf_counter,
    role: str = "primary",
    observer: RunObserver | None = None,
) -> RunResult:
    """Benchmark one configuration. Raises BenchError on setup problems.

    ``role="confirm"`` marks a same-night re-run of the campaign's run of
    this configuration (see :data:`bench.core.results.ROLES`); ``observer``
    hears the phases and the plan (the benchmark child's outcome file)."""
    observer = observer or _Unobserved()
    observer.phase("plan")
    plan = prepare(config)
    observer.planned(plan)
    if get_spec(plan.config.backend).load_shape != "stream":  # an endpoint's hardware is remote
        check_device_model(plan.config.device, plan.config.device_model, plan.config.target)
    run_uid = uuid.uuid4().hex
    campaign = campaign or CampaignRef(dag_run_id=f"cli__{run_uid}", trigger="cli")
    observer.phase("load")
    backend = create_backend(plan.config)
    try:
        backend.load()
        if backend.config != plan.config:  # settled by the backend: record what is in effect
            settled = backend.config
            built = plan.prompt_set
            if settled.input_tokens is not None:  # e.g. the endpoint, hence the counting rule
                built = requests_set(settled, plan.source)
            plan = Plan(settled, built, plan.source, plan.lengths)
            observer.planned(plan)
        backend.check(plan.measured + plan.warmup)
        environment = capture_environment(plan.config.device, backend.info())
        return _measure(
            backend, plan, run_uid, campaign, environment, progress, clock, observer, role
        )
    finally:
        backend.close()


def _measure(
    backend: Backend,
    plan: Plan,
    run_uid: str,
    campaign: CampaignRef,
    environment: dict[str, Any],
    progress: ProgressFactory | None,
    clock: Callable[[], float],
    observer: RunObserver,
    role: str = "primary",
) -> RunResult:
    config = plan.config
    started_at = _utcnow()
    warmup_s: float | None = None
    sink: ProgressSink = _NoProgress()
    remote = get_spec(config.backend).load_shape == "stream"
    watch = telemetry_sampler(config.device, world_size=config.world_size, remote=remote)
    telemetry: dict[str, Any] | None = None

    def result(**kw: Any) -> RunResult:
        return RunResult(
            run_uid=run_uid,
            config=config,
            fingerprint=plan.fingerprint,
            campaign=campaign,
            prompt_set=plan.prompt_set_json(),
            environment=environment,
            started_at=started_at,
            finished_at=_utcnow(),
            warmup_s=warmup_s,
            telemetry=telemetry,
            role=role,
            **kw,
        )

    try:
        if plan.warmup:
            observer.phase("warmup")
            t = clock()
            backend.execute(plan.warmup, _ignore)
            warmup_s = clock() - t
        backend.reset_peak_memory()
        sampler = backend.power_sampler()
        if progress is not None:
            sink = progress(len(plan.measured), config.label)
        observer.phase("measure")
        started_at = _utcnow()
        if watch is not None:
            watch.start()
        if sampler is not None:
            sampler.start()
        t0 = clock()
        records = backend.execute(plan.measured, sink.update)
        duration = clock() - t0
        energy = sampler.stop() if sampler is not None else None
    except Exception as exc:  # recorded as data: the caller stores failed runs
        status = classify_failure(exc)
        log.error("run %s failed (%s):\n%s", config.label, status, traceback.format_exc())
        return result(status=status, error=one_line(exc))
    finally:
        sink.close()
        if watch is not None:
            telemetry = watch.stop()
    # after the measured window: digests always, ids and text unless --no-outputs
    requests = tuple(request_result(r, keep_outputs=not config.no_outputs) for r in records)
    passes, ratio = 1, None
    if config.timing == "dual" and (windows := dual_windows(records)) is not None:
        bare_s, streamed_s = windows  # throughput is the bare passes' (README "Timing")
        passes, duration = 2, bare_s
        ratio = streamed_s / bare_s if bare_s > 0 else None
    metrics = summarize(
        requests,
        duration_s=duration,
        slo_ttft_ms=config.slo_ttft_ms,
        slo_tpot_ms=config.slo_tpot_ms,
        peak_memory_bytes=backend.peak_memory_bytes(),
        energy_j=energy,
        passes=passes,
        streamed_vs_bare_ratio=ratio,
    )
    if requests and not any(r.success for r in requests):
        error = f"all {len(requests)} requests failed; first: {requests[0].error}"
        return result(status="failed", error=error, metrics=metrics, requests=requests)
    return result(status="ok", metrics=metrics, requests=requests)


def _ignore(_: int) -> None:
    pass


__all__ = [
    "Plan",
    "Progress",
    "ProgressSink",
    "RunObserver",
    "classify_failure",
    "prepare",
    "run_benchmark",
]
