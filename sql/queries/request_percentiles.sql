-- query: request_percentiles
-- question: What are the p50/p90/p99 of a per-request metric over any time window,
--   recomputed from the request rows (pooling every run in the window)?
-- param: model text                          benchmark_config.model, verbatim
-- param: metric request_metric = ttft_ms     ttft_ms | tpot_ms | e2e_ms | itl_ms (every gap)
-- param: since timestamp = ''                runs started at or after this ('' = no bound)
-- param: until timestamp = ''                runs started before this ('' = no bound)
-- param: fingerprint text = ''               one configuration only ('' = every configuration)
-- columns: label, fingerprint, device_model, cards, n_runs, n_values, p50, p90, p99, mean, first_started_at,
--   last_started_at
--   Successful requests of successful runs only, percentiles by linear interpolation
--   (percentile_cont), as bench.core.metrics computes them: over one run this gives back
--   the run's own summary numbers (itl_ms to float32 precision, its storage type).
-- index: benchmark_config_model_idx, then run_config_ok_started_idx's range scan on
--   (config_id, ...) for the window, then request_result_pkey by run_id.
-- psql: psql "$DB" -v model=llama-2-7b -v metric=ttft_ms -v since=2025-01-01 -v until= \
--   -v fingerprint= -f sql/queries/request_percentiles.sql
WITH runs AS (
    SELECT bc.id AS config_id, bc.label, bc.fingerprint, r.device_model, r.cards,
           r.id AS run_id, r.started_at
    FROM benchmark_config bc
    JOIN run r ON r.config_id = bc.id AND r.status = 'ok'
    WHERE bc.model = :'model'
      AND (NULLIF(:'fingerprint', '') IS NULL OR bc.fingerprint = :'fingerprint')
      AND r.started_at >= COALESCE(NULLIF(:'since', '')::timestamptz, '-infinity')
      AND r.started_at <  COALESCE(NULLIF(:'until', '')::timestamptz, 'infinity')
),
per_config AS (
    SELECT config_id, label, fingerprint, device_model, cards, count(*) AS n_runs, array_agg(run_id) AS run_ids,
           min(started_at) AS first_started_at, max(started_at) AS last_started_at
    FROM runs
    GROUP BY config_id, label, fingerprint, device_model, cards
)
SELECT pc.label,
       pc.fingerprint,
       pc.device_model,
       pc.cards,
       pc.n_runs,
       st.n_values,
       st.q[1] AS p50,
       st.q[2] AS p90,
       st.q[3] AS p99,
       st.mean,
       pc.first_started_at,
       pc.last_started_at
FROM per_config pc
CROSS JOIN LATERAL (
    -- one configuration at a time: no sort by group, one sort for all three
    -- percentiles (percentile_cont skips NULLs, as bench.core.metrics does)
    SELECT count(value) AS n_values,
           percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY value) AS q,
           avg(value) AS mean
    FROM (
        -- one branch runs: the other's constant condition is false at plan time
        SELECT gap::float8 AS value
        FROM request_result rr
        CROSS JOIN LATERAL unnest(rr.itl_ms) AS gap
        WHERE rr.run_id = ANY (pc.run_ids) AND rr.success AND :'metric' = 'itl_ms'
        UNION ALL
        SELECT CASE :'metric' WHEN 'ttft_ms' THEN rr.ttft_ms WHEN 'tpot_ms' THEN rr.tpot_ms
                              WHEN 'e2e_ms' THEN rr.e2e_ms END
        FROM request_result rr
        WHERE rr.run_id = ANY (pc.run_ids) AND rr.success AND :'metric' <> 'itl_ms'
    ) samples
) st
ORDER BY pc.label, pc.fingerprint, pc.device_model, pc.cards;
