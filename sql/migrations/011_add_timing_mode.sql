-- Timing modes (bench run --timing stream|events|dual; README "Timing modes").
--
-- benchmark_config.timing: how token times were taken. Every configuration
-- stored before this migration was timed by the streamer, hence the default.
-- The fingerprint already tells modes apart (RunConfig.identity); the column
-- lets SQL filter and group on it.
ALTER TABLE benchmark_config ADD COLUMN timing text NOT NULL DEFAULT 'stream';

-- run_summary.streamed_vs_bare_ratio: under timing dual, the wall time of the
-- streamed passes over that of the bare passes of the same requests (1.0:
-- observing every token costs nothing). NULL in the other modes.
ALTER TABLE run_summary ADD COLUMN streamed_vs_bare_ratio double precision;

-- run_metric (008) learns the new column, as 008's header asks.
CREATE OR REPLACE FUNCTION run_metric(s run_summary, name text) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE name
        WHEN 'n_requests' THEN s.n_requests::float8
        WHEN 'n_failed' THEN s.n_failed::float8
        WHEN 'input_tokens_total' THEN s.input_tokens_total::float8
        WHEN 'output_tokens_total' THEN s.output_tokens_total::float8
        WHEN 'duration_s' THEN s.duration_s
        WHEN 'output_tokens_per_s' THEN s.output_tokens_per_s
        WHEN 'requests_per_s' THEN s.requests_per_s
        WHEN 'ttft_mean_ms' THEN s.ttft_mean_ms
        WHEN 'ttft_p50_ms' THEN s.ttft_p50_ms
        WHEN 'ttft_p90_ms' THEN s.ttft_p90_ms
        WHEN 'ttft_p95_ms' THEN s.ttft_p95_ms
        WHEN 'ttft_p99_ms' THEN s.ttft_p99_ms
        WHEN 'tpot_mean_ms' THEN s.tpot_mean_ms
        WHEN 'tpot_p50_ms' THEN s.tpot_p50_ms
        WHEN 'tpot_p90_ms' THEN s.tpot_p90_ms
        WHEN 'tpot_p95_ms' THEN s.tpot_p95_ms
        WHEN 'tpot_p99_ms' THEN s.tpot_p99_ms
        WHEN 'itl_mean_ms' THEN s.itl_mean_ms
        WHEN 'itl_p50_ms' THEN s.itl_p50_ms
        WHEN 'itl_p90_ms' THEN s.itl_p90_ms
        WHEN 'itl_p95_ms' THEN s.itl_p95_ms
        WHEN 'itl_p99_ms' THEN s.itl_p99_ms
        WHEN 'e2e_mean_ms' THEN s.e2e_mean_ms
        WHEN 'e2e_p50_ms' THEN s.e2e_p50_ms
        WHEN 'e2e_p90_ms' THEN s.e2e_p90_ms
        WHEN 'e2e_p95_ms' THEN s.e2e_p95_ms
        WHEN 'e2e_p99_ms' THEN s.e2e_p99_ms
        WHEN 'goodput_requests_per_s' THEN s.goodput_requests_per_s
        WHEN 'goodput_fraction' THEN s.goodput_fraction
        WHEN 'peak_memory_bytes' THEN s.peak_memory_bytes::float8
        WHEN 'energy_j' THEN s.energy_j
        WHEN 'energy_j_per_token' THEN s.energy_j_per_token
        WHEN 'streamed_vs_bare_ratio' THEN s.streamed_vs_bare_ratio
    END
$$;

-- v_run_trend (007) gains both, appended (CREATE OR REPLACE VIEW keeps the
-- existing columns in place).
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
    s.streamed_vs_bare_ratio
FROM run r
JOIN campaign c          ON c.id = r.campaign_id
JOIN benchmark_config bc ON bc.id = r.config_id
JOIN run_summary s       ON s.run_id = r.id
LEFT JOIN environment e  ON e.id = r.environment_id
WHERE r.status = 'ok';
