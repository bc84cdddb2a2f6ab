-- What a run belongs to (campaign), what it measured (benchmark_config) and
-- what it ran on (environment). Configs and environments are keyed by their
-- fingerprints, so every night's runs of one configuration share one row and
-- a trend is "the runs of one config_id".

-- One Airflow DAG run (or one `bench run` from the shell: dag_run_id
-- "cli__<run_uid>", trigger "cli", no dag_id).
CREATE TABLE campaign (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id      text,
    dag_run_id  text NOT NULL,
    trigger     text NOT NULL DEFAULT 'cli',       -- scheduled | manual | cli ...
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb, -- the trigger form's values
    -- Serves the writer's upsert by dag_run_id and campaign_vs_baseline.sql's lookup.
    CONSTRAINT campaign_dag_run_id_key UNIQUE (dag_run_id)
);

-- One comparable configuration: bench.config.RunConfig.identity() hashed into
-- `fingerprint`. The contract columns (model .. options) are copied out of
-- `identity` so SQL can filter and group on them.
CREATE TABLE benchmark_config (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint    text NOT NULL,
    model          text NOT NULL,
    precision      text NOT NULL,
    batch_size     integer NOT NULL,
    max_new_tokens integer NOT NULL,
    backend        text NOT NULL,
    device         text NOT NULL,
    options        jsonb NOT NULL DEFAULT '{}'::jsonb,
    world_size     integer NOT NULL DEFAULT 1,
    concurrency    integer,                          -- openai backend: requests in flight
    request_rate   double precision,                 -- openai backend: arrivals per second
    ignore_eos     boolean,
    seed           integer,
    prompt_set_sha text,                             -- sha256 of the prompt set's content
    n_requests     integer,                          -- measured requests per run
    label          text NOT NULL,                    -- e.g. llama-2-7b/bf16/bs8
    identity       jsonb NOT NULL,                   -- exactly what `fingerprint` hashes
    -- Serves the writer's upsert by fingerprint and every query's `fingerprint` filter.
    CONSTRAINT benchmark_config_fingerprint_key UNIQUE (fingerprint)
);

-- Serves metric_series, latest_vs_previous, best_batch_size and
-- request_percentiles: "the configurations of model M".
CREATE INDEX benchmark_config_model_idx ON benchmark_config (model);
COMMENT ON INDEX benchmark_config_model_idx IS
    'metric_series, latest_vs_previous, best_batch_size, request_percentiles: configs of one model';

-- bench.environment.capture_environment(); `fingerprint` is the sha256 of the
-- rest of that record, so a driver or package upgrade starts a new row.
CREATE TABLE environment (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint     text NOT NULL,
    host            text,
    device          text,
    device_name     text,
    device_count    integer,
    driver_version  text,
    runtime_version text,
    python_version  text,
    platform        text,
    git_sha         text,                            -- this project's commit
    packages        jsonb NOT NULL DEFAULT '{}'::jsonb, -- distribution -> version
    extra           jsonb NOT NULL DEFAULT '{}'::jsonb, -- backend-specific facts
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    -- Serves the writer's upsert by fingerprint.
    CONSTRAINT environment_fingerprint_key UNIQUE (fingerprint)
);
