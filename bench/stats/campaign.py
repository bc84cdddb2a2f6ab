"""The gate at campaign level: shared night shifts, bad hosts, same-night confirm runs.

:func:`bench.stats.detect` judges one configuration against its own history.
A nightly campaign runs many configurations of one device class on the same
night, on a few hosts, and that is information the per-configuration gate
throws away.

Why three more pieces
---------------------
A night's shift of one configuration has three parts (the evaluation's noise
model, ``bench.stats.synthetic.CampaignNoise``): a part every configuration
of the campaign shares (the cluster's temperature, a shared filesystem, a
firmware state), a part the runs on one host share that night (the node's
clocks, thermals, neighbours), and a part of the run alone (its process:
allocator layout, graph compilation, a preemption). The per-configuration
gate sees their sum, and must wait for a second night before it believes a
step.

1. **Common mode, in two levels.** Within a group of comparable
   configurations (the device class), the median of their deviations from
   their own baselines is the night's campaign shift; the median of what is
   left among the runs of one host is that host's shift. On the baseline
   nights both are noise, and taking them out of every night leaves each
   configuration's own deviation, with a smaller spread. Tonight's shifts are
   judged against their own history: inside their usual range
   (|z| < :data:`QUIET_Z`) they are taken out; large and notable (|z| >=
   :data:`SHIFT_Z`, at least the minimum effect, and at least
   :data:`SHIFT_SHARE` of the configurations moved with it) they are real:
   one ``campaign_shift`` verdict for the group, or one ``host_anomaly``
   naming the host when every configuration on it got worse and the other
   hosts did not; each configuration is still judged on its own deviation,
   so one that moved differently is still flagged and nothing is hidden.
   A loud shift that most configurations share but that stays below the
   minimum effect is taken out like noise; a loud one that only some
   share (a change to some configurations, or one host) takes nothing out:
   those configurations are judged raw, as before, unless one host explains
   it. Medians ignore a minority that moved: one configuration's own
   regression does not move them. A campaign level needs :data:`MIN_COMMON`
   configurations, a host level :data:`MIN_HOST` on that host.
2. **Confirm run.** A configuration worse tonight by at least
   :data:`RERUN_Z_SCALE` of the metric's z is re-run once in the same
   campaign, on whichever worker takes it. The re-run shares the campaign's
   shift, shares a host's only if it lands there (each is taken out as for
   the campaign's runs), and draws a fresh run part. It is judged exactly as
   a second night would be: against the same baseline, with the campaign's
   run as "last night" (``z_confirm`` scaled the same way when the re-run ran
   on another host or its host's shift was taken out, in full otherwise; the
   minimum effect on the mean change of both runs). Confirmed, the finding is a
   ``regression`` on the first night; a flag below the metric's own z that
   the re-run does not bear out leaves no row.

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
from bench.stats.thresholds import Threshold, parse_thresholds
from bench.stats.types import KEY_METRICS, METRICS, Direction, Finding, Night

#: Configurations of a group needed to estimate a night's campaign shift.
MIN_COMMON = 4
#: Runs on one host needed to estimate that host's shift for a night.
MIN_HOST = 3
#: A shift within this many of its own spreads is noise and is taken out.
QUIET_Z = 2.0
#: A shift of at least this many spreads (and the minimum effect) is real ...
SHIFT_Z = 3.0
#: ... when at least this share of the configurations moved with it, by half of it or
#: more (half of them moving is a change to some configurations, not to all).
SHIFT_SHARE = 0.75
#: With a confirm run, two runs share the burden of proof: a run is worth confirming
#: from this fraction of the metric's z on, and the confirm run needs this fraction of
#: ``z_confirm`` (chosen on the evaluation's seed 7, reported on seed 0).
RERUN_Z_SCALE = 0.8

GroupVerdict = Literal["campaign_shift", "host_anomaly"]
Mode = Literal["adjust", "shift", "raw"]


@dataclass(frozen=True)
class Subject:
    """One configuration's run in tonight's campaign, and what it is judged against.

    ``history`` are the configuration's earlier ok runs, oldest first, with
    the campaign of each in ``campaigns`` (keys that sort in time order) and
    its host in ``history_hosts``; ``windows`` gives, per metric, the indices
    of ``history`` forming that metric's baseline
    (:func:`bench.stats.baseline_window`). ``group`` holds configurations that
    share a night's conditions (the device class); ``previous`` maps a metric
    to last night's finding; ``confirm`` is a same-night re-run of this
    configuration (on ``confirm_host``), if one ran.
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
    history_hosts: Sequence[str | None] = ()
    confirm: Night | None = None
    confirm_host: str | None = None


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
    #: metric -> the shift taken out of tonight's run (log scale: campaign + host)
    common: Mapping[str, float] = field(default_factory=dict)
    confirmed: bool = False  # a confirm run was judged with it
    #: Worse tonight by at least RERUN_Z_SCALE x z: what a confirm run would settle.
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

    def with_confirms(
        self, confirms: Mapping[Hashable, Night], hosts: Mapping[Hashable, str | None] | None = None
    ) -> CampaignJudgement:
        """The same campaign judged again with these confirm runs (key -> run, and
        the host each ran on); only the confirmed findings are recomputed."""
        if self._state is None:
            raise ValueError("this judgement cannot take confirm runs")
        return self._state.finish(
            {**self._state.confirms, **confirms}, {**self._state.confirm_hosts, **(hosts or {})}
        )


# -- deviations and the two-level common mode -----------------------------------------------


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


@dataclass(frozen=True)
class _Deviation:
    """A subject's deviations from its own baseline level, for one metric."""

    tonight: float
    baseline: Mapping[Any, tuple[float, str | None]]  # campaign -> (deviation, host)


def _deviation(subject: Subject, metric: str) -> _Deviation | None:
    window = subject.windows.get(metric, ())
    if len(window) < MIN_BASELINE:
        return None
    hosts = list(subject.history_hosts) or [None] * len(subject.history)
    locs = {subject.campaigns[i]: (_location(subject.history[i], metric), hosts[i]) for i in window}
    known = {c: (v, h) for c, (v, h) in locs.items() if v is not None}
    now = _location(subject.current, metric)
    if now is None or len(known) < MIN_BASELINE:
        return None
    level = median(np.array([v for v, _ in known.values()]))
    return _Deviation(now - level, {c: (v - level, h) for c, (v, h) in known.items()})


@dataclass(frozen=True)
class _Shift:
    """A common shift (of a group, or of a host): per campaign, tonight, the call on it."""

    per_campaign: Mapping[Any, float]
    tonight: float
    z: float
    spread: float
    mode: Mode


def _shift(
    per_campaign: Mapping[Any, float],
    tonight: Sequence[float],
    min_effect: float,
    k: int,
    minimum: int,
) -> _Shift | None:
    """Tonight's median of ``tonight`` judged against the history ``per_campaign``."""
    history = np.array([per_campaign[c] for c in sorted(per_campaign)][-k:])
    if len(tonight) < minimum or history.size < MIN_BASELINE:
        return None
    now = median(np.array(tonight))
    level, spread = median_sd(history)
    spread = max(spread, SPREAD_FLOOR) * median_inflation(history.size)
    shift = now - level
    z = shift / spread
    mode: Mode = "adjust"
    if abs(z) >= QUIET_Z:
        moved = sum(d * shift > 0 and abs(d) >= abs(shift) / 2 for d in tonight)
        if moved < SHIFT_SHARE * len(tonight):
            mode = "raw"  # some moved, some did not: judge each on its own
        elif abs(z) >= SHIFT_Z and abs(math.expm1(shift)) >= min_effect - EFFECT_BAND * spread:
            mode = "shift"
        # else: all moved together, by less than matters: taken out like noise
    return _Shift(per_campaign, now, z, spread, mode)


@dataclass(frozen=True)
class _Modes:
    """One metric's common mode in one group: the campaign level and each host's."""

    campaign: _Shift
    hosts: Mapping[str, _Shift]  # hosts with a judged shift tonight
    host_history: Mapping[tuple[Any, str], float]  # (campaign, host) -> that night's host shift


def _modes(
    members: Sequence[Subject], devs: Mapping[Hashable, _Deviation], min_effect: float, k: int
) -> _Modes | None:
    by_campaign: dict[Any, list[float]] = defaultdict(list)
    for dev in devs.values():
        for campaign, (value, _) in dev.baseline.items():
            by_campaign[campaign].append(value)
    per_campaign = {c: median(np.array(v)) for c, v in by_campaign.items() if len(v) >= MIN_COMMON}
    campaign = _shift(per_campaign, [d.tonight for d in devs.values()], min_effect, k, MIN_COMMON)
    if campaign is None:
        return None
    if campaign.mode != "raw":
        return _host_modes(members, devs, campaign, min_effect, k)
    # Loud but not a campaign-wide shift: is one host the cause? Judge the campaign
    # without each host in turn; the quietest rest (below SHIFT_Z) whose left-out host
    # is explained (its shift within its usual range, or real) splits tonight into
    # campaign + host.
    best: tuple[float, _Modes] | None = None
    for host in sorted({s.host for s in members if s.host is not None}):
        rest = [devs[s.key].tonight for s in members if s.key in devs and s.host != host]
        without = _shift(per_campaign, rest, min_effect, k, MIN_HOST)
        if without is None or abs(without.z) >= SHIFT_Z:
            continue
        without = replace(without, mode="adjust")
        modes = _host_modes(members, devs, without, min_effect, k)
        explained = host in modes.hosts and modes.hosts[host].mode != "raw"
        if explained and (best is None or abs(without.z) < best[0]):
            best = (abs(without.z), modes)
    return best[1] if best is not None else _Modes(campaign, {}, {})


def _host_modes(
    members: Sequence[Subject], devs: Mapping[Hashable, _Deviation], campaign: _Shift,
    min_effect: float, k: int,
) -> _Modes:  # fmt: skip
    """Each host's shift tonight, what is left on it once the campaign's is out."""
    by_host: dict[tuple[Any, str], list[float]] = defaultdict(list)
    for dev in devs.values():
        for c, (value, host) in dev.baseline.items():
            if host is not None and c in campaign.per_campaign:
                by_host[(c, host)].append(value - campaign.per_campaign[c])
    host_history = {key: median(np.array(v)) for key, v in by_host.items() if len(v) >= MIN_HOST}
    tonight: dict[str, list[float]] = defaultdict(list)
    for s in members:
        if s.host is not None and s.key in devs:
            tonight[s.host].append(devs[s.key].tonight - campaign.tonight)
    hosts = {}
    for host, residuals in tonight.items():
        history = {c: v for (c, h), v in host_history.items() if h == host}
        judged = _shift(history, residuals, min_effect, k, MIN_HOST)
        if judged is not None:
            hosts[host] = judged
    return _Modes(campaign, hosts, host_history)


# -- the campaign -----------------------------------------------------------------------------


def judge_campaign(
    subjects: Sequence[Subject],
    *,
    thresholds: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    common_mode: bool = True,
) -> CampaignJudgement:
    """Every configuration's verdicts tonight, plus campaign shifts and host anomalies.

    ``common_mode=False`` judges each configuration alone (the evaluation
    measures what the common mode buys); a subject with a ``confirm`` run has
    its candidates judged together with it, and
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
    modes: dict[str, dict[str, _Modes]] = defaultdict(dict)  # metric -> group -> modes
    if common_mode:
        groups_of: dict[str, list[Subject]] = defaultdict(list)
        for subject in subjects:
            groups_of[subject.group].append(subject)
        for m in names:
            for group, members in groups_of.items():
                devs = {s.key: deviations[m][s.key] for s in members if s.key in deviations[m]}
                if len(devs) >= MIN_COMMON:
                    found = _modes(members, devs, limits[m].min_effect, k)
                    if found is not None:
                        modes[m][group] = found
    select = {m: replace(limits[m], z=limits[m].z * RERUN_Z_SCALE) for m in names}
    contexts = {s.key: _context(s, names, modes) for s in subjects}
    state = _State(
        subjects=tuple(subjects),
        names=tuple(names),
        limits=limits,
        groups=tuple(_group_findings(subjects, names, modes, deviations)),
        contexts=contexts,
        first={s.key: _first_findings(s, contexts[s.key], names, select) for s in subjects},
        modes=modes,
        confirms={s.key: s.confirm for s in subjects if s.confirm is not None},
        confirm_hosts={s.key: s.confirm_host for s in subjects if s.confirm is not None},
    )
    return state.finish(state.confirms, state.confirm_hosts)


@dataclass(frozen=True)
class _Context:
    """A subject's nights with the common shifts taken out, as its findings see them."""

    current: Night
    history: Sequence[Night]
    factors: Mapping[str, float]  # metric or distribution -> factor of the campaign level tonight
    common: Mapping[str, float]  # metric -> log shift taken out tonight (campaign + host)


def _keys(metric: str) -> list[tuple[str, float]]:
    """What a metric's common shift scales, with the sign: its own value, then the
    per-request values its evidence comes from (a proxy's move against it: slower
    requests, lower throughput)."""
    spec = METRICS[metric]
    keys = [(metric, -1.0)]
    if spec.distribution is not None:
        keys.append((spec.distribution, -1.0))
    elif spec.proxy is not None:
        keys.append((spec.proxy, 1.0))
    return keys


def _context(
    subject: Subject, names: Sequence[str], modes: Mapping[str, Mapping[str, _Modes]]
) -> _Context:
    tonight: dict[str, float] = {}
    campaign_only: dict[str, float] = {}
    history: list[dict[str, float]] = [{} for _ in subject.history]
    hosts = list(subject.history_hosts) or [None] * len(subject.history)
    taken: dict[str, float] = {}
    for m in names:
        found = modes.get(m, {}).get(subject.group)
        if found is None or found.campaign.mode == "raw":
            continue
        host = found.hosts.get(subject.host) if subject.host is not None else None
        by_host = host is not None and host.mode != "raw"
        taken[m] = found.campaign.tonight + (host.tonight if by_host and host else 0.0)
        shifts = []
        for i, c in enumerate(subject.campaigns):
            shift = found.campaign.per_campaign.get(c)
            ran_on = hosts[i]
            if shift is not None and by_host and ran_on is not None:
                shift += found.host_history.get((c, ran_on), 0.0)
            shifts.append(shift)
        for key, sign in _keys(m):
            if key in tonight:
                continue
            tonight[key] = math.exp(sign * taken[m])
            campaign_only[key] = math.exp(sign * found.campaign.tonight)
            for i, shift in enumerate(shifts):
                if shift is not None:
                    history[i][key] = math.exp(sign * shift)
    return _Context(
        current=subject.current.scaled(tonight) if tonight else subject.current,
        history=[n.scaled(f) if f else n for n, f in zip(subject.history, history, strict=True)],
        factors=campaign_only,
        common=taken,
    )


def _first_findings(
    subject: Subject, ctx: _Context, names: Sequence[str], limits: Mapping[str, Threshold]
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
    limits: Mapping[str, Threshold]
    groups: tuple[GroupFinding, ...]
    contexts: Mapping[Hashable, _Context]
    first: Mapping[Hashable, Mapping[str, Finding]]
    modes: Mapping[str, Mapping[str, _Modes]]
    confirms: Mapping[Hashable, Night]
    confirm_hosts: Mapping[Hashable, str | None]

    def finish(
        self, confirms: Mapping[Hashable, Night], hosts: Mapping[Hashable, str | None]
    ) -> CampaignJudgement:
        state = replace(self, confirms=dict(confirms), confirm_hosts=dict(hosts))
        judgements = tuple(state._judgement(s) for s in self.subjects)
        return CampaignJudgement(judgements, self.groups, state)

    def _confirm_factors(self, subject: Subject) -> dict[str, float]:
        """What to take out of a confirm run: the campaign's shift, and its own host's."""
        factors = dict(self.contexts[subject.key].factors)
        host = self.confirm_hosts.get(subject.key)
        done: set[str] = set()  # a key shared by two metrics moves once, as in _context
        for m in self.names:
            found = self.modes.get(m, {}).get(subject.group)
            if found is None or host is None or host not in found.hosts:
                continue
            if found.hosts[host].mode == "raw":
                continue
            for key, sign in _keys(m):
                if key in factors and key not in done:
                    factors[key] *= math.exp(sign * found.hosts[host].tonight)
                    done.add(key)
        return factors

    def _independent(self, subject: Subject, metric: str) -> bool:
        """Whether the confirm run shares nothing with the campaign's run but what was
        taken out: it ran on another host, or on the same one with that host's shift
        estimated. Otherwise a slow node would confirm itself: full z_confirm then."""
        host = self.confirm_hosts.get(subject.key)
        if host is None or subject.host is None:
            return False
        if host != subject.host:
            return True
        found = self.modes.get(metric, {}).get(subject.group)
        return found is not None and host in found.hosts and found.hosts[host].mode != "raw"

    def _judgement(self, subject: Subject) -> Judgement:
        """Final findings: a first-night flag below the metric's own z is only a
        candidate for a confirm run, kept when the confirm run bears it out."""
        ctx = self.contexts[subject.key]
        confirm = self.confirms.get(subject.key)
        run = None if confirm is None else confirm.scaled(self._confirm_factors(subject))
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
                scale = RERUN_Z_SCALE if self._independent(subject, m) else 1.0
                second = assess(
                    m,
                    run,
                    window,
                    previous=finding,
                    threshold=replace(threshold, z_confirm=threshold.z_confirm * scale),
                    last=ctx.current,
                )
                finding = _with_confirm(finding, second)
            if finding.verdict != "suspicious" or abs(finding.z) >= threshold.z:
                findings[m] = finding
        ordered = tuple(findings[m] for m in self.names if m in findings)
        return Judgement(
            subject.key, subject.label, ordered, ctx.common, confirm is not None, tuple(candidates)
        )


def _change(finding: Finding) -> float:
    """The change a finding rests on: the per-request shift, else the nightly value's."""
    return finding.shift_pct if finding.shift_pct is not None else finding.change_pct


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
            f"({_change(second):+.1f}%)",
        )
    return replace(first, reason=f"{first.reason}; the same-night re-run did not confirm it")


def _group_findings(
    subjects: Sequence[Subject],
    names: Sequence[str],
    modes: Mapping[str, Mapping[str, _Modes]],
    deviations: Mapping[str, Mapping[Hashable, _Deviation]],
) -> list[GroupFinding]:
    """``campaign_shift`` per notable group shift; ``host_anomaly`` per notable,
    worsening host shift whose every configuration got worse, alone among the hosts."""
    out = []
    for m in names:
        spec = METRICS[m]
        for group, found in modes.get(m, {}).items():
            members = [s for s in subjects if s.group == group and s.key in deviations[m]]
            shift = found.campaign
            if shift.mode == "shift":
                moved = tuple(
                    s.key for s in members if deviations[m][s.key].tonight * shift.tonight > 0
                )
                change = 100.0 * math.expm1(shift.tonight)
                out.append(
                    GroupFinding(
                        "campaign_shift",
                        m,
                        group,
                        moved,
                        change,
                        spec.direction(shift.tonight),
                        f"{len(moved)} of {len(members)} {group} configurations moved together: "
                        f"common shift {change:+.1f}% (robust z {shift.z:+.1f} against the "
                        "campaign's own nights)",
                        shift.z,
                    )
                )
            bad = {h: s for h, s in found.hosts.items() if s.mode == "shift"}
            for host, hs in sorted(bad.items()):
                on_host = [s for s in members if s.host == host]
                residuals = [deviations[m][s.key].tonight - shift.tonight for s in on_host]
                elsewhere = [o for h, o in bad.items() if h != host and o.tonight * hs.tonight > 0]
                if (
                    spec.direction(hs.tonight) != "worse"
                    or elsewhere
                    or any(spec.direction(r) != "worse" for r in residuals)
                ):
                    continue
                change = 100.0 * math.expm1(hs.tonight)
                out.append(
                    GroupFinding(
                        "host_anomaly",
                        m,
                        host,
                        tuple(s.key for s in on_host),
                        change,
                        "worse",
                        f"all {len(on_host)} configurations on {host} worse (host shift "
                        f"{change:+.1f}%, robust z {hs.z:+.1f}), none of the other hosts",
                        hs.z,
                    )
                )
    return out


__all__ = [
    "MIN_COMMON",
    "MIN_HOST",
    "QUIET_Z",
    "RERUN_Z_SCALE",
    "SHIFT_SHARE",
    "SHIFT_Z",
    "CampaignJudgement",
    "GroupFinding",
    "Judgement",
    "Subject",
    "judge_campaign",
]
