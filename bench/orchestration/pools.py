"""Create the Airflow pools the campaigns name: ``python -m bench.orchestration.pools [DAGS]``.

Airflow never schedules a task whose pool does not exist; it only shows a DAG
warning, and the night waits. So a campaign whose ``targets:`` name pools of
their own (``pool: gaudi3_cards``) needs them before its first run.
``airflow-init`` (docker-compose.yaml) runs this after creating the ``hpu``
pool: every pool a campaign file in ``DAGS/campaigns`` names that is missing is
created with as many slots as the largest of its tasks takes (one
tensor-parallel configuration's cards), the least that lets every task run and
never more than one node's worth at once. Raise it to the cards behind the pool
with ``airflow pools set NAME SLOTS DESCRIPTION``. A pool that exists is left
as it is: its size is the operator's. A campaign file that does not validate is
skipped (its DAG's import error says why).

Runs the ``airflow`` CLI (``pools list``, ``pools set``); imports nothing of
Airflow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.campaign import CampaignError, campaign_files, load_campaign
from bench.orchestration import airflow_env

#: Airflow's DAGs folder, else this checkout's dags/.
DAGS = Path(
    os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or Path(__file__).resolve().parents[2] / "dags"
)

Airflow = Callable[[Sequence[str]], str]


def needed_pools(dags: Path, log: Callable[[str], None] = print) -> dict[str, tuple[int, str]]:
    """Pool name -> (the most slots one task takes, the campaigns naming it)."""
    needed: dict[str, tuple[int, list[str]]] = {}
    for path in campaign_files(dags / "campaigns"):
        try:
            campaign = load_campaign(path)
        except CampaignError as exc:
            log(f"skipped {path.name}: {exc}")
            continue
        for pool, slots in campaign.pools().items():
            most, names = needed.get(pool, (0, []))
            needed[pool] = (max(most, slots), [*names, campaign.name])
    return {pool: (slots, ", ".join(names)) for pool, (slots, names) in needed.items()}


def run_airflow(args: Sequence[str]) -> str:
    """``airflow *args`` in this process's environment (airflow-init's, not
    the local one :func:`~bench.orchestration.airflow_env.airflow_environ`
    builds); its stdout. A failure is the CLI's own message."""
    proc = airflow_env.run_airflow(list(args), env=dict(os.environ), capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def existing_pools(airflow: Airflow) -> set[str]:
    rows = json.loads(airflow(["pools", "list", "--output", "json"]) or "[]")
    return {str(row["pool"]) for row in rows}


def create_missing(
    needed: Mapping[str, tuple[int, str]], airflow: Airflow, log: Callable[[str], None] = print
) -> list[str]:
    """Create each needed pool that does not exist; the names created."""
    have = existing_pools(airflow)
    created = []
    for pool, (slots, campaigns) in sorted(needed.items()):
        if pool in have:
            continue
        description = f"llm-bench campaign(s) {campaigns}: raise to the cards behind this pool"
        airflow(["pools", "set", pool, str(slots), description])
        created.append(pool)
        log(
            f"created pool {pool} with {slots} slot(s), the most one task of {campaigns} "
            f"takes; set it to the cards behind it: airflow pools set {pool} <cards> '...'"
        )
    if not created:
        log(f"every pool the campaigns name exists ({', '.join(sorted(needed)) or 'none'})")
    return created


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dags", nargs="?", type=Path, default=DAGS, help=f"the DAGs folder (default {DAGS})"
    )
    args = parser.parse_args(argv)
    create_missing(needed_pools(args.dags), run_airflow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
