"""Campaign reports from the results DB: the task-log table and the HTML report.

:func:`build_report_data` reads one campaign (and the history of its
configurations) through the named queries and fills the plain
:class:`bench.report.ReportData` the renderer draws: trends with verdict and
change-point markers, the campaign against its baseline, tonight's TTFT/ITL
distributions against the baseline nights', and the throughput vs TTFT p99
view across batch sizes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.errors import ConfigError
from bench.regressions import better_direction, request_values
from bench.report import (
    ConfigSeries,
    Marker,
    ParetoPoint,
    ReportData,
    Samples,
    TableRow,
    render_report,
)
from bench.stats import DEFAULT_K, KEY_METRICS, find_changepoints
from bench.store.queries import run_query

TABLE_COLUMNS = (
    "label", "status", "n_requests", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "itl_p99_ms",
    "output_tokens_per_s", "goodput_fraction", "regressions", "error",
)  # fmt: skip
#: Metrics drawn as trend lines, per configuration.
TREND_METRICS = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "itl_p99_ms", "output_tokens_per_s")
#: Baseline nights whose requests make the baseline CDF.
CDF_NIGHTS = 5
#: Quantiles kept of a per-request sample (the CDF's shape, not every point).
CDF_QUANTILES = 400


#: The compact form (a task log): column -> short header; errors go below the table.
COMPACT_COLUMNS = {
    "label": "label", "status": "status", "n_requests": "n", "ttft_p50_ms": "ttft_p50",
    "ttft_p99_ms": "ttft_p99", "tpot_p50_ms": "tpot_p50", "itl_p99_ms": "itl_p99",
    "output_tokens_per_s": "tok/s", "goodput_fraction": "goodput", "regressions": "regr",
}  # fmt: skip


def format_campaign_table(rows: Sequence[dict[str, Any]], width: int | None = None) -> str:
    """The campaign as a text table; with ``width``, the compact form whose
    every line fits that many columns (times in ms, errors below)."""
    from bench.report.tables import format_table

    if not rows:
        return "no runs recorded for this campaign"
    ok = sum(r["status"] == "ok" for r in rows)
    if width is None:
        table = format_table([{k: r.get(k) for k in TABLE_COLUMNS} for r in rows])
        return f"{ok}/{len(rows)} configurations ok\n{table}"
    table = format_table([{h: r.get(k) for k, h in COMPACT_COLUMNS.items()} for r in rows])
    errors = [f"{r['label']}: {r['error']}" for r in rows if r.get("error")]
    lines = [f"{ok}/{len(rows)} configurations ok (times in ms)", *table.splitlines(), *errors]
    return "\n".join(line if len(line) <= width else line[: width - 3] + "..." for line in lines)


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
    labels = {str(r["label"]) for r in runs}
    series = [s for m in models for s in _series(engine, m, last) if s.config in labels]
    return ReportData(
        title=title or f"LLM benchmark report: {', '.join(models)}",
        generated_at=datetime.now(timezone.utc),
        campaign=campaign,
        series=series,
        table=_table(engine, campaign, runs),
        samples=[s for r in runs if r["status"] == "ok" for s in _samples(engine, r)],
        pareto=[p for m in models for p in _pareto(engine, m)],
        notes=[f"{sum(r['status'] != 'ok' for r in runs)} configuration(s) did not finish: "
               + ", ".join(f"{r['label']} ({r['status']})" for r in runs if r["status"] != "ok")]
        if any(r["status"] != "ok" for r in runs) else [],
    )  # fmt: skip


def _series(engine: sa.Engine, model: str, last: int) -> list[ConfigSeries]:
    nights: dict[str, dict[int, datetime]] = defaultdict(dict)
    values: dict[str, dict[str, dict[int, float | None]]] = defaultdict(lambda: defaultdict(dict))
    for metric in TREND_METRICS:
        for row in run_query(engine, "metric_series", model=model, metric=metric, last=last):
            nights[row["label"]][row["run_id"]] = row["started_at"]
            values[row["label"]][metric][row["run_id"]] = row["value"]
    oldest = min((t for runs in nights.values() for t in runs.values()), default=None)
    verdicts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if oldest is not None:
        for v in run_query(
            engine, "latest_regressions", verdict="", model=model, since=oldest, last=10_000
        ):
            verdicts[int(v["run_id"])].append(v)
    out = []
    for label, runs in nights.items():
        order = sorted(runs, key=runs.__getitem__)
        per_metric = {m: [values[label][m].get(run) for run in order] for m in TREND_METRICS}
        markers = [
            Marker(
                night=runs[run], metric=v["metric"], kind=v["verdict"], change_pct=v["change_pct"]
            )
            for run in order
            for v in verdicts.get(run, [])
            if v["metric"] in per_metric
        ]
        for metric, series in per_metric.items():
            for cp in find_changepoints(series, better_direction(metric)):
                markers.append(
                    Marker(
                        night=runs[order[cp.index]],
                        metric=metric,
                        kind="changepoint",
                        change_pct=cp.change_pct,
                    )
                )
        out.append(
            ConfigSeries(
                config=label, nights=[runs[r] for r in order], values=per_metric, markers=markers
            )
        )
    return sorted(out, key=lambda s: s.config)


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
