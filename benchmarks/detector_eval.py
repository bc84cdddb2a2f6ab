"""How well does the nightly gate catch real steps, and how often does it cry wolf?

Simulated config histories (``bench.stats.synthetic``: lognormal per-request
noise with CV 2-5%, a shared night effect of 0.5-1.5%, slow outlier nights,
straggler requests, 64-200 requests a night), 1000 without any change and
1000 for each step size (3/5/10/20% worse, injected at a random night). Every
night from the 15th on is judged against the 14 nights before it, with last
night's findings fed back, exactly as the nightly DAG will do it, by our
detector (``bench.stats.detect``) and by the anchor rules side by side on
the same data.

Printed per metric and rule:

* recall: share of stepped histories flagged ``regression`` on the first or
  second bad night;
* false alarms: ``regression`` verdicts per 1000 config-nights of the
  step-free histories.

Plus the change-point search: step found within one night, and step-free
series with any change point.

    .venv/bin/python benchmarks/detector_eval.py            # full run
    .venv/bin/python benchmarks/detector_eval.py --quick    # 200 per group
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from bench.stats import ANCHORS, METRICS, Finding, detect, find_changepoints, parse_thresholds
from bench.stats.synthetic import NoiseModel, simulate

K = 14
EVAL_METRICS: tuple[str, ...] = ("ttft_p50_ms", "ttft_p99_ms", "output_tokens_per_s")
STEPS: tuple[float, ...] = (0.03, 0.05, 0.10, 0.20)
OURS = "ours (bench.stats)"
RULES: tuple[str, ...] = (OURS, *ANCHORS)


@dataclass(frozen=True)
class Job:
    seed: int
    step: float
    n_nights: int
    thresholds: str  # JSON, so the job pickles without custom classes
    model: NoiseModel = field(default_factory=NoiseModel)
    changepoints: bool = False


@dataclass
class Outcome:
    """What one history contributes to the tallies."""

    step: float
    nights: int = 0
    # step-free: regression nights per (rule, metric); ours also counts suspicious rows
    alarms: dict[tuple[str, str], int] = field(default_factory=dict)
    suspicious: dict[str, int] = field(default_factory=dict)
    # stepped: flagged on the 1st or 2nd bad night per (rule, metric)
    hits: dict[tuple[str, str], bool] = field(default_factory=dict)
    # anchor scores: every night (step-free) or the larger of the two bad nights (stepped)
    scores: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    cp_found: bool | None = None  # step found within one night / any change point at all


def _run(job: Job) -> Outcome:
    rng = np.random.default_rng(job.seed)
    step_night = int(rng.integers(K + 1, job.n_nights - 1)) if job.step else None
    hist = simulate(rng, job.n_nights, step=job.step, step_night=step_night, model=job.model)
    nights = hist.nights()
    limits = parse_thresholds(json.loads(job.thresholds))
    flags: dict[tuple[str, str], list[bool]] = {(r, m): [] for r in RULES for m in EVAL_METRICS}
    scores: dict[tuple[str, str], list[float]] = {(a, m): [] for a in ANCHORS for m in EVAL_METRICS}
    suspicious = dict.fromkeys(EVAL_METRICS, 0)
    previous: tuple[Finding, ...] = ()
    series = {m: np.array([n.value(m) for n in nights]) for m in EVAL_METRICS}
    for t in range(K, job.n_nights):
        found = detect(
            nights[t], nights[t - K : t], previous=previous, thresholds=limits, metrics=EVAL_METRICS
        )
        previous = found
        verdicts = {f.metric: f.verdict for f in found}
        for m in EVAL_METRICS:
            flags[(OURS, m)].append(verdicts.get(m) == "regression")
            suspicious[m] += verdicts.get(m) == "suspicious"
            window = series[m][t - K : t]
            for name, rule in ANCHORS.items():
                call = rule(window, float(series[m][t]), METRICS[m].better)
                flags[(name, m)].append(call.verdict == "regression")
                scores[(name, m)].append(call.score)
    out = Outcome(step=job.step, nights=job.n_nights - K)
    first = None if step_night is None else step_night - K
    for key, values in flags.items():
        arr = np.array(values)
        if first is None:
            out.alarms[key] = int(arr.sum())
        else:
            out.hits[key] = bool(arr[first : first + 2].any())
    for key, values in scores.items():
        arr = np.array(values)
        out.scores[key] = arr if first is None else np.array([arr[first : first + 2].max()])
    out.suspicious = suspicious if first is None else {}
    if job.changepoints:
        cps = find_changepoints(series["ttft_p50_ms"], "lower")
        if step_night is None:
            out.cp_found = bool(cps)
        else:
            out.cp_found = any(abs(c.index - step_night) <= 1 for c in cps)
    return out


def _jobs(
    seed: int, per_group: int, n_nights: int, thresholds: str, model: NoiseModel, cp_every: int
) -> list[Job]:
    seeds = np.random.SeedSequence(seed).generate_state(per_group * (1 + len(STEPS)))
    jobs = []
    for g, step in enumerate((0.0, *STEPS)):
        for i in range(per_group):
            jobs.append(
                Job(
                    seed=int(seeds[g * per_group + i]),
                    step=step,
                    n_nights=n_nights,
                    thresholds=thresholds,
                    model=model,
                    changepoints=cp_every > 0 and i % cp_every == 0,
                )
            )
    return jobs


def evaluate(jobs: list[Job], workers: int) -> list[Outcome]:
    if workers <= 1:
        return [_run(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run, jobs, chunksize=16))


def _equal_alarm_recall(
    outcomes: list[Outcome], rule: str, metric: str, budget: float, nights: int
) -> tuple[float, float]:
    """The rule re-thresholded to at most ``budget`` false alarms per 1000 nights: recall at 5%."""
    null = np.concatenate([o.scores[(rule, metric)] for o in outcomes if o.step == 0.0])
    stepped = np.concatenate([o.scores[(rule, metric)] for o in outcomes if o.step == 0.05])
    allowed = int(budget * nights / 1000.0)
    ordered = np.sort(null[np.isfinite(null)])[::-1]
    limit = ordered[allowed] if allowed < ordered.size else -np.inf
    if np.isinf(null).any() and allowed < np.isinf(null).sum():
        limit = np.inf
    return float(np.mean(stepped > limit)), float(limit)


def report(outcomes: list[Outcome], title: str) -> str:
    null = [o for o in outcomes if o.step == 0.0]
    nights = sum(o.nights for o in null)
    lines = [title, ""]
    head = f"{'rule':<22}" + "".join(f"{f'{s:.0%}':>8}" for s in STEPS) + f"{'false alarms':>14}"
    for m in EVAL_METRICS:
        kind = "per-request values" if METRICS[m].distribution else "nightly value only"
        lines += [
            f"{m} ({kind}): recall by the 2nd bad night; false alarms per 1000 config-nights",
            head,
        ]
        ours_fa = 0.0
        for rule in RULES:
            recalls = [
                f"{np.mean([o.hits[(rule, m)] for o in outcomes if o.step == s]):>8.1%}"
                for s in STEPS
            ]
            fa = 1000.0 * sum(o.alarms[(rule, m)] for o in null) / nights
            ours_fa = fa if rule == OURS else ours_fa
            lines.append(f"{rule:<22}" + "".join(recalls) + f"{fa:>14.2f}")
        sus = 1000.0 * sum(o.suspicious[m] for o in null) / nights
        budget = ours_fa
        fair = ", ".join(
            f"{name} {_equal_alarm_recall(outcomes, name, m, budget, nights)[0]:.1%}"
            for name in ANCHORS
        )
        lines.append(f"  ours: {sus:.1f} suspicious rows per 1000 step-free config-nights")
        lines.append(
            f"  anchors re-thresholded to our false-alarm rate ({budget:.2f}): recall at 5%: {fair}"
        )
        lines.append("")
    cp_null = [o.cp_found for o in null if o.cp_found is not None]
    if cp_null:
        found = [
            f"{s:.0%} {np.mean([o.cp_found for o in outcomes if o.step == s and o.cp_found is not None]):.1%}"
            for s in STEPS
        ]
        lines.append(
            f"change points (ttft_p50_ms, {len(cp_null)} series per group): step found within 1 night: "
            + ", ".join(found)
            + f"; step-free series with any change point: {np.mean(cp_null):.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="200 histories per group instead of 1000"
    )
    parser.add_argument(
        "--histories", type=int, help="histories per group (default 1000; --quick 200)"
    )
    parser.add_argument("--nights", type=int, default=60, help="nights per history (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)"
    )
    parser.add_argument(
        "--thresholds", default="{}", help="campaign-style thresholds as JSON (default: built-in)"
    )
    parser.add_argument(
        "--night-sd",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="night-effect sd range, fractions (default 0.005 0.015)",
    )
    parser.add_argument(
        "--cp-every",
        type=int,
        default=5,
        help="change-point search on every Nth history (0 = off; default 5)",
    )
    args = parser.parse_args(argv)
    per_group = args.histories or (200 if args.quick else 1000)
    model = NoiseModel()
    if args.night_sd:
        model = replace(model, night_sd=tuple(args.night_sd))
    parse_thresholds(json.loads(args.thresholds))  # fail fast on a typo
    t0 = time.perf_counter()
    jobs = _jobs(args.seed, per_group, args.nights, args.thresholds, model, args.cp_every)
    outcomes = evaluate(jobs, args.workers)
    elapsed = time.perf_counter() - t0
    title = (
        f"detector evaluation: {per_group} step-free + {len(STEPS)} x {per_group} stepped histories, "
        f"{args.nights} nights, K={K}, seed {args.seed}, {args.workers} workers, {elapsed:.0f} s\n"
        f"noise: per-request CV {model.request_cv[0]:.0%}-{model.request_cv[1]:.0%}, "
        f"night effect sd {model.night_sd[0]:.1%}-{model.night_sd[1]:.1%}, "
        f"{model.outlier_night_rate:.0%} slow nights, {model.straggler_rate:.0%} stragglers, "
        f"{model.requests[0]}-{model.requests[1]} requests/night"
    )
    print(report(outcomes, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
