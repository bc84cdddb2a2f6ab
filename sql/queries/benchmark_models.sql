-- query: benchmark_models
-- question: Which models have results, in how many configurations, and when did
--   each last run successfully?
-- columns: model, n_configs, last_started_at
--   (last_started_at is NULL for a model none of whose runs succeeded)
-- index: benchmark_config is one row per configuration (small); for each one
--   run_config_ok_started_idx gives its newest ok run in one index probe.
-- psql: psql "$DB" -f sql/queries/benchmark_models.sql
SELECT bc.model,
       count(*) AS n_configs,
       max(l.started_at) AS last_started_at
FROM benchmark_config bc
LEFT JOIN LATERAL (
    SELECT r.started_at
    FROM run r
    WHERE r.config_id = bc.id AND r.status = 'ok'
    ORDER BY r.started_at DESC
    LIMIT 1
) l ON true
GROUP BY bc.model
ORDER BY bc.model;
