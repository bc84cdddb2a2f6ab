-- Outputs: what each request generated, beside its timings (README "Outputs").
--
-- request_result.output_ids: the generated token ids, little-endian uint32,
-- 4 bytes a token (bench.core.records.pack_token_ids); NULL when the run kept
-- no outputs (--no-outputs) or the backend had no ids (an endpoint without a
-- tokenizer). bytea rather than int4[]: no 20-byte array header and no
-- per-element length on the COPY wire, and Postgres compresses it (TOAST)
-- when a row outgrows 2 kB. docs/performance.md gives the table growth per
-- 1,000 requests.
-- request_result.output_sha: sha256 of the output (32 bytes): of its ids in
-- that form, so sha256(output_ids) = output_sha, or of its text for an
-- endpoint. Kept even with --no-outputs: output drift detection reads it.
-- request_result.output_text: what an endpoint streamed; NULL otherwise.
-- New columns without defaults: no table rewrite. The checks are NOT VALID
-- because every existing row holds NULL there; new rows are checked.
ALTER TABLE request_result
    ADD COLUMN output_sha bytea,
    ADD COLUMN output_ids bytea,
    ADD COLUMN output_text text;
ALTER TABLE request_result
    ADD CONSTRAINT request_result_output_sha_check CHECK (octet_length(output_sha) = 32) NOT VALID;
ALTER TABLE request_result
    ADD CONSTRAINT request_result_output_ids_check CHECK (octet_length(output_ids) % 4 = 0) NOT VALID;

-- run.output_sha: sha256 of the run's request digests in request order (a
-- request without one counts as 32 zero bytes); what the gate compares with
-- the previous run of the configuration before it reads any request.
ALTER TABLE run ADD COLUMN output_sha bytea;

-- Agreement with the same configuration at the campaign's reference
-- precision, written by the gate once the campaign's runs are in: the mean
-- fraction of each request's tokens before the first divergence, and the
-- fraction of requests identical. NULL without a reference run.
ALTER TABLE run_summary
    ADD COLUMN output_prefix_match double precision,
    ADD COLUMN output_exact_match double precision;

-- run_metric (008) learns the new columns, 011's streamed_vs_bare_ratio and these,
-- as 008's header asks.
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
        WHEN 'output_prefix_match' THEN s.output_prefix_match
        WHEN 'output_exact_match' THEN s.output_exact_match
    END
$$;

-- v_run_trend (007) shows both from migration 014 on, which restates it once
-- for 011, 013 and 014.
