-- The pieces the trend queries share, declared once: "a configuration's
-- newest successful runs before a time" (config_runs), "the run before and
-- the median of the N before" (config_baseline) and "each configuration's
-- latest successful run" (v_latest_run). The named queries in sql/queries/
-- and ad-hoc psql or Grafana queries read them.
--
-- Cost: both functions are LANGUAGE sql, STABLE, not STRICT, a single
-- SELECT, so the planner inlines them into the calling query like a LATERAL
-- subquery written out by hand: the metric name folds to one column through
-- run_metric() and each call is a short backward scan of
-- run_config_ok_started_idx (docs/performance.md has the before/after).
-- Parameter names carry a p_ prefix: in a SQL function a column of the same
-- name would win over an argument.

-- config_runs(config, metric, before, n): the n newest ok runs of configuration
-- `config` that started before `before` ('infinity': no bound), newest first,
-- with the run_summary column named `metric` (run_metric's names).
CREATE FUNCTION config_runs(p_config_id bigint, p_metric text, p_before timestamptz, p_n bigint)
RETURNS TABLE (run_id bigint, campaign_id bigint, started_at timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.id, r.campaign_id, r.started_at, run_metric(s, p_metric)
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = p_config_id AND r.status = 'ok' AND r.started_at < p_before
    ORDER BY r.started_at DESC
    LIMIT p_n
$$;
COMMENT ON FUNCTION config_runs(bigint, text, timestamptz, bigint) IS
    'newest ok runs of a configuration before a time, with one metric; reads run_config_ok_started_idx';

-- config_baseline(config, metric, before, n): what a run is compared with, one
-- row: `previous` (the metric of the newest ok run before `before`, NULL when
-- none), `median` and `n_baseline` (median and count of the non-NULL values of
-- the n newest ok runs before `before`). One index scan serves both.
CREATE FUNCTION config_baseline(p_config_id bigint, p_metric text, p_before timestamptz, p_n bigint)
RETURNS TABLE (previous double precision, median double precision, n_baseline bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (array_agg(h.value ORDER BY h.started_at DESC))[1],
           percentile_cont(0.5) WITHIN GROUP (ORDER BY h.value),
           count(h.value)
    FROM config_runs(p_config_id, p_metric, p_before, p_n) h
$$;
COMMENT ON FUNCTION config_baseline(bigint, text, timestamptz, bigint) IS
    'previous value, median and count of a configuration''s n ok runs before a time';

-- One row per configuration that has a successful run: its contract columns,
-- its newest ok run and that run's summary numbers ("where does each
-- configuration stand now", for best_batch_size, latest_per_config and a
-- Grafana table). A filter on model (benchmark_config_model_idx) or
-- config_id reaches the base table; each configuration then costs one probe
-- of run_config_ok_started_idx and one of run_summary's key. A migration
-- that adds a run_summary column recreates this view to show it.
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
       l.*
FROM benchmark_config bc
CROSS JOIN LATERAL (
    SELECT r.id AS run_id,
           r.campaign_id,
           r.started_at,
           s.n_requests, s.n_failed, s.input_tokens_total, s.output_tokens_total, s.duration_s,
           s.output_tokens_per_s, s.requests_per_s,
           s.ttft_mean_ms, s.ttft_p50_ms, s.ttft_p90_ms, s.ttft_p95_ms, s.ttft_p99_ms,
           s.tpot_mean_ms, s.tpot_p50_ms, s.tpot_p90_ms, s.tpot_p95_ms, s.tpot_p99_ms,
           s.itl_mean_ms,  s.itl_p50_ms,  s.itl_p90_ms,  s.itl_p95_ms,  s.itl_p99_ms,
           s.e2e_mean_ms,  s.e2e_p50_ms,  s.e2e_p90_ms,  s.e2e_p95_ms,  s.e2e_p99_ms,
           s.goodput_requests_per_s, s.goodput_fraction,
           s.peak_memory_bytes, s.energy_j, s.energy_j_per_token
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = bc.id AND r.status = 'ok'
    ORDER BY r.started_at DESC
    LIMIT 1
) l;
