"""Run one DAG with ``dag.test()`` and print the outcome as JSON (last line).

Used by the tests in a child process, so each run gets its own Airflow
configuration (dags folder, metadata DB) and a clean interpreter:

    python tests/airflow/dag_test_runner.py DAGS_FOLDER DAG_ID '{"limit": 2}'
"""

from __future__ import annotations

import json
import sys


def main(dags_folder: str, dag_id: str, conf: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dags_folder)
    if dag_id not in bag.dags:
        raise SystemExit(f"no DAG {dag_id}; import errors: {bag.import_errors}")
    run = bag.dags[dag_id].test(run_conf=json.loads(conf))
    tis = [
        {
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "state": str(ti.state),
            "label": ti.rendered_map_index,
        }
        for ti in run.get_task_instances()
    ]
    print(json.dumps({"run_id": run.run_id, "state": str(run.state), "tis": tis}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
