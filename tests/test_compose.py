"""docker-compose.yaml: valid for docker-compose, and wired to the campaigns.

The stack cannot start here (no Docker engine, no Gaudi); these checks catch
what would break it on a real host: an invalid file, a worker that listens
on a queue no campaign uses (or none listening on a campaign's queue), a
service that runs tasks without the results DB, state outside a volume.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.orchestration.airflow_env import TASK_LOG_LEVELS
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yaml"
CONTROL_PLANE = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the x-airflow-common anchors
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def worker_queues(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    text = command if isinstance(command, str) else " ".join(command)
    words = text.split()
    assert "worker" in words and "--queues" in words, text
    return words[words.index("--queues") + 1].split(",")


def campaigns() -> list[dict[str, Any]]:
    """Campaign files with the defaults of docs/campaign-format.md applied."""
    found = []
    for path in sorted((REPO / "dags" / "campaigns").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        found.append(
            {
                "file": path.name,
                "device": data.get("device", "cpu"),
                "queue": data.get("queue", "default"),
            }
        )
    return found


def test_docker_compose_accepts_the_file() -> None:
    exe = require_tool("docker-compose")
    for profiles in ([], ["--profile", "hpu"], ["--profile", "cpu"]):
        proc = subprocess.run(
            [exe, "-f", str(COMPOSE), *profiles, "config", "-q"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr


def test_airflow_services_of_the_official_shape(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in (
        *CONTROL_PLANE,
        "airflow-init",
        "postgres",
        "redis",
        "airflow-worker-hpu",
        "airflow-worker-cpu",
    ):
        assert name in svc, name
    assert svc["postgres"]["image"] == "postgres:16"
    assert svc["redis"]["image"].startswith("redis:")
    for name in (*CONTROL_PLANE, "airflow-worker-hpu", "airflow-worker-cpu"):
        env = svc[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        # the benchmark's own lines reach the task logs (bench.orchestration.airflow_env)
        assert env["AIRFLOW__LOGGING__NAMESPACE_LEVELS"] == TASK_LOG_LEVELS
        assert (
            svc[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        )


def test_gaudi_worker_is_set_up_like_habanas_containers(compose: dict[str, Any]) -> None:
    hpu = services(compose)["airflow-worker-hpu"]
    assert hpu["runtime"] == "habana"
    assert hpu["ipc"] == "host"
    assert "sys_nice" in hpu["cap_add"]
    assert "HABANA_VISIBLE_DEVICES" in hpu["environment"]
    assert hpu["build"]["dockerfile"] == "Dockerfile"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert (
        "vault.habana.ai/gaudi-docker/${SYNAPSE_VERSION}/${UBUNTU}/habanalabs/pytorch-installer-${PT_VERSION}"
        in dockerfile
    )
    assert "-e '.[hpu,airflow]'" in dockerfile
    # torch comes from the image; the constraints the image installs under are
    # the image's own packages plus ours (tests/test_dockerfile.py)
    assert "torch==" not in dockerfile


def test_cpu_worker_is_an_opt_in_profile_on_the_default_queue(compose: dict[str, Any]) -> None:
    cpu = services(compose)["airflow-worker-cpu"]
    assert cpu["profiles"] == ["cpu"]
    assert worker_queues(cpu) == ["default"]
    assert services(compose)["airflow-worker-hpu"]["profiles"] == ["hpu"]


def test_every_campaign_queue_has_a_worker_of_its_device(compose: dict[str, Any]) -> None:
    """The queue routes benchmark tasks: hpu campaigns must reach the Gaudi worker."""
    by_device = {"hpu": worker_queues(services(compose)["airflow-worker-hpu"]),
                 "cpu": worker_queues(services(compose)["airflow-worker-cpu"])}  # fmt: skip
    found = campaigns()
    hpu = [c for c in found if c["device"] == "hpu"]
    assert hpu, "no campaign with device hpu in dags/campaigns/ (nightly.yaml is expected)"
    for c in found:
        if c["device"] in by_device:
            assert c["queue"] in by_device[c["device"]], (
                f"{c['file']}: queue {c['queue']!r} has no {c['device']} worker"
            )
    assert {c["queue"] for c in hpu} | {"default"} == set(by_device["hpu"])


def test_a_gaudi_only_deployment_runs_every_campaign_task(compose: dict[str, Any]) -> None:
    """plan, detect_regressions and report use the "default" queue: with only
    `--profile hpu` up, the Gaudi workers must serve it, or nightly never starts."""
    assert "default" in worker_queues(services(compose)["airflow-worker-hpu"])


def test_services_running_tasks_get_the_results_db(compose: dict[str, Any]) -> None:
    svc = services(compose)
    results_url = "postgresql://${BENCH_RESULTS_USER:-bench}:${BENCH_RESULTS_PASSWORD:-bench}@${POSTGRES_HOST:-postgres}:5432/${BENCH_RESULTS_DB:-bench_results}"
    # workers run tasks; the api-server serves the trends view; init migrates the schema
    for name in (
        "airflow-worker-hpu",
        "airflow-worker-cpu",
        "airflow-apiserver",
        "airflow-init",
        *CONTROL_PLANE,
    ):
        env = svc[name]["environment"]
        assert env["AIRFLOW_CONN_BENCH_RESULTS"] == results_url, name
        assert env["BENCH_DB_URL"].startswith("postgresql+psycopg2://"), name
    pg = svc["postgres"]
    mounts = [v.split(":")[1] for v in pg["volumes"]]
    assert "/docker-entrypoint-initdb.d/10-init-results-db.sh" in mounts
    assert pg["environment"]["BENCH_RESULTS_DB"] == "${BENCH_RESULTS_DB:-bench_results}"


def test_init_creates_the_pools_before_any_task_needs_them(compose: dict[str, Any]) -> None:
    """A task whose pool does not exist is never scheduled: the "hpu" pool
    (sized by BENCH_HPU_POOL_SLOTS) first, then whatever else a campaign names."""
    script = services(compose)["airflow-init"]["command"][-1]
    hpu = script.index('airflow pools set hpu "$${BENCH_HPU_POOL_SLOTS}"')
    assert hpu < script.index("python -m bench.orchestration.pools")


def test_bench_home_is_on_a_volume_for_every_worker(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name in ("airflow-worker-hpu", "airflow-worker-cpu"):
        svc = services(compose)[name]
        home = svc["environment"]["BENCH_HOME"]
        volumes = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert volumes.get(home) in named, f"{name}: BENCH_HOME {home} is not on a named volume"


def test_results_db_init_script_creates_the_database(pg_server: Any) -> None:
    """docker/postgres/init-results-db.sh against a real Postgres, as the
    official image's entrypoint runs it."""
    import os
    import uuid

    import sqlalchemy as sa

    bash = require_tool("bash")
    url = sa.make_url(pg_server.get_uri())
    suffix = uuid.uuid4().hex[:8]
    user, db = f"bench_{suffix}", f"bench_results_{suffix}"
    env = {
        **os.environ,
        "PATH": f"{pg_server.bin_path}:{os.environ['PATH']}",  # psql of the embedded server
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": url.database or "postgres",
        "PGHOST": str(url.query.get("host") or url.host or "localhost"),
        "PGPORT": str(url.port or 5432),
        "BENCH_RESULTS_USER": user,
        "BENCH_RESULTS_PASSWORD": "s3cret'quote",
        "BENCH_RESULTS_DB": db,
    }
    script = REPO / "docker" / "postgres" / "init-results-db.sh"
    proc = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    admin = sa.create_engine(
        url.set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            owner = conn.execute(
                sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :d"),
                {"d": db},
            ).scalar()
        assert owner == user
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{user}"'))
        admin.dispose()


def test_one_worker_service_per_node_pool(compose: dict[str, Any]) -> None:
    """Fleets (issue 14): a campaign's targets route to per-pool queues; each
    pool has a worker service of its own (the Gaudi ones set up like the hpu
    worker), plus the default queue for the light campaign tasks."""
    svc = services(compose)
    for pool in ("gaudi2", "gaudi3"):
        worker = svc[f"airflow-worker-{pool}"]
        assert worker["profiles"] == [pool]
        assert worker_queues(worker) == [pool, "default"]
        assert worker["runtime"] == "habana" and "HABANA_VISIBLE_DEVICES" in worker["environment"]
        assert (
            worker["environment"]["BENCH_HOME"]
            == svc["airflow-worker-hpu"]["environment"]["BENCH_HOME"]
        )
    assert worker_queues(svc["airflow-worker-cpu"]) == ["default"]
