#!/usr/bin/env bash
# Runs once, when the Postgres volume is first initialised (the official
# image executes /docker-entrypoint-initdb.d/*.sh): the benchmark results DB
# beside Airflow's metadata DB, owned by its own role. Its tables are created
# by `bench db upgrade` (airflow-init runs it).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v results_user="${BENCH_RESULTS_USER:?}" \
  -v results_password="${BENCH_RESULTS_PASSWORD:?}" \
  -v results_db="${BENCH_RESULTS_DB:?}" <<'SQL'
CREATE ROLE :"results_user" LOGIN PASSWORD :'results_password';
CREATE DATABASE :"results_db" OWNER :"results_user";
SQL
