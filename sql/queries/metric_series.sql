-- query: metric_series
-- question: How has one metric of a model moved, run by run (night by night),
--   in each of its configurations, per device model and card count?
-- param: model text                      benchmark_config.model, verbatim
-- param: metric run_metric = ttft_p50_ms  a run_summary metric column (bench.store.queries.RUN_METRICS)
-- param: last int = 30                   newest successful runs kept per configuration
-- param: fingerprint text = ''           one configuration only ('' = every configuration of the model)
-- param: device_model text = ''          one device model only ('' = every one; run.device_model)
-- columns: label, fingerprint, device_model, cards, run_id, started_at, dag_run_id, value
--   (oldest first within each history: configuration, device model, cards)
-- index: benchmark_config_model_idx finds the model's configurations;
--   run_config_ok_started_idx reads each one's newest :last ok runs backwards,
--   so the cost follows :last x configurations, not the years of history.
-- psql: psql "$DB" -v model=llama-2-7b -v metric=ttft_p50_ms -v last=30 -v fingerprint= -v device_model= \
--   -f sql/queries/metric_series.sql
SELECT bc.label,
       bc.fingerprint,
       h.device_model,
       h.cards,
       t.run_id,
       t.started_at,
       c.dag_run_id,
       t.value
FROM history h
JOIN benchmark_config bc ON bc.id = h.config_id
CROSS JOIN LATERAL (
    -- run + run_summary rather than v_run_trend: two joins to plan, not five
    SELECT r.id AS run_id,
           r.campaign_id,
           r.started_at,
           run_metric(s, :'metric') AS value
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = h.config_id AND r.device_model = h.device_model AND r.cards = h.cards
      AND r.status = 'ok'
    ORDER BY r.started_at DESC
    LIMIT :last
) t
JOIN campaign c ON c.id = t.campaign_id
WHERE bc.model = :'model'
  AND (NULLIF(:'fingerprint', '') IS NULL OR bc.fingerprint = :'fingerprint')
  AND (NULLIF(:'device_model', '') IS NULL OR h.device_model = :'device_model')
ORDER BY bc.label, bc.fingerprint, h.device_model, h.cards, t.started_at;
