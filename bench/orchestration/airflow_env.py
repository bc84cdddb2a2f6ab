"""Run Airflow for this project: ``python -m bench.orchestration.airflow_env <airflow args>``.

Sets up the environment every local entry point shares (``make airflow``,
``make demo``, the tests): AIRFLOW_HOME under ``$BENCH_HOME``, this repo's
``dags/`` and ``plugins/``, no examples, LocalExecutor, and the Airflow
metadata DB as database ``airflow`` on the same embedded Postgres that holds
the results (or on the server ``BENCH_DB_URL`` points at). Nothing here
imports Airflow; it only prepares variables and runs the ``airflow`` CLI.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from bench.paths import bench_home

REPO = Path(__file__).resolve().parents[2]
ADMIN_USER = "admin"
#: Airflow's ``[logging] namespace_levels``: what the campaign's tasks log
#: (logger "bench": configuration, progress, result tables, verdicts, the
#: report's URL) reaches their task logs even with Airflow itself at WARNING.
TASK_LOG_LEVELS = "bench=INFO"


def airflow_home() -> Path:
    return bench_home() / "airflow"


def _metadata_url(results_url: str) -> str:
    """Database ``airflow`` on the results server (created when missing)."""
    url = sa.make_url(results_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = 'airflow'")
            ).scalar()
            if not exists:
                conn.execute(sa.text("CREATE DATABASE airflow"))
    finally:
        engine.dispose()
    return url.set(database="airflow").render_as_string(hide_password=False)


def _secret(home: Path, name: str) -> str:
    """A per-installation secret kept in AIRFLOW_HOME, shared by all components."""
    path = home / f".{name}"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def admin_password(home: Path | None = None) -> str:
    """The local admin password (simple auth manager), generated once."""
    home = home or airflow_home()
    path = home / "passwords.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}))
        path.chmod(0o600)
    return str(json.loads(path.read_text())[ADMIN_USER])


def airflow_environ(*, api_port: int = 8080) -> dict[str, str]:
    """os.environ plus everything Airflow needs to run this project locally."""
    from bench.store.db import resolve_url

    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    results_url = resolve_url()
    admin_password(home)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "BENCH_HOME": str(bench_home()),
            "BENCH_DB_URL": results_url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _metadata_url(results_url),
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home, "jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": _secret(home, "api_secret"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # Airflow's own chatter at WARNING, not the benchmark's
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get(
                "AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"
            ),
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": env.get(
                "AIRFLOW__LOGGING__NAMESPACE_LEVELS", TASK_LOG_LEVELS
            ),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            # `airflow standalone` starts its components as `airflow ...` from PATH
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
            "TOKENIZERS_PARALLELISM": "false",
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )
    return env


def airflow_bin() -> str:
    found = shutil.which("airflow", path=str(Path(sys.executable).parent)) or shutil.which(
        "airflow"
    )
    if not found:
        raise SystemExit(
            "airflow is not installed in this environment (pip install -e '.[airflow]')"
        )
    return found


def run_airflow(
    args: list[str], env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([airflow_bin(), *args], env=env or airflow_environ(), text=True, **kwargs)  # type: ignore[call-overload]


def migrate(env: dict[str, str]) -> None:
    """``airflow db migrate`` once per metadata DB (it is idempotent, just slow)."""
    run_airflow(["db", "migrate"], env=env, check=True, capture_output=True)


def main(argv: list[str]) -> int:
    env = airflow_environ(api_port=int(os.environ.get("AIRFLOW_PORT", "8080")))
    migrate(env)
    if argv[:1] == ["standalone"]:
        print(
            f"Airflow UI: http://localhost:{env['AIRFLOW__API__PORT']}  user {ADMIN_USER}, "
            f"password {admin_password()}  (kept in {airflow_home() / 'passwords.json'})",
            flush=True,
        )
    return subprocess.call([airflow_bin(), *argv], env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
