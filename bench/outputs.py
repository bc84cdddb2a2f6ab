"""What runs generated, read from the results DB: the output half of the gate.

Two questions, both asked by ``detect_regressions`` once a campaign's runs
are in (:func:`bench.regressions.detect_campaign`), both answered by the
pure comparisons of :mod:`bench.stats.outputs`:

* **Did the tokens change?** A greedy run's output digest against the
  previous ok run of the same configuration (the gate's history: same
  fingerprint): a difference is an ``output_changed`` verdict (metric
  ``output``) naming how many requests changed, the first of them and the
  token where it parted, and what changed in the environment. A
  configuration whose outputs keep changing with nothing else changing is
  marked output-nondeterministic: still shown, not alarmed
  (:func:`bench.stats.outputs.nondeterministic` states the rule).
* **How far is each precision from the reference?** Every greedy run is
  compared with the campaign's run of the same configuration at the
  reference precision (campaign field ``reference_precision``, recorded by
  the plan task; by default the most precise one the campaign ran):
  ``output_exact_match`` and ``output_prefix_match``, written to
  ``run_summary`` so they trend and the gate judges them like any metric.

A run is greedy when it decodes without sampling (:func:`greedy`): with
sampling, different tokens are expected and neither question applies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.campaign.fields import REFERENCE_PRECISIONS, reference_precision
from bench.core.records import unpack_token_ids
from bench.environment import environment_diff
from bench.stats.outputs import (
    Agreement,
    ChangedText,
    Output,
    OutputNight,
    agreement,
    diff_outputs,
    first_divergence,
    nondeterministic,
)
from bench.store.queries import run_query
from bench.store.regressions import RegressionRow

#: The regression row's metric for output drift.
OUTPUT_METRIC = "output"
#: Changed request indices kept in a verdict's detail (the count is always exact).
LISTED_REQUESTS = 50
#: Identity keys that may differ between two runs whose outputs are compared
#: for batch-size invariance (the request count follows the batch size).
_BATCH_KEYS = ("batch_size", "n_requests")
#: A first change as the report shows it: tokens (or, for an endpoint's text,
#: characters) of shared context before the difference, and of each continuation.
DIFF_CONTEXT, DIFF_LENGTH = 16, 64


def greedy(config: Mapping[str, Any]) -> bool:
    """Whether a stored run config decodes greedily: in process unless the
    option ``do_sample`` is set; an endpoint only when ``temperature`` 0 is
    sent (a server's default temperature is its own, usually sampling)."""
    from bench.backends import BACKENDS

    options = config.get("options") or {}
    if options.get("do_sample"):
        return False
    spec = BACKENDS.get(str(config.get("backend")))
    if spec is not None and spec.load_shape == "stream":
        return options.get("temperature") == 0
    return True


def run_outputs(engine: sa.Engine, run_id: int) -> list[Output]:
    """One run's outputs (successful requests), ids unpacked where kept."""
    return [
        Output(
            int(r["request_index"]),
            r["output_sha"],
            None if r["output_ids"] is None else unpack_token_ids(r["output_ids"]),
        )
        for r in run_query(engine, "run_outputs", run_id=run_id)
    ]


class _Outputs:
    """Each run's outputs read once (a reference run serves several configurations)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._runs: dict[int, list[Output]] = {}

    def __call__(self, run_id: int) -> list[Output]:
        if run_id not in self._runs:
            self._runs[run_id] = run_outputs(self.engine, run_id)
        return self._runs[run_id]


# -- agreement with the reference precision -------------------------------------------------


@dataclass(frozen=True)
class CampaignRun:
    """A campaign's run as the output comparisons see it."""

    run_id: int
    label: str
    model: str
    precision: str
    batch_size: int
    ok: bool
    greedy: bool
    sha: str | None
    identity: Mapping[str, Any]

    def key(self, *without: str) -> str:
        """The configuration's identity without ``without``: equal keys differ only there."""
        import json

        return json.dumps(
            {k: v for k, v in self.identity.items() if k not in without}, sort_keys=True
        )


def campaign_runs(engine: sa.Engine, dag_run_id: str) -> tuple[list[CampaignRun], str | None]:
    """The campaign's primary runs, and its reference precision (as recorded
    by its plan task, else the most precise precision among its runs)."""
    rows = run_query(engine, "campaign_outputs", campaign=dag_run_id)
    runs = [
        CampaignRun(
            run_id=int(r["run_id"]),
            label=str(r["label"]),
            model=str(r["model"]),
            precision=str(r["precision"]),
            batch_size=int(r["batch_size"]),
            ok=r["status"] == "ok",
            greedy=greedy(r["config"] or {}),
            sha=r["output_sha"],
            identity=r["identity"] or {},
        )
        for r in rows
    ]
    recorded = next((r["reference_precision"] for r in rows if r["reference_precision"]), None)
    return runs, reference_precision(recorded, (r.precision for r in runs))


def reference_pairs(runs: Sequence[CampaignRun], reference: str | None) -> dict[int, int]:
    """run id -> the run id of its reference: the ok greedy run of the same
    configuration, precision aside, at ``reference`` (a reference run is its own)."""
    if reference is None:
        return {}
    usable = [r for r in runs if r.ok and r.greedy and r.sha is not None]
    refs = {r.key("precision"): r.run_id for r in usable if r.precision == reference}
    return {r.run_id: refs[r.key("precision")] for r in usable if r.key("precision") in refs}


def campaign_agreement(engine: sa.Engine, dag_run_id: str) -> dict[int, Agreement]:
    """Every run of the campaign that has a reference, with its agreement."""
    runs, reference = campaign_runs(engine, dag_run_id)
    outputs = _Outputs(engine)
    return {
        run_id: agreement(outputs(ref_id), outputs(run_id))
        for run_id, ref_id in reference_pairs(runs, reference).items()
    }


def update_agreement(engine: sa.Engine, dag_run_id: str) -> dict[int, Agreement]:
    """Compute the campaign's agreement metrics and store them in ``run_summary``
    (a run without a reference gets NULL): running it twice converges."""
    from bench.store.writer import set_agreement

    found = campaign_agreement(engine, dag_run_id)
    runs, _ = campaign_runs(engine, dag_run_id)
    set_agreement(
        engine,
        {
            r.run_id: (
                (found[r.run_id].prefix_match, found[r.run_id].exact_match)
                if r.run_id in found
                else (None, None)
            )
            for r in runs
            if r.ok
        },
    )
    return found


@dataclass(frozen=True)
class BatchInvariance:
    """The same prompts at batch size 1 and at ``batch_size``: how many outputs agree."""

    model: str
    precision: str
    label: str
    batch_size: int
    agreement: Agreement


def batch_invariance(engine: sa.Engine, dag_run_id: str) -> list[BatchInvariance]:
    """For each ok greedy run at a batch size above 1 whose configuration also
    ran at batch size 1 in the campaign: its agreement with that run. Reported
    as information: padding and batched kernels may legitimately change a
    near-tie."""
    runs, _ = campaign_runs(engine, dag_run_id)
    usable = [r for r in runs if r.ok and r.greedy and r.sha is not None]
    singles = {r.key(*_BATCH_KEYS): r for r in usable if r.batch_size == 1}
    outputs = _Outputs(engine)
    out = []
    for r in usable:
        single = singles.get(r.key(*_BATCH_KEYS))
        if r.batch_size > 1 and single is not None:
            found = agreement(outputs(single.run_id), outputs(r.run_id))
            out.append(BatchInvariance(r.model, r.precision, r.label, r.batch_size, found))
    return sorted(out, key=lambda b: (b.model, b.precision, b.batch_size))


@dataclass(frozen=True)
class ReferenceAgreement:
    """A run's agreement with the newest run of a more precise precision."""

    reference_run_id: int
    precision: str
    label: str
    dag_run_id: str
    agreement: Agreement


def cli_agreement(engine: sa.Engine, run_uid: str) -> ReferenceAgreement | None:
    """For ``bench run``: the stored run's agreement with the newest ok run of
    the same configuration at the most precise precision stored, when that is
    more precise than the run's own; None when there is none."""
    order = list(REFERENCE_PRECISIONS)

    def rank(precision: str) -> int:
        return order.index(precision) if precision in order else len(order)

    rows = run_query(engine, "reference_runs", run_uid=run_uid)
    better = [r for r in rows if rank(r["precision"]) < rank(r["own_precision"])]
    best = reference_precision(None, (r["precision"] for r in better))
    if best is None:
        return None
    ref = next(r for r in better if r["precision"] == best)
    found = agreement(
        run_outputs(engine, int(ref["run_id"])), run_outputs(engine, int(ref["own_run_id"]))
    )
    if not found.compared:
        return None
    return ReferenceAgreement(
        int(ref["run_id"]), best, str(ref["label"]), str(ref["dag_run_id"]), found
    )


# -- drift against the previous run ---------------------------------------------------------


def drift_row(
    engine: sa.Engine,
    *,
    run: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    environment: Callable[[int | None], Mapping[str, Any] | None],
    outputs: Callable[[int], list[Output]] | None = None,
) -> RegressionRow | None:
    """The ``output_changed`` verdict of a run against the previous ok run of
    its configuration, or None (same outputs, no previous run, no digests).

    ``run`` and ``history`` are ``config_history`` rows (the judged run, and
    the earlier ok runs oldest first); ``environment`` reads an environment
    by id (the gate's cache).
    """
    if not history or run["output_sha"] is None:
        return None
    before = history[-1]
    if before["output_sha"] is None or before["output_sha"] == run["output_sha"]:
        return None
    read = outputs or (lambda run_id: run_outputs(engine, run_id))
    diff = diff_outputs(read(int(before["run_id"])), read(int(run["run_id"])))
    if not diff.changed:  # the digests differ only by requests that failed on one side
        return None
    nights = [OutputNight(h["output_sha"], h["environment_id"]) for h in (*history, run)]
    flaky = nondeterministic(nights)
    tonight, baseline = environment(run["environment_id"]), environment(before["environment_id"])
    changed = environment_diff(tonight, [baseline]) if tonight and baseline else {}
    where = (
        f"request {diff.first_request} at token {diff.first_position}"
        if diff.first_position is not None
        else f"request {diff.first_request} (no ids kept to say where)"
    )
    reason = (
        f"{diff.changed} of {diff.compared} requests generated other tokens than run "
        f"{before['run_id']}; first: {where}"
    )
    if flaky:
        reason += (
            "; output-nondeterministic: outputs also changed the night before with the same "
            "environment, so this is shown, not alarmed, until the environment changes"
        )
    share = diff.changed / diff.compared
    return RegressionRow(
        run_id=int(run["run_id"]),
        metric=OUTPUT_METRIC,
        baseline=1.0,
        current=1.0 - share,
        change_pct=-100.0 * share,
        p_value=None,
        verdict="output_changed",
        changed=changed,
        detail={
            "direction": "worse",
            "requests_changed": diff.changed,
            "requests_compared": diff.compared,
            "first_request": diff.first_request,
            "first_position": diff.first_position,
            "changed_requests": list(diff.changed_requests[:LISTED_REQUESTS]),
            "baseline_run_id": int(before["run_id"]),
            "nondeterministic": flaky,
        },
        reason=reason,
    )


# -- a change as text, for the report ------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _tokenizer(model: str) -> Any | None:
    """The model's tokenizer if it is at hand (a local directory or the hub
    cache; never downloaded), else None: the report then shows token ids."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model, local_files_only=True)
    except Exception:
        return None


def first_change(
    engine: sa.Engine, *, model: str, baseline_run_id: int, run_id: int, request_index: int
) -> ChangedText | None:
    """How one request's output differs between two runs, as text: the
    streamed text of an endpoint, else the ids decoded with ``model``'s
    tokenizer, else the ids themselves. None when either run kept no outputs."""
    rows = {}
    for rid in (baseline_run_id, run_id):
        found = [r for r in run_query(engine, "run_outputs", run_id=rid)
                 if int(r["request_index"]) == request_index]  # fmt: skip
        rows[rid] = found[0] if found else None
    before, after = rows[baseline_run_id], rows[run_id]
    if before is None or after is None:
        return None
    if before["output_text"] is not None and after["output_text"] is not None:
        a, b = before["output_text"], after["output_text"]
        cut = first_divergence(a, b)
        return ChangedText(
            request_index, None, a[max(0, cut - 4 * DIFF_CONTEXT) : cut],
            a[cut : cut + 4 * DIFF_LENGTH], b[cut : cut + 4 * DIFF_LENGTH], decoded=True,
        )  # fmt: skip
    if before["output_ids"] is None or after["output_ids"] is None:
        return None
    x, y = unpack_token_ids(before["output_ids"]), unpack_token_ids(after["output_ids"])
    pos = first_divergence(x, y)
    parts = (x[max(0, pos - DIFF_CONTEXT) : pos], x[pos : pos + DIFF_LENGTH],
             y[pos : pos + DIFF_LENGTH])  # fmt: skip
    tokenizer = _tokenizer(model)
    if tokenizer is None:
        common, was, now = (" ".join(map(str, p)) + (" " if p else "") for p in parts)
        return ChangedText(request_index, pos, common, was, now, decoded=False)
    common, was, now = (tokenizer.decode(list(p)) for p in parts)
    return ChangedText(request_index, pos, common, was, now, decoded=True)
