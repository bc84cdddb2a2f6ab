"""Regression notifications: one plain-text message, posted to a webhook.

The message lists what the on-call engineer must look at (confirmed
``regression`` rows, ``output_changed`` verdicts of configurations not
marked output-nondeterministic, ``host_anomaly`` and worsening
``campaign_shift`` verdicts), each with what changed in the environment
against its baseline and whether the run throttled, then a link to the Airflow DAG run and the
HTML report. Suspicious rows and improvements are in the report, not here.
The payload ``{"text": ...}`` is what Slack, Mattermost and Teams incoming
webhooks accept. The Airflow side (``plugins/bench_notify.py``) decides when
to call this; nothing here imports Airflow.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bench.errors import NotifyError


def _alerts(f: Mapping[str, Any]) -> bool:
    if f.get("verdict") == "regression":
        return True
    if f.get("verdict") == "output_changed":  # shown in the report, not alarmed, when flaky
        return not f.get("nondeterministic")
    return f.get("verdict") in ("host_anomaly", "campaign_shift") and f.get("direction") == "worse"


def _line(f: Mapping[str, Any]) -> str:
    change = f"{f['change_pct']:+.1f}%" if isinstance(f.get("change_pct"), int | float) else ""
    if f["verdict"] == "host_anomaly":
        text = f"- host {f.get('scope')}: {f['metric']} {change}: {f.get('reason') or ''}".rstrip()
        text += " (the node, not the code?)"
    elif f["verdict"] == "output_changed":
        where = f"request {f.get('first_request')}"
        if f.get("first_position") is not None:
            where += f" at token {f['first_position']}"
        text = (
            f"- {f['label']}: generated tokens changed in {f.get('requests_changed')} of "
            f"{f.get('requests_compared')} requests (first: {where}; vs run "
            f"{f.get('baseline_run_id')})"
        )
    elif f["verdict"] == "campaign_shift":
        text = (
            f"- campaign shift ({f.get('scope')}): {f['metric']} {change}: {f.get('reason') or ''}"
        )
    else:
        text = (
            f"- {f['label']}: {f['metric']} {change} "
            f"({_num(f.get('baseline'))} -> {_num(f.get('current'))})"
        )
        if f.get("confirm_run_id") is not None:
            text += ", confirmed by a same-night re-run"
    if f.get("changed"):
        text += f"; changed: {f['changed']}"
    if f.get("throttled"):
        text += f"; {f['throttled']}"
    return text


def format_message(
    findings: Sequence[Mapping[str, Any]],
    *,
    dag_id: str,
    run_id: str,
    airflow_url: str | None = None,
    report: str | None = None,
) -> str | None:
    """The message for a campaign, or None when nothing needs attention.

    ``findings`` are the rows of :meth:`bench.regressions.Detection.as_json`
    (the ``detect_regressions`` task's XCom).
    """
    alerts = [f for f in findings if _alerts(f)]
    if not alerts:
        return None
    counts = [
        f"{n} {name}"
        for name, n in (
            ("regression(s)", sum(f["verdict"] == "regression" for f in alerts)),
            ("output change(s)", sum(f["verdict"] == "output_changed" for f in alerts)),
            ("host anomaly(ies)", sum(f["verdict"] == "host_anomaly" for f in alerts)),
            ("campaign shift(s)", sum(f["verdict"] == "campaign_shift" for f in alerts)),
        )
        if n
    ]
    lines = [f"{', '.join(counts)} in {dag_id} run {run_id}:"]
    lines += [_line(f) for f in alerts]
    if airflow_url:
        lines.append(
            f"DAG run: {airflow_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
        )
    if report:
        lines.append(f"report: {report}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "?"


def post_webhook(url: str, text: str, *, timeout_s: float = 10.0) -> None:
    """POST ``{"text": text}`` as JSON; NotifyError on failure (URL never echoed)."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if response.status >= 300:
                raise NotifyError(f"notification webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise NotifyError(f"notification webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NotifyError(
            f"notification webhook unreachable: {getattr(exc, 'reason', exc)}"
        ) from None
