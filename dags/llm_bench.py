"""One Airflow DAG per campaign file in ``dags/campaigns/*.yaml``.

DAG id ``llm_bench_<file stem>``. Tasks: ``plan`` (validate the trigger
values, expand the matrix, create the campaign row) -> ``benchmark`` (mapped,
one task per model x precision x batch size, each a ``bench run`` child
process) -> ``suspects`` -> ``confirm`` (mapped: one same-night re-run of each
configuration the gate finds suspicious, judged together with its run) ->
``detect_regressions`` -> ``report``. The tasks after ``benchmark`` run even
when some configurations failed (and say "nothing ran" when none did);
``any_config_failed`` then marks the DAG run failed, naming the
configurations, so a red run in the UI always means one did not finish.
Each task's log is the user's view: what the task bodies in
``bench.orchestration.tasks`` log lands there (``plugins/bench_task.py``).
Configurations that need several cards get a mapped task of their own
(``benchmark_tp8``, fed by ``select_tp8``): pool slots are fixed per task,
not per map index. For the same reason a campaign with ``targets:`` gets one
mapped task per target (``benchmark_gaudi3``, on that target's queue and
pool), each configuration once per target, labelled ``.../bs8@gaudi3``. The trigger form's fields come from
``Campaign.trigger_form()`` (bench/campaign/form.py: the campaign's
description first, the matrix open, bounds and units in each field); the
DAG's doc is the campaign's description and its one-line description the
first paragraph of it.

Parsing stays fast: only YAML and the light ``bench.campaign`` module load
here; torch and friends load in the child processes. A campaign file that
does not validate is skipped here and reported as an import error of
``llm_bench_campaign_check.py``, so one bad file never stops the others.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from bench.campaign import Campaign, CampaignError, Lane, campaign_files, load_campaign

CAMPAIGNS = Path(__file__).resolve().parent / "campaigns"
#: Seconds the child gets before Airflow's own execution_timeout fires.
TIMEOUT_MARGIN_S = 60
#: The tasks after the benchmarks only read and write the results DB: they
#: retry while it is unreachable (15 s, 30 s, ... up to 4 min: a restart or a
#: failover of about 7 minutes), and fail at once on anything else
#: (``bench_task.retry_only_when_db_down``); "nothing ran" is not an error.
DB_RETRIES: dict[str, Any] = {
    "retries": 5,
    "retry_delay": timedelta(seconds=15),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=4),
}


def build_dag(c: Campaign, source: Path) -> DAG:
    timeout_s = c.timeout_minutes * 60
    lanes = c.lanes()  # one mapped benchmark task each (queue, pool, slots fixed per task)

    with DAG(
        dag_id=c.dag_id,
        description=c.summary,
        doc_md=c.description or None,
        schedule=c.schedule,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,
        params={name: Param(**spec) for name, spec in c.trigger_form().items()},
        tags=["llm-bench", c.device, c.backend],
        default_args={"owner": "llm-bench"},
    ) as dag:

        @task(retries=0)
        def plan() -> list[dict[str, Any]]:
            from bench_results import results_db_url  # plugins/
            from bench_task import campaign_ref, fail, log  # plugins/

            from bench.errors import BenchError
            from bench.orchestration.child import Exit
            from bench.orchestration.tasks import plan as plan_campaign

            context = get_current_context()
            try:
                return plan_campaign(
                    source,
                    dict(context["params"]),
                    campaign=campaign_ref(context),
                    db_url=results_db_url(),
                    log=log,
                )
            except BenchError as exc:  # a user error: one line, no traceback
                fail(f"plan: error: {exc}", Exit.BAD_INPUT)

        def items_for(lane: Lane, planned: Any, prefix: str = "select") -> Any:
            """Mapped tasks cannot expand over part of an XCom: select it in a task."""
            if len(lanes) == 1:
                return planned

            @task(task_id=f"{prefix}{lane.suffix}")
            def select(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [
                    i
                    for i in items
                    if i["world_size"] == lane.world_size and i.get("target") == lane.target
                ]

            return select(planned)

        def benchmark_task(lane: Lane, name: str = "benchmark") -> Any:
            @task(
                task_id=f"{name}{lane.suffix}",
                map_index_template="{{ task.op_kwargs['item']['label'] }}",
                pool=lane.pool,
                pool_slots=lane.world_size,
                queue=lane.queue,
                retries=c.retries,
                retry_delay=timedelta(seconds=30),
                execution_timeout=timedelta(seconds=timeout_s + TIMEOUT_MARGIN_S),
            )
            def benchmark(item: dict[str, Any]) -> dict[str, Any]:
                from airflow.sdk.exceptions import AirflowException, AirflowFailException
                from bench_hub import hub_secrets  # plugins/bench_hub.py
                from bench_results import results_db_url
                from bench_task import campaign_ref, log, try_number

                from bench.orchestration.tasks import benchmark as run_config

                context = get_current_context()
                outcome = run_config(
                    item,
                    campaign=campaign_ref(context),
                    db_url=results_db_url(),
                    timeout_s=timeout_s,
                    attempt=try_number(context),  # the campaign table's "tries"
                    secrets=hub_secrets(),  # read here, at run time: never an argument
                    log=log,
                )
                if outcome.status != "ok":
                    error = AirflowException if outcome.retryable else AirflowFailException
                    raise error(f"{outcome.label}: {outcome.status}: {outcome.error}")
                return outcome.to_json()

            return benchmark

        notifier = []
        if c.notify_webhook:
            from bench_notify import BenchRegressionNotifier  # plugins/bench_notify.py

            notifier = [BenchRegressionNotifier(webhook=c.notify_webhook)]

        @task(trigger_rule=TriggerRule.ALL_DONE, **DB_RETRIES)
        def suspects() -> list[dict[str, Any]]:
            """The configurations to re-run once tonight (see bench.regressions)."""
            from bench_results import results_db_url
            from bench_task import campaign_ref, log, planned_items, retry_only_when_db_down

            from bench.orchestration.tasks import suspects as find

            context = get_current_context()
            if not planned_items(context):
                return []  # nothing ran: nothing to confirm
            with retry_only_when_db_down():
                return find(
                    campaign_ref(context),
                    db_url=results_db_url(),
                    thresholds=dict(c.thresholds),
                    log=log,
                )

        @task(trigger_rule=TriggerRule.ALL_DONE, on_success_callback=notifier, **DB_RETRIES)
        def detect_regressions() -> list[dict[str, Any]]:
            from bench_results import results_db_url
            from bench_task import campaign_ref, log, planned_items, retry_only_when_db_down

            from bench.orchestration.tasks import detect_regressions as detect

            context = get_current_context()
            with retry_only_when_db_down():
                return detect(
                    campaign_ref(context),
                    db_url=results_db_url(),
                    thresholds=dict(c.thresholds),
                    planned=planned_items(context),
                    log=log,
                )

        @task(trigger_rule=TriggerRule.ALL_DONE, **DB_RETRIES)
        def report() -> str | None:
            from bench_results import results_db_url
            from bench_task import (
                base_url,
                campaign_ref,
                log,
                planned_items,
                retry_only_when_db_down,
            )

            from bench.orchestration.tasks import report as write_report

            context = get_current_context()
            with retry_only_when_db_down():
                out = write_report(
                    campaign_ref(context),
                    db_url=results_db_url(),
                    planned=planned_items(context),
                    base_url=base_url(),
                    log=log,
                )
            return str(out) if out else None

        @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
        def any_config_failed() -> None:
            """Fails the DAG run when a configuration failed (the report still ran)."""
            from bench_results import results_db_url
            from bench_task import campaign_ref, fail, planned_items

            from bench.orchestration.child import Exit
            from bench.orchestration.tasks import failed_configurations

            context = get_current_context()
            why = failed_configurations(
                campaign_ref(context), db_url=results_db_url(), planned=planned_items(context)
            )
            fail(why, Exit.FAILED)

        planned = plan()
        benchmarks = [benchmark_task(ln).expand(item=items_for(ln, planned)) for ln in lanes]
        suspected = suspects()
        confirms = [
            benchmark_task(ln, "confirm").expand(item=items_for(ln, suspected, "confirm_select"))
            for ln in lanes
        ]
        finished = report()
        benchmarks >> suspected
        confirms >> detect_regressions() >> finished
        [planned, *benchmarks, finished] >> any_config_failed()
    return dag


for _path in campaign_files(CAMPAIGNS):
    try:
        _campaign = load_campaign(_path)
    except CampaignError:
        continue  # reported by llm_bench_campaign_check.py
    globals()[_campaign.dag_id] = build_dag(_campaign, _path)
