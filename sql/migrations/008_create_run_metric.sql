-- run_metric(s, name): the run_summary column called `name`, as float8 (NULL
-- for an unknown name). It lets a named query take its metric as a parameter
-- (psql -v metric=ttft_p50_ms) and still read a single column: Postgres
-- inlines this SQL function and folds the CASE on a constant name down to
-- that one column, where to_jsonb(s) ->> name would build a JSON document
-- per row (measured: 3x slower on campaign_vs_baseline). A migration that
-- adds a metric column to run_summary must CREATE OR REPLACE this too
-- (tests/store check every RunMetrics field resolves).
CREATE FUNCTION run_metric(s run_summary, name text) RETURNS double precision
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
    END
$$;
