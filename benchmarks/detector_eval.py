"""How well does the nightly gate catch real steps, how soon, and how often does it cry wolf?

Two evaluations on seeded simulations (``bench.stats.synthetic``), every
night from the 15th judged against the 14 before it with last night's
findings fed back, exactly as the nightly DAG does it, and the anchor rules
scored side by side on the same data.

**Campaigns** (the default). A campaign runs 8 configurations of one device
class on 2 hosts every night (``CampaignNoise``: per-request lognormal noise
with CV 2-5%, 64-200 requests, stragglers; a night effect of sd 0.5-1.5% per
configuration split into a part the whole campaign shares, a part the
configurations on one host share, and a part of the run alone, a third
each by default; slow runs and slow host-nights). Groups: step-free
campaigns, campaigns where 3 of the 8 configurations get a step of 3/5/10/20%
at their own random night, and campaigns where every configuration steps 5%
on the same night. Each lever of the first-night goal is measured alone and
together:

* (a) a confirm run: every configuration flagged ``suspicious`` tonight is
  re-run once (on any host, as a Celery queue hands it out; the run part of
  the noise drawn afresh) and judged together with tonight's run;
* (b) the campaign's common shift taken out of every configuration (and a
  real campaign-wide shift reported as ``campaign_shift``; a bad host as
  ``host_anomaly``);
* (c) the confirm run measuring 4x the requests.

Printed per metric and lever: recall by the FIRST and by the second bad
night (share of stepped configurations flagged ``regression``), false
regressions per 1000 step-free config-nights, confirm runs per 100
config-nights, and each anchor rule re-thresholded to the shipped
false-alarm rate; then what each lever does with a campaign-wide step, and
how many ``host_anomaly`` verdicts fell on simulated slow host-nights.

**Single histories** (``--single``): the per-configuration gate alone
against the anchors on independent histories (the previous evaluation;
recall by the second bad night), plus the change-point search.

    .venv/bin/python benchmarks/detector_eval.py                    # campaigns, 40 per group
    .venv/bin/python benchmarks/detector_eval.py --quick            # 25 per group
    .venv/bin/python benchmarks/detector_eval.py --shares 0.6 0.2   # another noise split
    .venv/bin/python benchmarks/detector_eval.py --single           # per-configuration histories
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from bench.stats import ANCHORS, METRICS, Finding, detect, find_changepoints, parse_thresholds
from bench.stats.campaign import Subject, judge_campaign
from bench.stats.synthetic import CampaignHistory, CampaignNoise, NoiseModel, simulate

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


# -- campaigns: the levers that confirm a step on its first night ----------------------------


@dataclass(frozen=True)
class Lever:
    """One way of running the gate over a campaign."""

    name: str
    common_mode: bool  # (b) common mode taken out, host anomalies recognised
    confirm: bool  # (a) a same-night confirm run of each suspicious configuration
    extra: int = 1  # (c) the confirm run measures this many times the requests


LEVERS: tuple[Lever, ...] = (
    Lever("per-config gate (before)", common_mode=False, confirm=False),
    Lever("+ confirm run (a)", common_mode=False, confirm=True),
    Lever("+ common mode, hosts (b)", common_mode=True, confirm=False),
    Lever("+ both (shipped)", common_mode=True, confirm=True),
    Lever("+ both, 4x requests (c)", common_mode=True, confirm=True, extra=4),
)
SHIPPED = "+ both (shipped)"
#: Configurations of a campaign that get a step of their own (at different nights).
STEPPED_PER_CAMPAIGN = 3


@dataclass(frozen=True)
class CampaignJob:
    seed: int
    kind: str  # "null" | "config" (a few configurations step) | "campaign" (all step at once)
    step: float
    n_nights: int
    noise: CampaignNoise
    thresholds: str


@dataclass
class CampaignOutcome:
    kind: str
    step: float
    config_nights: int = 0  # step-free configuration-nights judged
    campaign_nights: int = 0
    alarms: dict[tuple[str, str], int] = field(default_factory=dict)  # (lever, metric)
    first: dict[tuple[str, str], list[bool]] = field(default_factory=dict)  # regression on night 1
    second: dict[tuple[str, str], list[bool]] = field(default_factory=dict)  # by night 2
    confirms: dict[str, int] = field(default_factory=dict)  # confirm runs per lever
    shift_first: dict[tuple[str, str], bool] = field(
        default_factory=dict
    )  # campaign_shift, night 1
    shift_false: dict[tuple[str, str], int] = field(default_factory=dict)  # on step-free nights
    flood: dict[tuple[str, str], int] = field(default_factory=dict)  # regressions, campaign step
    host_verdicts: int = 0  # host-nights blamed by a host_anomaly (any metric)
    host_verdicts_on_bad: int = 0
    bad_host_nights: int = 0
    scores: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # anchors, step-free
    anchor_first: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    anchor_second: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def _steps(rng: np.random.Generator, job: CampaignJob) -> tuple[np.ndarray, dict[int, int]]:
    """The step matrix and each stepped configuration's first bad night."""
    configs, nights = job.noise.configs, job.n_nights
    steps = np.zeros((configs, nights))
    first: dict[int, int] = {}
    if job.kind == "config":
        for c in rng.choice(configs, STEPPED_PER_CAMPAIGN, replace=False):
            first[int(c)] = int(rng.integers(K + 1, nights - 1))
    elif job.kind == "campaign":
        night = int(rng.integers(K + 1, nights - 1))
        first = dict.fromkeys(range(configs), night)
    for c, night in first.items():
        steps[c, night:] = math.log1p(job.step)
    return steps, first


def _subjects(
    hist: CampaignHistory, t: int, previous: dict[int, dict[str, Finding]]
) -> list[Subject]:
    window = list(range(K))
    return [
        Subject(
            key=c,
            label=f"config {c}",
            group="sim",
            host=hist.host(c, t),
            current=hist.night(c, t),
            history=[hist.night(c, i) for i in range(t - K, t)],
            campaigns=list(range(t - K, t)),
            windows=dict.fromkeys(EVAL_METRICS, window),
            previous=previous.get(c, {}),
            history_hosts=[hist.host(c, i) for i in range(t - K, t)],
        )
        for c in range(hist.noise.configs)
    ]


def _run_campaign(job: CampaignJob) -> CampaignOutcome:
    rng = np.random.default_rng(job.seed)
    steps, first_bad = _steps(rng, job)
    hist = CampaignHistory(rng, job.n_nights, job.noise, steps)
    limits = parse_thresholds(json.loads(job.thresholds))
    out = CampaignOutcome(job.kind, job.step)
    keys = [(lv.name, m) for lv in LEVERS for m in EVAL_METRICS]
    out.alarms = dict.fromkeys(keys, 0)
    out.first = {k: [] for k in keys}
    out.second = {k: [] for k in keys}
    out.confirms = {lv.name: 0 for lv in LEVERS}
    out.shift_false = dict.fromkeys(keys, 0)
    out.flood = dict.fromkeys(keys, 0)
    previous: dict[bool, dict[int, dict[str, Finding]]] = {False: {}, True: {}}
    flagged: dict[tuple[str, str, int], list[int]] = defaultdict(list)  # regression nights
    for t in range(K, job.n_nights):
        subjects = _subjects(hist, t, previous[False]), _subjects(hist, t, previous[True])
        base = {
            cm: judge_campaign(
                subjects[cm], thresholds=limits, metrics=EVAL_METRICS, common_mode=cm
            )
            for cm in (False, True)
        }
        for cm in (False, True):
            previous[cm] = {j.key: {f.metric: f for f in j.findings} for j in base[cm].judgements}
        out.bad_host_nights += int((hist.bad_host[:, t] > 0).sum())
        for lever in LEVERS:
            judged = base[lever.common_mode]
            if lever.confirm and (keys_ := judged.to_confirm()):
                out.confirms[lever.name] += len(keys_)
                reruns = {c: hist.confirm(int(c), t, lever.extra) for c in keys_}  # type: ignore[call-overload]
                judged = judged.with_confirms(
                    {c: night for c, (night, _) in reruns.items()},
                    {c: f"host{host}" for c, (_, host) in reruns.items()},
                )
            for j in judged.judgements:
                c = int(j.key)  # type: ignore[call-overload]
                for f in j.findings:
                    if f.verdict == "regression":
                        flagged[(lever.name, f.metric, c)].append(t)
            shifts = {g.metric for g in judged.groups if g.verdict == "campaign_shift"}
            for m in EVAL_METRICS:
                if job.kind == "campaign" and t == next(iter(first_bad.values())):
                    out.shift_first[(lever.name, m)] = m in shifts
                elif job.kind != "campaign" or t < next(iter(first_bad.values())):
                    out.shift_false[(lever.name, m)] += m in shifts
            if lever.name == SHIPPED:
                blamed = {
                    int(g.scope.removeprefix("host"))
                    for g in judged.groups
                    if g.verdict == "host_anomaly"
                }
                out.host_verdicts += len(blamed)
                out.host_verdicts_on_bad += sum(bool(hist.bad_host[h, t] > 0) for h in blamed)
        clean = [c for c in range(hist.noise.configs) if c not in first_bad]
        out.config_nights += len(clean)
        out.campaign_nights += 1
    series = {
        (c, m): np.array([hist.night(c, t).value(m) or np.nan for t in range(job.n_nights)])
        for c in range(hist.noise.configs)
        for m in EVAL_METRICS
    }
    for lever in LEVERS:
        for m in EVAL_METRICS:
            key = (lever.name, m)
            for c in range(hist.noise.configs):
                nights = flagged.get((lever.name, m, c), [])
                if c in first_bad:
                    bad = first_bad[c]
                    out.first[key].append(bad in nights)
                    out.second[key].append(bad in nights or bad + 1 in nights)
                    if job.kind == "campaign":
                        out.flood[key] += sum(t in (bad, bad + 1) for t in nights)
                else:
                    out.alarms[key] += len(nights)
    for name, rule in ANCHORS.items():
        for m in EVAL_METRICS:
            null, one, two = [], [], []
            for c in range(hist.noise.configs):
                values = series[(c, m)]
                scores = [
                    rule(values[t - K : t], float(values[t]), METRICS[m].better).score
                    for t in range(K, job.n_nights)
                ]
                if c in first_bad:
                    i = first_bad[c] - K
                    one.append(scores[i])
                    two.append(max(scores[i : i + 2]))
                else:
                    null.extend(scores)
            out.scores[(name, m)], out.anchor_first[(name, m)] = null, one
            out.anchor_second[(name, m)] = two
    return out


def _campaign_jobs(
    seed: int, per_group: int, n_nights: int, noise: CampaignNoise, thresholds: str
) -> list[CampaignJob]:
    groups = [("null", 0.0)] + [("config", s) for s in STEPS] + [("campaign", 0.05)]
    seeds = np.random.SeedSequence(seed).generate_state(per_group * len(groups))
    return [
        CampaignJob(int(seeds[g * per_group + i]), kind, step, n_nights, noise, thresholds)
        for g, (kind, step) in enumerate(groups)
        for i in range(per_group)
    ]


def _rethreshold(
    outcomes: Sequence[CampaignOutcome], anchor: str, metric: str, budget: float, nights: int
) -> tuple[float, float]:
    """An anchor cut at ``budget`` false alarms per 1000 nights: its recall at 5% by night 1 and 2."""
    null = np.array([s for o in outcomes for s in o.scores.get((anchor, metric), [])])
    allowed = int(budget * nights / 1000.0)
    ordered = np.sort(null[np.isfinite(null)])[::-1]
    limit = ordered[allowed] if allowed < ordered.size else -np.inf
    if np.isinf(null).sum() > allowed:
        limit = np.inf
    stepped = [o for o in outcomes if o.kind == "config" and o.step == 0.05]
    one = np.array([s for o in stepped for s in o.anchor_first[(anchor, metric)]])
    two = np.array([s for o in stepped for s in o.anchor_second[(anchor, metric)]])
    return float(np.mean(one > limit)), float(np.mean(two > limit))


def campaign_report(outcomes: Sequence[CampaignOutcome], title: str) -> str:
    null = [o for o in outcomes if o.kind != "campaign"]
    nights = sum(o.config_nights for o in null)
    campaign_nights = sum(o.campaign_nights for o in null)
    lines = [title, ""]
    head = (
        f"{'lever':<28}"
        + "".join(f"{f'{s:.0%}':>13}" for s in STEPS)
        + f"{'false alarms':>14}{'confirms':>10}"
    )
    for m in EVAL_METRICS:
        kind = "per-request values" if METRICS[m].distribution else "nightly value only"
        lines += [
            f"{m} ({kind}): recall by the FIRST / by the second bad night; false regressions "
            "per 1000 config-nights; confirm runs per 100 config-nights",
            head,
        ]
        budget = 0.0
        for lever in LEVERS:
            key = (lever.name, m)
            cells = []
            for s in STEPS:
                stepped = [o for o in outcomes if o.kind == "config" and o.step == s]
                one = np.mean([h for o in stepped for h in o.first[key]])
                two = np.mean([h for o in stepped for h in o.second[key]])
                cells.append(f"{f'{one:.1%}/{two:.1%}':>13}")
            fa = 1000.0 * sum(o.alarms[key] for o in null) / nights
            cost = 100.0 * sum(o.confirms[lever.name] for o in null) / nights
            budget = fa if lever.name == SHIPPED else budget
            lines.append(f"{lever.name:<28}" + "".join(cells) + f"{fa:>14.2f}{cost:>10.1f}")
        fair = ", ".join(
            "{} {:.1%}/{:.1%}".format(name, *_rethreshold(outcomes, name, m, budget, nights))
            for name in ANCHORS
        )
        lines.append(
            f"  anchors re-thresholded to the shipped false-alarm rate ({budget:.2f}), recall at 5% "
            f"by night 1/2: {fair}"
        )
        lines.append("")
    wide = [o for o in outcomes if o.kind == "campaign"]
    if wide:
        lines.append(
            f"campaign-wide 5% step ({len(wide)} campaigns, every configuration at once): "
            "campaign_shift on its first night / false campaign_shift per 1000 campaign-nights / "
            "configuration regressions on the step's first two nights per campaign"
        )
        for lever in LEVERS:
            cells = []
            for m in EVAL_METRICS:
                key = (lever.name, m)
                hit = np.mean([o.shift_first.get(key, False) for o in wide])
                false = 1000.0 * sum(o.shift_false[key] for o in null) / campaign_nights
                flood = np.mean([o.flood[key] for o in wide])
                cells.append(f"{m} {hit:.0%} / {false:.1f} / {flood:.1f}")
            lines.append(f"  {lever.name:<28}" + "; ".join(cells))
        lines.append("")
    bad = sum(o.bad_host_nights for o in outcomes)
    verdicts = sum(o.host_verdicts for o in outcomes)
    on_bad = sum(o.host_verdicts_on_bad for o in outcomes)
    lines.append(
        f"host_anomaly (shipped): {verdicts} host-nights blamed, {on_bad} of them among the {bad} "
        "slow host-nights simulated"
    )
    return "\n".join(lines)


def evaluate_campaigns(jobs: list[CampaignJob], workers: int) -> list[CampaignOutcome]:
    if workers <= 1:
        return [_run_campaign(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_campaign, jobs, chunksize=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the default sample")
    parser.add_argument("--single", action="store_true", help="single histories, not campaigns")
    parser.add_argument(
        "--campaigns", type=int, help="campaigns per group (default 40; --quick 25)"
    )
    parser.add_argument(
        "--histories", type=int, help="--single: histories per group (default 1000; --quick 200)"
    )
    parser.add_argument("--configs", type=int, default=8, help="configurations per campaign")
    parser.add_argument("--hosts", type=int, default=2, help="hosts per campaign (default 2)")
    parser.add_argument(
        "--shares",
        type=float,
        nargs=2,
        metavar=("COMMON", "HOST"),
        help="shares of the night variance common to the campaign and to a host (default 1/3 1/3)",
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
        help="--single: change-point search on every Nth history (0 = off; default 5)",
    )
    args = parser.parse_args(argv)
    model = NoiseModel()
    if args.night_sd:
        model = replace(model, night_sd=tuple(args.night_sd))
    parse_thresholds(json.loads(args.thresholds))  # fail fast on a typo
    t0 = time.perf_counter()
    if args.single:
        return _single(args, model, t0)
    noise = CampaignNoise(
        base=replace(model, outlier_night_rate=0.0), configs=args.configs, hosts=args.hosts
    )
    if args.shares:
        noise = replace(noise, common_share=args.shares[0], host_share=args.shares[1])
    per_group = args.campaigns or (25 if args.quick else 40)
    jobs = _campaign_jobs(args.seed, per_group, args.nights, noise, args.thresholds)
    outcomes = evaluate_campaigns(jobs, args.workers)
    elapsed = time.perf_counter() - t0
    run_share = 1.0 - noise.common_share - noise.host_share
    title = (
        f"detector evaluation, campaigns: {per_group} per group x {noise.configs} configurations "
        f"on {noise.hosts} hosts, {args.nights} nights, K={K}, seed {args.seed}, "
        f"{args.workers} workers, {elapsed:.0f} s\n"
        f"noise: per-request CV {model.request_cv[0]:.0%}-{model.request_cv[1]:.0%}, "
        f"{model.requests[0]}-{model.requests[1]} requests, {model.straggler_rate:.0%} stragglers; "
        f"night effect sd {model.night_sd[0]:.1%}-{model.night_sd[1]:.1%} of which "
        f"{noise.common_share:.0%} campaign-wide, {noise.host_share:.0%} per host, "
        f"{run_share:.0%} per run; {noise.outlier_run_rate:.0%} slow runs, "
        f"{noise.bad_host_rate:.0%} slow host-nights (half-normal, sd {noise.outlier_sd:.0%})"
    )
    print(campaign_report(outcomes, title))
    return 0


def _single(args: argparse.Namespace, model: NoiseModel, t0: float) -> int:
    per_group = args.histories or (200 if args.quick else 1000)
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
