-- query: metric_series
-- question: How has one metric of a model moved, run by run (night by night),
--   in each of its configurations?
-- param: model text                      benchmark_config.model, verbatim
-- param: metric run_metric = ttft_p50_ms  a run_summary metric column (bench.store.queries.RUN_METRICS)
-- param: last int = 30                   newest successful runs kept per configuration
-- param: fingerprint text = ''           one configuration only ('' = every configuration of the model)
-- columns: label, fingerprint, run_id, started_at, dag_run_id, value
--   (oldest first within each configuration)
-- index: benchmark_config_model_idx finds the model's configurations;
--   run_config_ok_started_idx reads each one's newest :last ok runs backwards,
--   so the cost follows :last x configurations, not the years of history.
-- psql: psql "$DB" -v model=llama-2-7b -v metric=ttft_p50_ms -v last=30 -v fingerprint= \
--   -f sql/queries/metric_series.sql
SELECT bc.label,
       bc.fingerprint,
       t.run_id,
       t.started_at,
       c.dag_run_id,
       t.value
FROM benchmark_config bc
CROSS JOIN LATERAL (
    -- run + run_summary rather than v_run_trend: two joins to plan, not five
    SELECT r.id AS run_id,
           r.campaign_id,
           r.started_at,
           run_metric(s, :'metric') AS value
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = bc.id AND r.status = 'ok'
    ORDER BY r.started_at DESC
    LIMIT :last
) t
JOIN campaign c ON c.id = t.campaign_id
WHERE bc.model = :'model'
  AND (NULLIF(:'fingerprint', '') IS NULL OR bc.fingerprint = :'fingerprint')
ORDER BY bc.label, bc.fingerprint, t.started_at;
