"""A model's trends from the results DB, as :class:`~bench.report.data.ConfigSeries`.

One reader for the HTML report and the Airflow Benchmarks page, so both show
the same runs, the same verdicts and the same change points: the newest
``last`` successful runs of each configuration (``metric_series``), the
detector's verdicts on them (``latest_regressions``), the change points of
each metric's series (:func:`bench.stats.find_changepoints`) and the SLOs of
the configuration's newest run (``config_slos``). Series are keyed by history
(fingerprint, device model, cards): two configurations that share a label, or
one configuration on a Gaudi2 and a Gaudi3 node, stay two series.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bench.regressions import better_direction
from bench.report.data import ConfigSeries, Marker
from bench.report.style import SLO_FIELDS
from bench.stats import find_changepoints
from bench.store.queries import run_query

#: A LIMIT that keeps every row (Postgres bigint max).
EVERY_ROW = 2**63 - 1

#: What names one history: fingerprint, device model, cards (migration 014).
History = tuple[str, str, int]


def model_series(
    engine: sa.Engine,
    model: str,
    metrics: Sequence[str],
    *,
    last: int = 30,
    changepoints: bool = True,
    device_model: str = "",
) -> list[ConfigSeries]:
    """Each history of ``model`` (configuration x device model x cards) over its
    newest ``last`` ok runs, oldest first, with ``metrics``' values and markers;
    sorted by label (``device_model``: that model's only). A configuration that ran on two device models is two
    series, its label followed by the device model."""
    runs: dict[History, dict[int, dict[str, Any]]] = defaultdict(dict)  # history -> run -> row
    values: dict[History, dict[str, dict[int, float | None]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for metric in metrics:
        for row in run_query(
            engine,
            "metric_series",
            model=model,
            metric=metric,
            last=last,
            device_model=device_model,
        ):
            key = (row["fingerprint"], row["device_model"], row["cards"])
            runs[key][row["run_id"]] = row
            values[key][metric][row["run_id"]] = row["value"]
    per_config = Counter(fingerprint for fingerprint, _, _ in runs)
    if not runs:
        return []
    since = min(r["started_at"] for by_run in runs.values() for r in by_run.values())
    verdicts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for v in run_query(
        engine,
        "latest_regressions",
        verdict="",
        model=model,
        metric=metrics[0] if len(metrics) == 1 else "",
        since=since,
        last=EVERY_ROW,
    ):
        if v["metric"] in metrics:
            verdicts[int(v["run_id"])].append(v)
    slos = {
        row["fingerprint"]: {
            family: row[column]
            for family, column in SLO_FIELDS.items()
            if row.get(column) is not None
        }
        for row in run_query(engine, "config_slos", model=model)
    }
    out = []
    for key, by_run in runs.items():
        fingerprint, device_model, cards = key
        order = sorted(by_run, key=lambda run_id: by_run[run_id]["started_at"])
        nights = [by_run[r]["started_at"] for r in order]
        per_metric = {m: [values[key][m].get(r) for r in order] for m in metrics}
        label = str(by_run[order[0]]["label"])
        if per_config[fingerprint] > 1:
            label += f" on {device_model or 'unknown device'} x{cards}"
        markers = [
            Marker(
                night=by_run[r]["started_at"],
                metric=v["metric"],
                kind=v["verdict"],
                change_pct=v["change_pct"],
                p_value=v["p_value"],
                baseline=v["baseline"],
                current=v["current"],
            )
            for r in order
            for v in verdicts.get(r, [])
        ]
        if changepoints:
            markers += _changepoints(nights, per_metric)
        out.append(
            ConfigSeries(
                config=label,
                nights=nights,
                values=per_metric,
                markers=markers,
                fingerprint=fingerprint,
                runs=[str(by_run[r]["dag_run_id"]) for r in order],
                run_ids=order,
                slos=slos.get(fingerprint, {}),
                device_model=device_model,
                cards=cards,
            )
        )
    return sorted(out, key=lambda s: (s.config, s.fingerprint))


def _changepoints(
    nights: Sequence[datetime], per_metric: dict[str, list[float | None]]
) -> list[Marker]:
    return [
        Marker(nights[cp.index], metric, "changepoint", cp.change_pct)
        for metric, series in per_metric.items()
        for cp in find_changepoints(series, better_direction(metric))
    ]
