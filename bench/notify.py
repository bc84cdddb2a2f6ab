"""Regression notifications: one plain-text message, posted to a webhook.

The message lists the campaign's confirmed regressions (verdict
``regression``) with a link to the Airflow DAG run and the HTML report. The
payload ``{"text": ...}`` is what Slack, Mattermost and Teams incoming
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


def format_message(
    findings: Sequence[Mapping[str, Any]],
    *,
    dag_id: str,
    run_id: str,
    airflow_url: str | None = None,
    report: str | None = None,
) -> str | None:
    """The message for a campaign, or None when nothing regressed."""
    regressions = [f for f in findings if f.get("verdict") == "regression"]
    if not regressions:
        return None
    lines = [f"{len(regressions)} regression(s) in {dag_id} run {run_id}:"]
    for f in regressions:
        lines.append(
            f"- {f['label']}: {f['metric']} {f['change_pct']:+.1f}% "
            f"({_num(f.get('baseline'))} -> {_num(f.get('current'))})"
        )
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
