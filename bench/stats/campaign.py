"""The gate at campaign level: shared night shifts, bad hosts, same-night confirm runs.

:func:`bench.stats.detect` judges one configuration against its own history.
A nightly campaign runs many configurations of one device class on the same
night, and that is information the per-configuration gate throws away.

Why three more pieces
---------------------
A night's shift of one configuration has three parts (the evaluation's noise
model, ``bench.stats.synthetic.CampaignNoise``): a part every configuration
of the campaign shares (the cluster's temperature, a shared filesystem, a
firmware state), a part the configurations on one host share (that node's
clocks and neighbours), and a part of the run alone (its process: allocator
layout, graph compilation, a preemption). The per-configuration gate sees
their sum and must wait for a second night before it believes a step.

1. **Common mode.** Within a group of comparable configurations (the device
   class), the median of their deviations from their own baselines is the
   night's common shift. On the baseline nights it is noise, and removing it
   from every night leaves each configuration's own deviation, with a
   smaller spread. Tonight's common shift is judged against its own history:
   inside its usual range (|z| < :data:`QUIET_Z`) it is taken out; large and
   notable (|z| >= :data:`SHIFT_Z` and at least the minimum effect) it is a
   real campaign-wide shift (when at least :data:`SHIFT_SHARE` of the group
   moved with it), reported as one ``campaign_shift`` verdict naming the
   configurations that moved with it, and each configuration is
   still judged on its deviation from it (so one that moved differently is
   still flagged: nothing is hidden); in between, nothing is taken out and
   every configuration is judged raw, as before. The median needs
   :data:`MIN_COMMON` configurations and ignores a minority that moved:
   one configuration's own regression does not move it.
2. **Host anomaly.** When every configuration that ran on one host got worse
   (at least :data:`MIN_HOST_FLAGGED` of them flagged) and none on another
   host was flagged, the node is the likelier cause: one ``host_anomaly``
   verdict naming the host replaces their separate findings.
3. **Confirm run.** A configuration flagged ``suspicious`` (worse) tonight is
   re-run once in the same campaign, on whichever worker takes it; the
   re-run shares the campaign's common part, shares the host part only if
   it lands on the same node, and draws a fresh run part. It is judged
   exactly as a second night would be: the confirm run against the same
   baseline, with the campaign's run as "last night" (``z_confirm``, and the
   minimum effect on the mean change of both runs). Confirmed, the finding
   becomes a ``regression`` on the first night.

``docs/regressions.md`` has the rules in prose, ``docs/performance.md`` what
each piece buys under the evaluation's noise model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from bench.stats.detector import (
    EFFECT_BAND,
    MIN_BASELINE,
    SPREAD_FLOOR,
    assess,
    detect,
)
from bench.stats.robust import median, median_inflation, median_sd
from bench.stats.thresholds import parse_thresholds
from bench.stats.types import KEY_METRICS, METRICS, Direction, Finding, Night, source

#: Configurations of a group needed to estimate a night's common shift.
MIN_COMMON = 4
#: A common shift within this many of its own spreads is noise and is taken out.
QUIET_Z = 2.0
#: A common shift of at least this many spreads (and the minimum effect) is a campaign_shift ...
SHIFT_Z = 3.0
#: ... when at least this share of the group moved with it, by half of it or more (half the
#: configurations moving is a bad host or a change to some of them, not the campaign).
SHIFT_SHARE = 0.75
#: Configurations of one host that must be flagged before the host is blamed.
MIN_HOST_FLAGGED = 2
#: With a confirm run, two runs share the burden of proof: a run is worth confirming
#: from this fraction of the metric's z on, and the confirm run needs this fraction of
#: ``z_confirm`` (chosen on the evaluation's seed 7, reported on seed 0).
RERUN_Z_SCALE = 0.75

GroupVerdict = Literal["campaign_shift", "host_anomaly"]


@dataclass(frozen=True)
class Subject:
    """One configuration's run in tonight's campaign, and what it is judged against.

    ``history`` are the configuration's earlier ok runs, oldest first, and
    ``campaigns`` the campaign of each (any keys that sort in time order);
    ``windows`` gives, per metric, the indices of ``history`` forming that
    metric's baseline (:func:`bench.stats.baseline_window`). ``group`` holds
    configurations that share a night's conditions (the device class);
    ``previous`` maps a metric to last night's finding; ``confirm`` is a
    same-night re-run of this configuration, if one ran.
    """

    key: Hashable
    label: str
    group: str
    host: str | None
    current: Night
    history: Sequence[Night]
    campaigns: Sequence[Any]
    windows: Mapping[str, Sequence[int]]
    previous: Mapping[str, Finding] = field(default_factory=dict)
    confirm: Night | None = None


@dataclass(frozen=True)
class GroupFinding:
    """A verdict about many runs at once: a campaign-wide shift or a bad host."""

    verdict: GroupVerdict
    metric: str
    scope: str  # the group for campaign_shift, the host for host_anomaly
    keys: tuple[Hashable, ...]  # the runs it covers, in campaign order
    change_pct: float
    direction: Direction
    reason: str
    z: float | None = None


@dataclass(frozen=True)
class Judgement:
    """One configuration's verdicts tonight."""

    key: Hashable
    label: str
    findings: tuple[Finding, ...]
    #: metric -> the common shift taken out of tonight's run (log scale; 0 = none)
    common: Mapping[str, float] = field(default_factory=dict)
    confirmed: bool = False  # a confirm run was judged with it
    #: Metrics worse tonight by at least RERUN_Z_SCALE x z: what a confirm run would settle.
    candidates: tuple[Finding, ...] = ()

    @property
    def to_confirm(self) -> tuple[str, ...]:
        """Metrics a confirm run would settle (none once one was judged)."""
        return () if self.confirmed else tuple(f.metric for f in self.candidates)


@dataclass(frozen=True)
class CampaignJudgement:
    judgements: tuple[Judgement, ...]
    groups: tuple[GroupFinding, ...]
    _state: _State | None = field(default=None, repr=False, compare=False)

    def to_confirm(self) -> list[Hashable]:
        """Keys of the runs a confirm run would settle, in campaign order."""
        return [j.key for j in self.judgements if j.to_confirm]

    def with_confirms(self, confirms: Mapping[Hashable, Night]) -> CampaignJudgement:
        """The same campaign judged again with these confirm runs (key -> run);
        nothing but the confirmed findings and the host verdicts is recomputed."""
        if self._state is None:
            raise ValueError("this judgement cannot take confirm runs")
        return self._state.finish({**self._state.confirms, **confirms})


# -- deviations and the common mode ----------------------------------------------------------


def _location(night: Night, metric: str) -> float | None:
    """A night's level for ``metric`` on the log scale, as the detector measures it."""
    spec = METRICS[metric]
    if spec.distribution is not None:
        loc = night.sample(spec.distribution)[1]
        if loc is not None:
            return loc.center
        if spec.tail:
            return None
    value = night.value(metric)
    return None if value is None else math.log(value)


@dataclass
class _Deviation:
    """A subject's deviations from its own baseline level, for one metric."""

    tonight: float
    baseline: dict[Any, float]  # campaign -> deviation of that baseline night


def _deviation(subject: Subject, metric: str) -> _Deviation | None:
    window = subject.windows.get(metric, ())
    if len(window) < MIN_BASELINE:
        return None
    locs = {subject.campaigns[i]: _location(subject.history[i], metric) for i in window}
    known = {c: v for c, v in locs.items() if v is not None}
    now = _location(subject.current, metric)
    if now is None or len(known) < MIN_BASELINE:
        return None
    level = median(np.array(list(known.values())))
    return _Deviation(now - level, {c: v - level for c, v in known.items()})


@dataclass(frozen=True)
class _Common:
    """A group's common shift for one metric: per campaign, tonight, and the verdict on it."""

    per_campaign: Mapping[Any, float]
    tonight: float
    z: float
    spread: float
    mode: Literal["adjust", "shift", "raw"]


def _common_mode(
    deviations: Mapping[Hashable, _Deviation], min_effect: float, k: int
) -> _Common | None:
    if len(deviations) < MIN_COMMON:
        return None
    by_campaign: dict[Any, list[float]] = defaultdict(list)
    for dev in deviations.values():
        for campaign, value in dev.baseline.items():
            by_campaign[campaign].append(value)
    per_campaign = {c: median(np.array(v)) for c, v in by_campaign.items() if len(v) >= MIN_COMMON}
    history = np.array([per_campaign[c] for c in sorted(per_campaign)][-k:])
    if history.size < MIN_BASELINE:
        return None
    tonight = median(np.array([d.tonight for d in deviations.values()]))
    level, spread = median_sd(history)
    spread = max(spread, SPREAD_FLOOR) * median_inflation(history.size)
    shift = tonight - level
    z = shift / spread
    mode: Literal["adjust", "shift", "raw"] = "adjust"
    if abs(z) >= QUIET_Z:
        moved = sum(
            d.tonight * shift > 0 and abs(d.tonight) >= abs(shift) / 2 for d in deviations.values()
        )
        notable = (
            abs(z) >= SHIFT_Z
            and abs(math.expm1(shift)) >= min_effect - EFFECT_BAND * spread
            and moved >= SHIFT_SHARE * len(deviations)
        )
        mode = "shift" if notable else "raw"
    return _Common(per_campaign, tonight, z, spread, mode)


# -- the campaign -----------------------------------------------------------------------------


def judge_campaign(
    subjects: Sequence[Subject],
    *,
    thresholds: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    common_mode: bool = True,
    host_anomalies: bool = True,
) -> CampaignJudgement:
    """Every configuration's verdicts tonight, plus campaign shifts and host anomalies.

    ``common_mode`` and ``host_anomalies`` switch the two campaign-level
    pieces off (the evaluation measures each); a subject with a ``confirm``
    run has its suspicious findings judged together with it, and
    :meth:`CampaignJudgement.with_confirms` adds confirm runs later.
    """
    limits = parse_thresholds(thresholds)
    names = [m.name for m in KEY_METRICS] if metrics is None else list(metrics)
    k = max((len(w) for s in subjects for w in s.windows.values()), default=0)
    deviations: dict[str, dict[Hashable, _Deviation]] = {m: {} for m in names}
    for subject in subjects:
        for m in names:
            dev = _deviation(subject, m)
            if dev is not None:
                deviations[m][subject.key] = dev
    commons: dict[str, dict[str, _Common]] = defaultdict(dict)  # metric -> group -> common mode
    if common_mode:
        groups_of: dict[str, list[Subject]] = defaultdict(list)
        for subject in subjects:
            groups_of[subject.group].append(subject)
        for m in names:
            for group, members in groups_of.items():
                devs = {s.key: deviations[m][s.key] for s in members if s.key in deviations[m]}
                common = _common_mode(devs, limits[m].min_effect, k)
                if common is not None:
                    commons[m][group] = common
    contexts = {s.key: _context(s, names, commons) for s in subjects}
    select = {m: replace(limits[m], z=limits[m].z * RERUN_Z_SCALE) for m in names}
    state = _State(
        subjects=tuple(subjects),
        names=tuple(names),
        limits=limits,
        commons=commons,
        deviations=deviations,
        contexts=contexts,
        first={s.key: _first_findings(s, contexts[s.key], names, select) for s in subjects},
        host_anomalies=host_anomalies,
        confirms={s.key: s.confirm for s in subjects if s.confirm is not None},
    )
    return state.finish(state.confirms)


@dataclass(frozen=True)
class _Context:
    """A subject's nights with the common shift taken out, as its findings see them."""

    current: Night
    history: Sequence[Night]
    factors: Mapping[str, float]  # source -> factor applied tonight (empty: none)
    common: Mapping[str, float]  # metric -> common shift taken out tonight (log)


def _context(
    subject: Subject, names: Sequence[str], commons: Mapping[str, Mapping[str, _Common]]
) -> _Context:
    tonight: dict[str, float] = {}
    history: list[dict[str, float]] = [{} for _ in subject.history]
    taken: dict[str, float] = {}
    for m in names:
        common = commons.get(m, {}).get(subject.group)
        if common is None or common.mode == "raw":
            continue
        taken[m] = common.tonight
        src = source(m)
        if src in tonight:
            continue
        # a proxy's values move against its metric (slower requests, lower throughput)
        sign = 1.0 if METRICS[m].proxy else -1.0
        tonight[src] = math.exp(sign * common.tonight)
        for i, campaign in enumerate(subject.campaigns):
            if campaign in common.per_campaign:
                history[i][src] = math.exp(sign * common.per_campaign[campaign])
    return _Context(
        current=subject.current.scaled(tonight) if tonight else subject.current,
        history=[n.scaled(f) if f else n for n, f in zip(subject.history, history, strict=True)],
        factors=tonight,
        common=taken,
    )


def _first_findings(
    subject: Subject, ctx: _Context, names: Sequence[str], limits: Mapping[str, Any]
) -> dict[str, Finding]:
    by_window: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for m in names:
        window = tuple(subject.windows.get(m, ()))
        if len(window) >= MIN_BASELINE:
            by_window[window].append(m)
    findings: dict[str, Finding] = {}
    for window, group in by_window.items():
        found = detect(
            ctx.current,
            [ctx.history[i] for i in window],
            previous=[subject.previous[m] for m in group if m in subject.previous],
            thresholds=limits,
            metrics=group,
        )
        findings.update({f.metric: f for f in found})
    return findings


@dataclass(frozen=True)
class _State:
    """What judging a campaign computed, kept so confirm runs can be added later."""

    subjects: tuple[Subject, ...]
    names: tuple[str, ...]
    limits: Mapping[str, Any]
    commons: Mapping[str, Mapping[str, _Common]]
    deviations: Mapping[str, Mapping[Hashable, _Deviation]]
    contexts: Mapping[Hashable, _Context]
    first: Mapping[Hashable, Mapping[str, Finding]]
    host_anomalies: bool
    confirms: Mapping[Hashable, Night]

    def finish(self, confirms: Mapping[Hashable, Night]) -> CampaignJudgement:
        state = replace(self, confirms=dict(confirms))
        judgements = [state._judgement(s) for s in self.subjects]
        groups = _campaign_shifts(self.subjects, self.names, self.commons, self.deviations)
        if self.host_anomalies:
            judgements, hosts = _host_anomalies(
                self.subjects, judgements, self.names, self.deviations, self.commons
            )
            groups += hosts
        return CampaignJudgement(tuple(judgements), tuple(groups), state)

    def _judgement(self, subject: Subject) -> Judgement:
        """Final findings: a first-night flag below the metric's own z is only a
        candidate for a confirm run, kept when the confirm run bears it out."""
        ctx = self.contexts[subject.key]
        confirm = self.confirms.get(subject.key)
        run = None if confirm is None else confirm.scaled(ctx.factors) if ctx.factors else confirm
        findings: dict[str, Finding] = {}
        candidates = []
        for m, finding in self.first[subject.key].items():
            threshold = self.limits[m]
            if finding.verdict != "suspicious":
                findings[m] = finding
                continue
            if finding.direction == "worse":
                candidates.append(finding)
            if run is not None:
                window = [ctx.history[i] for i in subject.windows[m]]
                second = assess(
                    m,
                    run,
                    window,
                    previous=finding,
                    threshold=replace(threshold, z_confirm=threshold.z_confirm * RERUN_Z_SCALE),
                    last=ctx.current,
                )
                finding = _with_confirm(finding, second)
            if finding.verdict != "suspicious" or abs(finding.z) >= threshold.z:
                findings[m] = finding
        ordered = tuple(findings[m] for m in self.names if m in findings)
        return Judgement(
            subject.key, subject.label, ordered, ctx.common, confirm is not None, tuple(candidates)
        )


def _with_confirm(first: Finding, second: Finding | None) -> Finding:
    if (
        second is not None
        and second.verdict in ("regression", "improvement")
        and second.direction == first.direction
    ):
        return replace(
            first,
            verdict=second.verdict,
            reason=f"{first.reason.split(';')[0]}; confirmed by a same-night re-run "
            f"({100 * (second.current / second.baseline - 1):+.1f}%)",
        )
    return replace(first, reason=f"{first.reason}; the same-night re-run did not confirm it")


def _campaign_shifts(
    subjects: Sequence[Subject],
    names: Sequence[str],
    commons: Mapping[str, Mapping[str, _Common]],
    deviations: Mapping[str, Mapping[Hashable, _Deviation]],
) -> list[GroupFinding]:
    out = []
    for m in names:
        spec = METRICS[m]
        for group, common in commons.get(m, {}).items():
            if common.mode != "shift":
                continue
            direction = spec.direction(common.tonight)
            moved = tuple(
                s.key
                for s in subjects
                if s.group == group
                and s.key in deviations[m]
                and deviations[m][s.key].tonight * common.tonight > 0
            )
            change = 100.0 * math.expm1(common.tonight)
            out.append(
                GroupFinding(
                    "campaign_shift",
                    m,
                    group,
                    moved,
                    change,
                    direction,
                    f"{len(moved)} of {len(deviations[m])} {group} configurations moved together: "
                    f"common shift {change:+.1f}% (robust z {common.z:+.1f} against the "
                    "campaign's own nights)",
                    common.z,
                )
            )
    return out


def _host_anomalies(
    subjects: Sequence[Subject],
    judgements: Sequence[Judgement],
    names: Sequence[str],
    deviations: Mapping[str, Mapping[Hashable, _Deviation]],
    commons: Mapping[str, Mapping[str, _Common]],
) -> tuple[list[Judgement], list[GroupFinding]]:
    by_key = {j.key: j for j in judgements}
    hosts: dict[str, list[Subject]] = defaultdict(list)
    for s in subjects:
        if s.host is not None:
            hosts[s.host].append(s)
    if len(hosts) < 2:
        return list(judgements), []
    removed: dict[Hashable, set[str]] = defaultdict(set)
    out: list[GroupFinding] = []
    for m in names:
        spec = METRICS[m]
        # a configuration already worse last night is not tonight's host's doing
        ongoing = {
            s.key for s in subjects if m in s.previous and s.previous[m].direction == "worse"
        }
        flagged_by: dict[str, set[Hashable]] = {"weak": set(), "strong": set()}
        for j in judgements:
            if j.key in ongoing:
                continue
            for f in j.findings:
                if f.metric == m and f.direction == "worse":
                    flagged_by["strong"].add(j.key)
            for f in (*j.findings, *j.candidates):
                if f.metric == m and f.direction == "worse":
                    flagged_by["weak"].add(j.key)

        def residual(s: Subject, metric: str = m) -> float | None:
            dev = deviations[metric].get(s.key)
            if dev is None:
                return None
            common = commons.get(metric, {}).get(s.group)
            taken = common.tonight if common is not None and common.mode != "raw" else 0.0
            return dev.tonight - taken

        for host, members in sorted(hosts.items()):
            judged = [s for s in members if residual(s) is not None and s.key not in ongoing]
            flagged = [s for s in judged if s.key in flagged_by["weak"]]
            others = [s for h, ms in hosts.items() if h != host for s in ms]
            if (
                len(flagged) < MIN_HOST_FLAGGED
                or any(spec.direction(residual(s) or 0.0) != "worse" for s in judged)
                or any(s.key in flagged_by["strong"] for s in others)
                or not any(residual(s) is not None for s in others)
            ):
                continue
            changes = [100.0 * math.expm1(residual(s) or 0.0) for s in judged]
            change = median(np.array(changes))
            keys = tuple(s.key for s in judged)
            out.append(
                GroupFinding(
                    "host_anomaly",
                    m,
                    host,
                    keys,
                    change,
                    "worse",
                    f"all {len(judged)} configurations on {host} worse (median {change:+.1f}%, "
                    f"{len(flagged)} flagged), none flagged on the other hosts",
                )
            )
            for key in keys:
                removed[key].add(m)
    kept = [
        replace(
            j,
            findings=tuple(f for f in j.findings if f.metric not in removed[j.key]),
            candidates=tuple(f for f in j.candidates if f.metric not in removed[j.key]),
        )
        if j.key in removed
        else j
        for j in (by_key[s.key] for s in subjects)
    ]
    return kept, out


__all__ = [
    "MIN_COMMON",
    "MIN_HOST_FLAGGED",
    "QUIET_Z",
    "SHIFT_Z",
    "CampaignJudgement",
    "GroupFinding",
    "Judgement",
    "Subject",
    "judge_campaign",
]
