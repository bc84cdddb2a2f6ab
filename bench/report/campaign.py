"""Campaign reports from the results DB: the task-log table and the HTML report.

:func:`build_report_data` reads one campaign (and the history of its
configurations) through the named queries and fills the plain
:class:`bench.report.ReportData` the renderer draws: trends with verdict and
change-point markers, the campaign against its baseline, tonight's TTFT/ITL
distributions against the baseline nights', and the throughput vs TTFT p99
view across batch sizes, and what the runs generated (drift, agreement with
the reference precision, batch-size invariance: :mod:`bench.report.outputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.errors import ConfigError
from bench.regressions import request_values
from bench.report import (
    ParetoPoint,
    ReportData,
    Samples,
    TableRow,
    render_report,
)
from bench.report.outputs import AgreementRow, DriftNote, InvarianceRow, OutputsData
from bench.report.targets import target_rows
from bench.report.trends import model_series
from bench.stats import DEFAULT_K, KEY_METRICS
from bench.store.queries import run_query

#: The campaign table of a task log: (row key, header, kind). Latencies in ms.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("label", "configuration", "text"),
    ("status", "status", "text"),
    ("n_requests", "reqs", "int"),
    ("ttft_p50_ms", "ttft p50", "num"),
    ("ttft_p99_ms", "ttft p99", "num"),
    ("tpot_p50_ms", "tpot p50", "num"),
    ("itl_p99_ms", "itl p99", "num"),
    ("output_tokens_per_s", "tok/s", "num"),
    ("goodput_fraction", "goodput", "pct"),
    ("regressions", "regr", "int"),
)
TABLE_NOTE = (
    "latencies in ms; tok/s = output tokens per second; goodput = share of requests within the SLOs"
)
#: Shown after ``status`` only when a run needed more than one try of its
#: task (an Airflow retry): most nights none does, and the log table stays narrow.
TRIES_COLUMN = ("attempt", "tries", "int")
TRIES_NOTE = "tries = which try of its Airflow task stored the run (1: no retry)"


def retried(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Label -> try number of the runs a task retry stored (attempt > 1)."""
    return {str(r["label"]): int(r["attempt"]) for r in rows if (r.get("attempt") or 1) > 1}


#: Metrics drawn as trend lines, per configuration.
TREND_METRICS = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "itl_p99_ms", "output_tokens_per_s")
#: Baseline nights whose requests make the baseline CDF.
CDF_NIGHTS = 5
#: Quantiles kept of a per-request sample (the CDF's shape, not every point).
CDF_QUANTILES = 400


def _number(kind: str, value: Any) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return str(int(value))
    if kind == "pct":
        return f"{100 * value:.0f}%"
    digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 100 else 2
    return f"{value:.{digits}f}"


def _elide(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its middle elided: a label's
    model and its batch size / shape / target suffix both stay readable."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its end cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_campaign_table(rows: Sequence[dict[str, Any]], width: int = 120) -> str:
    """The campaign table a task log shows (rows of ``campaign_runs``): no line
    longer than ``width`` (from about 90 up, 96 with tries; below, the label column keeps the
    width of its header). Labels too long are elided in the middle; errors go
    under the table, one line per configuration that did not finish (the last
    line of a traceback: the exception). A "tries" column appears when a task
    retry stored any run (:data:`TRIES_COLUMN`)."""
    if not rows:
        return "no runs recorded for this campaign"
    ok = sum(r["status"] == "ok" for r in rows)
    regressions = sum(int(r.get("regressions") or 0) for r in rows)
    tries = retried(rows)
    head = f"{ok}/{len(rows)} configurations ok" + (
        f", {regressions} regression(s)" if regressions else ""
    ) + (f", {len(tries)} retried" if tries else "")  # fmt: skip
    columns = (*TABLE_COLUMNS[:2], TRIES_COLUMN, *TABLE_COLUMNS[2:]) if tries else TABLE_COLUMNS
    cells = [
        [
            str(r.get(key) or "-") if kind == "text" else _number(kind, r.get(key))
            for key, _, kind in columns
        ]
        for r in rows
    ]
    widths = [
        max(len(header), *(len(c[i]) for c in cells)) for i, (_, header, _) in enumerate(columns)
    ]
    others = sum(widths[1:]) + 2 * (len(widths) - 1)
    widths[0] = max(min(widths[0], width - others), len(columns[0][1]))

    def line(values: Sequence[str]) -> str:
        parts = [
            _elide(v, w).ljust(w) if kind == "text" else v.rjust(w)
            for v, w, (_, _, kind) in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [head, line([h for _, h, _ in columns]), *(line(c) for c in cells)]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines.append("did not finish:")
        for r in failed:
            error = (r.get("error") or "").strip().splitlines() or ["no error recorded"]
            lines.append(_cut(f"  {r['label']} ({r['status']}): {error[-1]}", width))
    lines.append(_cut(TABLE_NOTE, width))
    if tries:
        lines.append(_cut(TRIES_NOTE, width))
    return "\n".join(lines)


def resolve_campaign(engine: sa.Engine, campaign: str | None, model: str | None) -> str:
    """The campaign to report: the one named, else the newest (with ``model``)."""
    if campaign:
        return campaign
    rows = run_query(engine, "latest_campaign", model=model or "")
    if not rows:
        raise ConfigError(
            "no campaign in the results DB" + (f" ran model {model!r}" if model else "")
        )
    return str(rows[0]["dag_run_id"])


def build_report_data(
    engine: sa.Engine,
    campaign: str,
    *,
    model: str | None = None,
    last: int = 30,
    title: str | None = None,
) -> ReportData:
    runs = [
        r
        for r in run_query(engine, "campaign_runs", campaign=campaign)
        if not model or r["model"] == model
    ]
    if not runs:
        raise ConfigError(
            f"campaign {campaign!r} has no runs" + (f" of model {model!r}" if model else "")
        )
    models = sorted({str(r["model"]) for r in runs})
    histories = {(r["fingerprint"], r["device_model"]) for r in runs}
    series = [
        s
        for m in models
        for s in model_series(engine, m, TREND_METRICS, last=last)
        if (s.fingerprint, s.device_model) in histories
    ]
    return ReportData(
        title=title or f"LLM benchmark report: {', '.join(models)}",
        generated_at=datetime.now(timezone.utc),
        campaign=campaign,
        series=series,
        table=_table(engine, campaign, runs),
        samples=[s for r in runs if r["status"] == "ok" for s in _samples(engine, r)],
        pareto=[p for m in models for p in _pareto(engine, m)],
        verdicts=_verdicts(engine, campaign, {str(r["run_id"]) for r in runs}),
        outputs=_outputs(engine, campaign, {int(r["run_id"]) for r in runs}),
        targets=target_rows(runs),
        tries=retried(runs),
        notes=[f"{sum(r['status'] != 'ok' for r in runs)} configuration(s) did not finish: "
               + ", ".join(f"{r['label']} ({r['status']})" for r in runs if r["status"] != "ok")]
        if any(r["status"] != "ok" for r in runs) else [],
    )  # fmt: skip


def _table(engine: sa.Engine, campaign: str, runs: Sequence[dict[str, Any]]) -> list[TableRow]:
    verdicts = {
        (int(v["run_id"]), v["metric"]): v
        for v in run_query(engine, "latest_regressions", verdict="", campaign=campaign, last=10_000)
    }
    rows = []
    for spec in KEY_METRICS:
        for r in run_query(
            engine, "campaign_vs_baseline", campaign=campaign, metric=spec.name, last=DEFAULT_K
        ):
            if r["status"] != "ok" or r["label"] not in {x["label"] for x in runs}:
                continue
            v = verdicts.get((int(r["run_id"]), spec.name), {})
            rows.append(
                TableRow(
                    config=r["label"],
                    metric=spec.name,
                    current=r["current"],
                    baseline=r["baseline_median"],
                    change_pct=r["median_change_pct"],
                    verdict=v.get("verdict"),
                    p_value=v.get("p_value"),
                )
            )
    return sorted(rows, key=lambda t: t.config)


def _verdicts(engine: sa.Engine, campaign: str, run_ids: set[str]) -> list[Any]:
    """The campaign's verdicts with what changed (bench.report.changes)."""
    from bench.report.changes import verdict_notes

    rows = run_query(engine, "latest_regressions", verdict="", campaign=campaign, last=10_000)
    return verdict_notes([r for r in rows if str(r["run_id"]) in run_ids])


def _outputs(engine: sa.Engine, campaign: str, run_ids: set[int]) -> OutputsData:
    """The campaign's drift verdicts (with the first change as text), its
    agreement with the reference precision and its batch-size invariance."""
    from bench.outputs import batch_invariance, campaign_runs, first_change

    _, reference = campaign_runs(engine, campaign)
    rows = [r for r in run_query(engine, "campaign_outputs", campaign=campaign)
            if int(r["run_id"]) in run_ids]  # fmt: skip
    agreement = [
        AgreementRow(r["label"], r["precision"], r["output_exact_match"], r["output_prefix_match"])
        for r in rows
        if r["output_exact_match"] is not None
    ]
    drift = []
    for v in run_query(
        engine, "latest_regressions", verdict="output_changed", campaign=campaign, last=10_000
    ):
        if int(v["run_id"]) not in run_ids:
            continue
        d = v["detail"] or {}
        baseline, first = d.get("baseline_run_id"), d.get("first_request")
        diff = None
        if baseline is not None and first is not None:
            diff = first_change(
                engine,
                model=str(v["model"]),
                baseline_run_id=int(baseline),
                run_id=int(v["run_id"]),
                request_index=int(first),
            )
        drift.append(
            DriftNote(
                label=str(v["label"]),
                requests_changed=int(d.get("requests_changed") or 0),
                requests_compared=int(d.get("requests_compared") or 0),
                first_request=first,
                first_position=d.get("first_position"),
                baseline_run_id=baseline,
                nondeterministic=bool(d.get("nondeterministic")),
                changed=v["changed"] or {},
                diff=diff,
            )
        )
    invariance = [
        InvarianceRow(b.label, b.batch_size, b.agreement.compared, b.agreement.exact_match,
                      b.agreement.prefix_match)
        for b in batch_invariance(engine, campaign)
    ]  # fmt: skip
    return OutputsData(reference, drift, agreement, invariance)


def _quantiles(values: np.ndarray) -> list[float]:
    if values.size <= CDF_QUANTILES:
        return sorted(values.tolist())
    return np.quantile(values, np.linspace(0.0, 1.0, CDF_QUANTILES)).tolist()


def _samples(engine: sa.Engine, run: dict[str, Any]) -> list[Samples]:
    """Tonight's TTFT and ITL against the previous nights' of the same config."""
    history = run_query(engine, "config_history", run_id=int(run["run_id"]), last=CDF_NIGHTS)
    tonight = request_values(engine, int(run["run_id"]))
    before = [request_values(engine, int(h["run_id"])) for h in history if not h["is_current"]]
    out = []
    for name in ("ttft", "itl"):
        base = np.concatenate([b[name] for b in before]) if before else np.empty(0)
        if tonight[name].size:
            out.append(
                Samples(str(run["label"]), name, _quantiles(tonight[name]), _quantiles(base))
            )
    return out


def _pareto(engine: sa.Engine, model: str) -> list[ParetoPoint]:
    return [
        ParetoPoint(
            model, r["precision"], int(r["batch_size"]), r["output_tokens_per_s"], r["ttft_p99_ms"]
        )
        for r in run_query(engine, "latest_per_config", model=model)
        if r["output_tokens_per_s"] is not None
        and r["ttft_p99_ms"] is not None
        and r["concurrency"] is None
    ]


def write_campaign_report(
    engine: sa.Engine, campaign: str, out: Path, *, title: str | None = None
) -> Path:
    """Build and write one campaign's self-contained HTML report."""
    return render_report(build_report_data(engine, campaign, title=title), out)
