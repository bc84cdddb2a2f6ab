"""The Hugging Face Hub token for gated models (``meta-llama/*``), for benchmark tasks.

Read at task run time on the worker, never at DAG parse time: the password of
the Airflow connection ``bench_hf`` (for example
``AIRFLOW_CONN_BENCH_HF='{"conn_type": "generic", "password": "hf_..."}'``
or a secrets backend). Without it, a worker's own ``HF_TOKEN`` (or the
token ``huggingface-cli login`` stored) still reaches the child, which
inherits the worker's environment. The token is handed to the ``bench run``
child as ``HF_TOKEN`` in its environment only: never on a command line, in
XCom or in a log (Airflow also masks connection passwords in task logs).
"""

from __future__ import annotations

HUB_CONN_ID = "bench_hf"


def hub_secrets() -> dict[str, str]:
    """``{"HF_TOKEN": token}`` from the ``bench_hf`` connection, or ``{}``."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        token = BaseHook.get_connection(HUB_CONN_ID).password
    except AirflowNotFoundException:
        return {}
    return {"HF_TOKEN": token} if token else {}
