"""What runs generated, compared: output drift, agreement, non-determinism.

Pure functions over plain data; the gate (:mod:`bench.outputs`) feeds them
from the results DB. Requests are paired by ``request_index``: runs of one
configuration share their prompts (the fingerprint holds the prompt set and
the request count), and configurations that differ only in precision or
batch size get the same prompt at the same index (``plan_requests`` cycles
the set the same way).

Why digests first
-----------------
Greedy decoding makes a run's output a function of the weights, the
arithmetic and the prompts. Nights of one configuration should therefore
produce identical tokens, and comparing one 32-byte digest per request says
whether they did. Token ids are read only to say *where* two outputs part
(the first differing position), which is what an engineer needs to tell a
late, harmless tie-break flip from a first-token change.

Agreement
---------
Against the same configuration at the reference precision:

* ``exact_match``: the fraction of requests whose outputs are identical;
* ``prefix_match``: the mean, over requests, of the fraction of tokens
  before the first divergence, divided by the longer of the two outputs, so
  an output that stops early scores below 1. It needs both runs' ids for
  every request that differs (a run stored with ``--no-outputs`` keeps only
  digests), else it is unknown.

Both are 1.0 for the reference itself. Greedy decoding at a lower precision
typically follows the reference for a while and then flips at a near-tie;
from there on the continuations are unrelated, so the prefix is the
informative part and the tail is not scored.

Non-determinism
---------------
Some accelerators (reduction order under atomics, graph recompilation) do
not reproduce bits run to run. Such a configuration would raise an
``output_changed`` every night. The rule: outputs that changed on two
consecutive nights while nothing else changed (the same environment
fingerprint, which includes the model's weights revision, on all three
nights) mark the configuration output-nondeterministic; it stays marked,
and its changes are shown but not alarmed, as long as the environment
stays the same. The first change is alarmed (one night cannot tell a flaky
card from a real change); a new environment (driver, image, weights, host)
clears the mark, so a real change after an upgrade is alarmed again.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    """What one request generated, as stored: its digest and, when kept, its ids."""

    index: int
    sha: str | None
    ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class OutputDiff:
    """How tonight's outputs differ from a baseline run's.

    ``first_request`` is the lowest request index whose output changed and
    ``first_position`` the token at which it did (None when either run kept
    no ids); ``changed_requests`` lists every changed index.
    """

    compared: int
    changed_requests: tuple[int, ...]
    first_position: int | None

    @property
    def changed(self) -> int:
        return len(self.changed_requests)

    @property
    def first_request(self) -> int | None:
        return self.changed_requests[0] if self.changed_requests else None

    @property
    def identical_fraction(self) -> float | None:
        return None if not self.compared else 1.0 - self.changed / self.compared


@dataclass(frozen=True)
class ChangedText:
    """One request's change between two runs as text (what the report shows):
    ``common`` ends where the runs part (``position``, the token; None for an
    endpoint's text); ``before`` and ``after`` are each run's continuation,
    decoded text or, without a tokenizer, ids."""

    request_index: int
    position: int | None
    common: str
    before: str
    after: str
    decoded: bool


@dataclass(frozen=True)
class Agreement:
    """Agreement of a run with a reference run (see the module docstring)."""

    compared: int
    exact_match: float | None
    prefix_match: float | None


def first_divergence(a: Sequence[object], b: Sequence[object]) -> int:
    """The index of the first token where ``a`` and ``b`` differ: the shorter
    length when one is a prefix of the other (their length when equal)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _pairs(baseline: Sequence[Output], current: Sequence[Output]) -> list[tuple[Output, Output]]:
    """Requests present in both runs with a digest on each side, in index order."""
    before = {o.index: o for o in baseline if o.sha is not None}
    return [(before[o.index], o) for o in sorted(current, key=lambda o: o.index)
            if o.sha is not None and o.index in before]  # fmt: skip


def diff_outputs(baseline: Sequence[Output], current: Sequence[Output]) -> OutputDiff:
    """Which requests generated something else tonight, and where the first one parted."""
    pairs = _pairs(baseline, current)
    changed = [(b, c) for b, c in pairs if b.sha != c.sha]
    position = None
    if changed:
        b, c = changed[0]
        if b.ids is not None and c.ids is not None:
            position = first_divergence(b.ids, c.ids)
    return OutputDiff(len(pairs), tuple(c.index for _, c in changed), position)


def agreement(reference: Sequence[Output], current: Sequence[Output]) -> Agreement:
    """``current``'s agreement with ``reference``; None values when no request pairs."""
    pairs = _pairs(reference, current)
    if not pairs:
        return Agreement(0, None, None)
    exact = [r.sha == c.sha for r, c in pairs]
    prefixes = [1.0 if same else _prefix(r, c) for (r, c), same in zip(pairs, exact, strict=True)]
    known = [p for p in prefixes if p is not None]
    return Agreement(
        compared=len(pairs),
        exact_match=sum(exact) / len(pairs),
        prefix_match=sum(known) / len(known) if len(known) == len(prefixes) else None,
    )


def _prefix(reference: Output, current: Output) -> float | None:
    """The fraction of tokens before the first divergence (None without ids)."""
    if reference.ids is None or current.ids is None:
        return None
    longer = max(len(reference.ids), len(current.ids))
    return first_divergence(reference.ids, current.ids) / longer if longer else 1.0


@dataclass(frozen=True)
class OutputNight:
    """One run of a configuration as the non-determinism rule sees it: its run
    digest and what it ran on (an environment fingerprint or id)."""

    sha: str | None
    environment: Hashable


def nondeterministic(nights: Sequence[OutputNight]) -> bool:
    """Whether a configuration is output-nondeterministic tonight.

    ``nights`` are its ok runs, oldest first, tonight last. True when, among
    the latest nights that share tonight's environment, outputs changed on
    two consecutive nights (see the module docstring).
    """
    if not nights:
        return False
    tonight = nights[-1].environment
    same = list(itertools.takewhile(lambda n: n.environment == tonight, reversed(nights)))[::-1]
    changes = [
        a.sha is not None and b.sha is not None and a.sha != b.sha
        for a, b in itertools.pairwise(same)
    ]
    return any(x and y for x, y in itertools.pairwise(changes))


__all__ = [
    "Agreement",
    "ChangedText",
    "Output",
    "OutputDiff",
    "OutputNight",
    "agreement",
    "diff_outputs",
    "first_divergence",
    "nondeterministic",
]
