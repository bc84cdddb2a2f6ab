-- Fleets: one history per device model and card count, and runs routed to
-- a campaign's targets (README "What makes two runs comparable").
--
-- A configuration's fingerprint is computed when the plan task expands the
-- campaign, before any node is chosen, so it cannot hold the device model.
-- A run stores what it ran on instead, taken from its environment when it is
-- loaded: run.device_model (hl-smi's HL-225 / HL-325L, the CUDA device name,
-- the CPU model; environment.device_name) and run.cards (the cards the run
-- saw; environment.device_count). The history of a configuration is then
-- keyed by (config_id, device_model, cards): a Gaudi2 night and a Gaudi3
-- night of one configuration are two histories, never one baseline.
-- '' and 0 mean "not known" (a run that died before its environment was
-- captured); they are values, not NULLs, so that every history lookup is a
-- plain equality on the index below.
ALTER TABLE run ADD COLUMN device_model text NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN cards integer NOT NULL DEFAULT 0;
-- The campaign target (targets: [{name, queue, device, pool}]) the run was
-- routed to; '' for a campaign without targets. Two targets run the same
-- configuration in one campaign, so the slot a retry replaces is
-- (campaign, config, target).
ALTER TABLE run ADD COLUMN target text NOT NULL DEFAULT '';

-- Existing history: derived from each run's stored environment.
UPDATE run r
SET device_model = coalesce(e.device_name, ''), cards = coalesce(e.device_count, 0)
FROM environment e
WHERE e.id = r.environment_id;

ALTER TABLE run DROP CONSTRAINT run_campaign_config_key;
-- A retry replaces, never duplicates; its leading campaign_id serves
-- campaign_vs_baseline.sql ("the runs of campaign C").
ALTER TABLE run ADD CONSTRAINT run_campaign_config_key UNIQUE (campaign_id, config_id, target);

-- Serves every trend query's "newest N ok runs of one history": a backward
-- range scan whose cost follows N, not the years of nights.
DROP INDEX run_config_ok_started_idx;
CREATE INDEX run_config_ok_started_idx
    ON run (config_id, device_model, cards, started_at DESC) WHERE status = 'ok';
COMMENT ON INDEX run_config_ok_started_idx IS
    'metric_series, latest_vs_previous, campaign_vs_baseline, config_history, best_batch_size: newest ok runs of a history';

-- One row per history (a configuration on one device model and card count)
-- that has a successful run: what the "every configuration" queries walk.
-- The writer adds a row with each ok run it loads.
CREATE TABLE history (
    config_id     bigint NOT NULL REFERENCES benchmark_config (id),
    device_model  text NOT NULL,
    cards         integer NOT NULL,
    first_seen_at timestamptz NOT NULL,
    -- Serves the writer's upsert and every query's join from a configuration.
    PRIMARY KEY (config_id, device_model, cards)
);
INSERT INTO history (config_id, device_model, cards, first_seen_at)
SELECT config_id, device_model, cards, min(started_at)
FROM run
WHERE status = 'ok' AND config_id IS NOT NULL
GROUP BY config_id, device_model, cards;

-- config_runs / config_baseline (009) take the history key: a baseline never
-- mixes device models. The old signatures go, so no caller mixes them by
-- mistake.
DROP FUNCTION config_baseline(bigint, text, timestamptz, bigint);
DROP FUNCTION config_runs(bigint, text, timestamptz, bigint);

CREATE FUNCTION config_runs(
    p_config_id bigint, p_device_model text, p_cards integer,
    p_metric text, p_before timestamptz, p_n bigint)
RETURNS TABLE (run_id bigint, campaign_id bigint, started_at timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.id, r.campaign_id, r.started_at, run_metric(s, p_metric)
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = p_config_id AND r.device_model = p_device_model AND r.cards = p_cards
      AND r.status = 'ok' AND r.started_at < p_before
    ORDER BY r.started_at DESC
    LIMIT p_n
$$;
COMMENT ON FUNCTION config_runs(bigint, text, integer, text, timestamptz, bigint) IS
    'newest ok runs of a history (configuration, device model, cards) before a time, with one metric; reads run_config_ok_started_idx';

CREATE FUNCTION config_baseline(
    p_config_id bigint, p_device_model text, p_cards integer,
    p_metric text, p_before timestamptz, p_n bigint)
RETURNS TABLE (previous double precision, median double precision, n_baseline bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (array_agg(h.value ORDER BY h.started_at DESC))[1],
           percentile_cont(0.5) WITHIN GROUP (ORDER BY h.value),
           count(h.value)
    FROM config_runs(p_config_id, p_device_model, p_cards, p_metric, p_before, p_n) h
$$;
COMMENT ON FUNCTION config_baseline(bigint, text, integer, text, timestamptz, bigint) IS
    'previous value, median and count of a history''s n ok runs before a time';

-- v_latest_run (009): one row per history, with its device model and cards.
DROP VIEW v_latest_run;
CREATE VIEW v_latest_run AS
SELECT bc.id AS config_id,
       bc.fingerprint,
       bc.label,
       bc.model,
       bc.precision,
       bc.batch_size,
       bc.max_new_tokens,
       bc.backend,
       bc.device,
       bc.world_size,
       bc.concurrency,
       bc.request_rate,
       h.device_model,
       h.cards,
       l.*
FROM history h
JOIN benchmark_config bc ON bc.id = h.config_id
CROSS JOIN LATERAL (
    SELECT r.id AS run_id,
           r.campaign_id,
           r.started_at,
           r.target,
           s.n_requests, s.n_failed, s.input_tokens_total, s.output_tokens_total, s.duration_s,
           s.output_tokens_per_s, s.requests_per_s,
           s.ttft_mean_ms, s.ttft_p50_ms, s.ttft_p90_ms, s.ttft_p95_ms, s.ttft_p99_ms,
           s.tpot_mean_ms, s.tpot_p50_ms, s.tpot_p90_ms, s.tpot_p95_ms, s.tpot_p99_ms,
           s.itl_mean_ms,  s.itl_p50_ms,  s.itl_p90_ms,  s.itl_p95_ms,  s.itl_p99_ms,
           s.e2e_mean_ms,  s.e2e_p50_ms,  s.e2e_p90_ms,  s.e2e_p95_ms,  s.e2e_p99_ms,
           s.goodput_requests_per_s, s.goodput_fraction,
           s.peak_memory_bytes, s.energy_j, s.energy_j_per_token,
           s.streamed_vs_bare_ratio
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = h.config_id AND r.device_model = h.device_model AND r.cards = h.cards
      AND r.status = 'ok'
    ORDER BY r.started_at DESC
    LIMIT 1
) l;

-- v_run_trend (007) gains, appended in this order, the columns of 011 (timing,
-- streamed_vs_bare_ratio), 013 (the output digests and matches) and this
-- migration (the history key and the target): one restatement for the three.
CREATE OR REPLACE VIEW v_run_trend AS
SELECT
    r.id                 AS run_id,
    r.run_uid,
    r.started_at,
    r.finished_at,
    c.id                 AS campaign_id,
    c.dag_id,
    c.dag_run_id,
    c.trigger,
    c.started_at         AS campaign_started_at,
    bc.id                AS config_id,
    bc.fingerprint,
    bc.label,
    bc.model,
    bc.precision,
    bc.batch_size,
    bc.max_new_tokens,
    bc.backend,
    bc.device,
    bc.world_size,
    bc.concurrency,
    bc.request_rate,
    bc.prompt_set_sha,
    e.id                 AS environment_id,
    e.fingerprint        AS environment_fingerprint,
    e.host,
    e.device_name,
    e.device_count,
    e.driver_version,
    e.runtime_version,
    e.git_sha,
    s.n_requests,
    s.n_failed,
    s.input_tokens_total,
    s.output_tokens_total,
    s.duration_s,
    s.output_tokens_per_s,
    s.requests_per_s,
    s.ttft_mean_ms, s.ttft_p50_ms, s.ttft_p90_ms, s.ttft_p95_ms, s.ttft_p99_ms,
    s.tpot_mean_ms, s.tpot_p50_ms, s.tpot_p90_ms, s.tpot_p95_ms, s.tpot_p99_ms,
    s.itl_mean_ms,  s.itl_p50_ms,  s.itl_p90_ms,  s.itl_p95_ms,  s.itl_p99_ms,
    s.e2e_mean_ms,  s.e2e_p50_ms,  s.e2e_p90_ms,  s.e2e_p95_ms,  s.e2e_p99_ms,
    s.goodput_requests_per_s,
    s.goodput_fraction,
    s.peak_memory_bytes,
    s.energy_j,
    s.energy_j_per_token,
    bc.timing,
    s.streamed_vs_bare_ratio,
    s.output_prefix_match,  -- 013
    s.output_exact_match,
    r.device_model,
    r.cards,
    r.target
FROM run r
JOIN campaign c          ON c.id = r.campaign_id
JOIN benchmark_config bc ON bc.id = r.config_id
JOIN run_summary s       ON s.run_id = r.id
LEFT JOIN environment e  ON e.id = r.environment_id
WHERE r.status = 'ok';
