-- One attempt at one configuration within one campaign. A retried Airflow
-- task replaces its run (UNIQUE(campaign_id, config_id)); failed, oom and
-- timed-out runs are rows too, with the error text and no summary.
CREATE TABLE run (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_uid        text NOT NULL,                    -- the attempt id in the result file
    campaign_id    bigint NOT NULL REFERENCES campaign (id) ON DELETE CASCADE,
    config_id      bigint NOT NULL REFERENCES benchmark_config (id),
    environment_id bigint REFERENCES environment (id), -- NULL when the child died first
    status         text NOT NULL CHECK (status IN ('ok', 'failed', 'oom', 'timeout')),
    error          text,
    started_at     timestamptz NOT NULL,             -- start of the measured window
    finished_at    timestamptz NOT NULL,
    warmup_s       double precision,
    prompt_set     jsonb NOT NULL DEFAULT '{}'::jsonb, -- name, sha, n_prompts, n_requests
    config         jsonb NOT NULL,                   -- the full RunConfig as run
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    -- Serves the loader's "already loaded?" check (loading is idempotent by run_uid).
    CONSTRAINT run_run_uid_key UNIQUE (run_uid),
    -- A retry replaces, never duplicates. Its leading campaign_id also serves
    -- campaign_vs_baseline.sql ("the runs of campaign C").
    CONSTRAINT run_campaign_config_key UNIQUE (campaign_id, config_id)
);

-- Serves every trend query's "newest N ok runs of config X" (and "ok runs of
-- X in a time window"): a backward range scan whose cost depends on N, not on
-- how many years of nights the table holds.
CREATE INDEX run_config_ok_started_idx ON run (config_id, started_at DESC) WHERE status = 'ok';
COMMENT ON INDEX run_config_ok_started_idx IS
    'metric_series, latest_vs_previous, campaign_vs_baseline, best_batch_size, request_percentiles: newest ok runs of a config';
