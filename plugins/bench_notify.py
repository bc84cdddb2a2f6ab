"""An Airflow notifier that posts a campaign's regressions to a webhook.

Attached by the campaign DAGs as ``on_success_callback`` of
``detect_regressions`` when the campaign file sets ``notify.webhook``; reads
that task's findings from XCom and stays quiet when nothing regressed.
Any other Airflow notifier (Slack, SMTP, ... from the providers) can be
attached the same way.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier, conf


class BenchRegressionNotifier(BaseNotifier):
    template_fields = ("webhook",)

    def __init__(self, webhook: str) -> None:
        super().__init__()
        self.webhook = webhook

    def notify(self, context: Any) -> None:
        from bench.core.envvars import WEBHOOK_VARS, expand
        from bench.core.results import CampaignRef
        from bench.notify import format_message, post_webhook
        from bench.orchestration.tasks import report_path

        ti = context["ti"]
        findings = ti.xcom_pull(task_ids=ti.task_id) or []
        run = context["dag_run"]
        text = format_message(
            findings,
            dag_id=run.dag_id,
            run_id=run.run_id,
            airflow_url=conf.get("api", "base_url", fallback=None),
            report=str(report_path(CampaignRef(dag_run_id=run.run_id, dag_id=run.dag_id))),
        )
        if text is not None:
            post_webhook(expand(self.webhook, WEBHOOK_VARS), text)
            self.log.info("posted the campaign's regressions to the notification webhook")
