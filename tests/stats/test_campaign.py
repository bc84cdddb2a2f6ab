"""The campaign-level gate on hand-built campaigns: common mode, campaign shifts, bad hosts, confirm runs."""

from __future__ import annotations

import numpy as np
import pytest

from bench.stats import Night
from bench.stats.campaign import RERUN_Z_SCALE, Subject, judge_campaign
from bench.stats.synthetic import E2E_OVER_TTFT

K = 14
METRICS = ("ttft_p50_ms", "output_tokens_per_s")


def night(rng: np.random.Generator, level: float, n: int = 100, cv: float = 0.02) -> Night:
    ttft = level * rng.lognormal(0.0, cv, n)
    e2e = ttft * E2E_OVER_TTFT
    summary = {
        "ttft_p50_ms": float(np.median(ttft)),
        "output_tokens_per_s": n * 128 / (e2e.sum() / 1e3),
    }
    return Night(summary=summary, requests={"ttft": ttft, "e2e": e2e})


def campaign(
    seed: int,
    tonight: list[float],
    *,
    configs: int = 8,
    common_sd: float = 0.005,
    own_sd: float = 0.005,
    hosts: list[str] | None = None,
    host_sd: float = 0.0,
    confirm: dict[int, float] | None = None,
) -> list[Subject]:
    """``configs`` configurations with K baseline nights (a shared night effect of
    ``common_sd`` plus their own ``own_sd``, and ``host_sd`` per host when
    ``hosts`` places them) and tonight's level factor each."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0, common_sd, K)
    host_effect = {h: rng.normal(0.0, host_sd, K) for h in sorted(set(hosts or []))}
    subjects = []
    for c in range(configs):
        base = 50.0 * (c + 1)
        shared = common + (host_effect[hosts[c]] if hosts else 0.0)
        history = [night(rng, base * np.exp(shared[t] + rng.normal(0.0, own_sd))) for t in range(K)]
        subjects.append(
            Subject(
                key=c,
                label=f"m/bf16/bs{c + 1}",
                group="hpu",
                host=None if hosts is None else hosts[c],
                current=night(rng, base * tonight[c]),
                history=history,
                campaigns=list(range(K)),
                windows={m: list(range(K)) for m in METRICS},
                history_hosts=[] if hosts is None else [hosts[c]] * K,
                confirm=None
                if confirm is None or c not in confirm
                else night(rng, base * confirm[c]),
            )
        )
    return subjects


def verdicts(judgement: object, key: int) -> dict[str, str]:
    (j,) = [j for j in judgement.judgements if j.key == key]  # type: ignore[attr-defined]
    return {f.metric: f.verdict for f in j.findings}


def test_a_quiet_campaign_gives_nothing() -> None:
    out = judge_campaign(campaign(1, [1.0] * 8), metrics=METRICS)
    assert all(not j.findings for j in out.judgements) and out.groups == ()
    assert out.to_confirm() == []


def test_one_configuration_slower_is_its_own_finding_and_worth_confirming() -> None:
    out = judge_campaign(campaign(2, [1.0] * 7 + [1.10]), metrics=METRICS)
    assert verdicts(out, 7) == {"ttft_p50_ms": "suspicious", "output_tokens_per_s": "suspicious"}
    assert out.to_confirm() == [7] and out.groups == ()


def test_a_confirm_run_that_agrees_makes_it_a_regression_on_the_first_night() -> None:
    first = judge_campaign(campaign(2, [1.0] * 7 + [1.10]), metrics=METRICS)
    rerun = night(np.random.default_rng(99), 50.0 * 8 * 1.10)
    confirmed = first.with_confirms({7: rerun})
    assert verdicts(confirmed, 7) == {
        "ttft_p50_ms": "regression",
        "output_tokens_per_s": "regression",
    }
    (j,) = [j for j in confirmed.judgements if j.key == 7]
    assert j.confirmed and j.to_confirm == ()
    assert "confirmed by a same-night re-run" in j.findings[0].reason
    # the same through Subject.confirm, as the database path passes it
    direct = judge_campaign(campaign(2, [1.0] * 7 + [1.10], confirm={7: 1.10}), metrics=METRICS)
    assert verdicts(direct, 7)["ttft_p50_ms"] == "regression"


def test_a_confirm_run_at_the_usual_level_clears_it() -> None:
    out = judge_campaign(campaign(2, [1.0] * 7 + [1.10], confirm={7: 1.0}), metrics=METRICS)
    found = {f.metric: f for j in out.judgements if j.key == 7 for f in j.findings}
    assert all(f.verdict == "suspicious" for f in found.values())  # shown, not alerted
    assert all("did not confirm" in f.reason for f in found.values())


def test_a_candidate_below_the_full_z_is_kept_only_if_confirmed_elsewhere() -> None:
    """A 6% step on a config whose baseline is noisy: z between 0.75 z and z. Confirmed
    by a re-run on another host, the two runs share the burden of proof; on the same
    host, whose shift could not be estimated (two runs there), the re-run needs the full z."""
    hosts = ["node-1", "node-2"] * 3 + ["node-1", "node-3"]
    subjects = campaign(40, [1.0] * 7 + [1.06], own_sd=0.02, hosts=hosts)
    out = judge_campaign(subjects, metrics=("ttft_p50_ms",))
    (j,) = [j for j in out.judgements if j.key == 7]
    assert j.findings == () and j.to_confirm == ("ttft_p50_ms",)  # not a row, but worth a re-run
    assert RERUN_Z_SCALE * 2.0 <= abs(j.candidates[0].z) < 2.0
    rerun = night(np.random.default_rng(1), 50.0 * 8 * 1.06)
    elsewhere = out.with_confirms({7: rerun}, {7: "node-1"})
    assert verdicts(elsewhere, 7) == {"ttft_p50_ms": "regression"}
    same = out.with_confirms({7: rerun}, {7: "node-3"})
    assert verdicts(same, 7) == {}  # not confirmed at the full z: no row


def test_common_mode_sees_a_step_that_the_shared_night_noise_hides() -> None:
    """Nights move together by 3% (sd) and tonight the whole campaign is 3% fast;
    one configuration stepped 7% slower: 4% raw, well inside its 3% night noise."""
    levels = [0.97] * 7 + [0.97 * 1.07]
    subjects = campaign(3, levels, common_sd=0.03, own_sd=0.003)
    raw = judge_campaign(subjects, metrics=METRICS, common_mode=False)
    assert verdicts(raw, 7) == {}
    common = judge_campaign(subjects, metrics=METRICS)
    assert verdicts(common, 7)["ttft_p50_ms"] == "suspicious"
    (j,) = [j for j in common.judgements if j.key == 7]
    assert j.common["ttft_p50_ms"] == pytest.approx(np.log(0.97), abs=0.01)
    assert all(not verdicts(common, c) for c in range(7))
    assert common.groups == ()  # a 3% common move is within the campaign's usual range


def test_a_campaign_wide_step_is_one_campaign_shift_never_hidden() -> None:
    out = judge_campaign(campaign(4, [1.10] * 8), metrics=METRICS)
    shifts = {g.metric: g for g in out.groups if g.verdict == "campaign_shift"}
    assert set(shifts) == set(METRICS)
    ttft = shifts["ttft_p50_ms"]
    assert ttft.scope == "hpu" and ttft.keys == tuple(range(8)) and ttft.direction == "worse"
    assert 8 < ttft.change_pct < 12
    tput = shifts["output_tokens_per_s"]
    assert tput.direction == "worse" and tput.change_pct < -7  # throughput fell with it
    # each configuration judged on its deviation from the shift: nothing of its own
    assert all(not j.findings for j in out.judgements)


def test_a_campaign_shift_keeps_the_one_configuration_that_moved_differently() -> None:
    out = judge_campaign(campaign(5, [1.10] * 7 + [1.25]), metrics=("ttft_p50_ms",))
    assert [g.verdict for g in out.groups] == ["campaign_shift"]
    assert verdicts(out, 7) == {"ttft_p50_ms": "suspicious"}  # 25% against the campaign's 10%


def test_half_the_campaign_moving_is_not_a_campaign_shift() -> None:
    out = judge_campaign(campaign(6, [1.0] * 4 + [1.10] * 4), metrics=("ttft_p50_ms",))
    assert out.groups == ()
    assert [c for c in range(8) if verdicts(out, c)] == [4, 5, 6, 7]  # judged raw: each seen


def test_a_bad_host_is_one_host_anomaly_instead_of_four_findings() -> None:
    hosts = ["node-1", "node-2"] * 4
    levels = [1.0 if h == "node-1" else 1.12 for h in hosts]
    out = judge_campaign(campaign(7, levels, hosts=hosts), metrics=METRICS)
    anomalies = [g for g in out.groups if g.verdict == "host_anomaly"]
    assert {(g.metric, g.scope) for g in anomalies} == {(m, "node-2") for m in METRICS}
    assert anomalies[0].keys == (1, 3, 5, 7) and 9 < anomalies[0].change_pct < 15
    # the host's shift is taken out: nothing left to flag or to re-run on either host
    assert all(not j.findings and not j.candidates for j in out.judgements)
    assert out.to_confirm() == []


def test_a_host_level_shift_within_its_usual_range_is_taken_out() -> None:
    """Hosts wobble by 2% (sd) night to night; tonight node-2 is 2% slow and one of
    its configurations has an 8% step of its own: 10% raw, 8% once the host's 2% is out."""
    hosts = ["node-1", "node-2"] * 4
    levels = [1.0, 1.02, 1.0, 1.02, 1.0, 1.02, 1.0, 1.02 * 1.08]
    out = judge_campaign(
        campaign(12, levels, hosts=hosts, host_sd=0.02, own_sd=0.003), metrics=METRICS
    )
    assert [g for g in out.groups if g.verdict == "host_anomaly"] == []
    (j,) = [j for j in out.judgements if j.key == 7]
    assert j.common["ttft_p50_ms"] == pytest.approx(np.log(1.02), abs=0.012)
    assert {f.metric for f in (*j.findings, *j.candidates)} == set(METRICS)
    assert all(not verdicts(out, c) for c in range(7))


def test_a_regression_on_both_hosts_is_not_blamed_on_one() -> None:
    hosts = ["node-1", "node-2"] * 4
    levels = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.12, 1.12]  # two configs, one on each host
    out = judge_campaign(campaign(8, levels, hosts=hosts), metrics=("ttft_p50_ms",))
    assert out.groups == ()
    assert verdicts(out, 6) == verdicts(out, 7) == {"ttft_p50_ms": "suspicious"}


def test_too_few_configurations_for_a_common_mode_judge_raw() -> None:
    subjects = campaign(9, [1.10, 1.10, 1.10], configs=3)
    out = judge_campaign(subjects, metrics=("ttft_p50_ms",))
    assert out.groups == () and all(
        verdicts(out, c) == {"ttft_p50_ms": "suspicious"} for c in range(3)
    )
