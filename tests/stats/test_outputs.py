"""Output drift, agreement and the non-determinism rule, on hand-made outputs."""

from __future__ import annotations

import pytest

from bench.core.records import output_digest
from bench.stats.outputs import (
    Output,
    OutputNight,
    agreement,
    diff_outputs,
    first_divergence,
    nondeterministic,
)


def out(index: int, ids: tuple[int, ...] | None, *, keep: bool = True) -> Output:
    """A stored output; ``keep=False`` is a --no-outputs row (digest only)."""
    return Output(index, output_digest(ids), ids if keep else None)


def test_first_divergence() -> None:
    assert first_divergence((1, 2, 3), (1, 2, 4)) == 2
    assert first_divergence((1, 2, 3), (9, 2, 3)) == 0
    assert first_divergence((1, 2), (1, 2, 3)) == 2  # a prefix: parts at the shorter's end
    assert first_divergence((1, 2, 3), (1, 2, 3)) == 3


def test_diff_counts_changed_requests_and_the_first_position() -> None:
    before = [out(0, (1, 2, 3, 4)), out(1, (5, 6, 7, 8)), out(2, (9, 9, 9, 9))]
    tonight = [out(0, (1, 2, 3, 4)), out(1, (5, 6, 0, 0)), out(2, (9, 9, 9, 1))]
    diff = diff_outputs(before, tonight)
    assert (diff.compared, diff.changed, diff.changed_requests) == (3, 2, (1, 2))
    assert (diff.first_request, diff.first_position) == (1, 2)
    assert diff.identical_fraction == pytest.approx(1 / 3)
    same = diff_outputs(before, before)
    assert (same.changed, same.first_request, same.first_position) == (0, None, None)


def test_diff_without_ids_still_counts_and_pairs_by_index() -> None:
    before = [out(0, (1, 2)), out(1, (3, 4)), out(7, (5, 6))]
    tonight = [out(1, (3, 0), keep=False), out(0, (1, 2), keep=False), Output(7, None)]
    diff = diff_outputs(before, tonight)
    # request 7 failed tonight (no digest): not compared
    assert (diff.compared, diff.changed_requests, diff.first_position) == (2, (1,), None)


def test_agreement_exact_and_prefix() -> None:
    ref = [out(0, (1, 2, 3, 4)), out(1, (1, 1, 1, 1)), out(2, (7, 7, 7, 7)), out(3, (5, 5))]
    low = [out(0, (1, 2, 3, 4)), out(1, (1, 1, 2, 2)), out(2, (0, 7, 7, 7)), out(3, (5, 5, 5))]
    a = agreement(ref, low)
    assert a.compared == 4 and a.exact_match == 0.25
    # 1.0, 2/4, 0/4, and 2/3 (an output longer than the reference's parts at its end)
    assert a.prefix_match == (1.0 + 0.5 + 0.0 + 2 / 3) / 4
    itself = agreement(ref, ref)
    assert (itself.exact_match, itself.prefix_match) == (1.0, 1.0)
    assert agreement(ref, []).exact_match is None


def test_agreement_without_ids_has_exact_match_only() -> None:
    ref = [out(0, (1, 2)), out(1, (3, 4))]
    same = [out(0, (1, 2), keep=False), out(1, (3, 4), keep=False)]
    assert agreement(ref, same).prefix_match == 1.0  # identical digests need no ids
    differs = [out(0, (1, 2), keep=False), out(1, (3, 0), keep=False)]
    a = agreement(ref, differs)
    assert (a.exact_match, a.prefix_match) == (0.5, None)


def nights(*pairs: tuple[str, str]) -> list[OutputNight]:
    return [OutputNight(sha, env) for sha, env in pairs]


def test_two_consecutive_changes_in_one_environment_mark_nondeterminism() -> None:
    # the first change alone is news
    assert not nondeterministic(nights(("a", "e1"), ("a", "e1"), ("b", "e1")))
    # a second change on the next night, nothing else changed: marked
    assert nondeterministic(nights(("a", "e1"), ("b", "e1"), ("c", "e1")))
    # ... and it stays marked while the environment stays (an identical night between)
    assert nondeterministic(nights(("a", "e1"), ("b", "e1"), ("c", "e1"), ("c", "e1"), ("d", "e1")))
    # changes that are not consecutive: two separate events, each news
    assert not nondeterministic(nights(("a", "e1"), ("b", "e1"), ("b", "e1"), ("c", "e1")))


def test_an_environment_change_clears_the_mark() -> None:
    flaky = [("a", "e1"), ("b", "e1"), ("c", "e1")]
    # a new driver, image or weights revision: tonight's change is alarmed again
    assert not nondeterministic(nights(*flaky, ("d", "e2")))
    assert not nondeterministic(nights(*flaky, ("d", "e2"), ("e", "e2")))
    assert nondeterministic(nights(*flaky, ("d", "e2"), ("e", "e2"), ("f", "e2")))
    # a change that came with an environment change is not evidence of flakiness
    assert not nondeterministic(nights(("a", "e1"), ("b", "e2"), ("c", "e2")))


def test_runs_without_digests_break_the_chain() -> None:
    assert not nondeterministic(nights(("a", "e1"), (None, "e1"), ("c", "e1")))  # type: ignore[arg-type]
    assert not nondeterministic([])
