-- query: latest_vs_previous
-- question: For each configuration, how does the latest night compare with the
--   night before and with the rolling median of the nights before it?
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- param: metric run_metric = ttft_p50_ms  a run_summary metric column (bench.store.queries.RUN_METRICS)
-- param: last int = 7                    nights in the rolling median (before the latest)
-- columns: model, label, fingerprint, run_id, started_at, latest, previous,
--   previous_change_pct, rolling_median, n_baseline, median_change_pct
--   (change_pct = 100 * (latest - reference) / reference; its sign, not its
--   direction of goodness: lower is better for *_ms, higher for *_per_s)
-- index: benchmark_config_model_idx (one model); run_config_ok_started_idx gives
--   each configuration's latest run, the one before and the :last before it.
-- psql: psql "$DB" -v model= -v metric=ttft_p50_ms -v last=7 -f sql/queries/latest_vs_previous.sql
WITH latest AS (
    SELECT bc.id AS config_id,
           bc.model,
           bc.label,
           bc.fingerprint,
           l.run_id,
           l.started_at,
           l.value
    FROM benchmark_config bc
    CROSS JOIN LATERAL (
        SELECT r.id AS run_id, r.started_at, run_metric(s, :'metric') AS value
        FROM run r
        JOIN run_summary s ON s.run_id = r.id
        WHERE r.config_id = bc.id AND r.status = 'ok'
        ORDER BY r.started_at DESC
        LIMIT 1
    ) l
    WHERE NULLIF(:'model', '') IS NULL OR bc.model = :'model'
)
SELECT latest.model,
       latest.label,
       latest.fingerprint,
       latest.run_id,
       latest.started_at,
       latest.value AS latest,
       prev.value AS previous,
       100 * (latest.value - prev.value) / NULLIF(prev.value, 0) AS previous_change_pct,
       base.median AS rolling_median,
       base.n AS n_baseline,
       100 * (latest.value - base.median) / NULLIF(base.median, 0) AS median_change_pct
FROM latest
LEFT JOIN LATERAL (
    SELECT run_metric(s, :'metric') AS value
    FROM run r
    JOIN run_summary s ON s.run_id = r.id
    WHERE r.config_id = latest.config_id AND r.status = 'ok' AND r.started_at < latest.started_at
    ORDER BY r.started_at DESC
    LIMIT 1
) prev ON true
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY h.value) AS median,
           count(h.value) AS n
    FROM (
        SELECT run_metric(s, :'metric') AS value
        FROM run r
        JOIN run_summary s ON s.run_id = r.id
        WHERE r.config_id = latest.config_id AND r.status = 'ok' AND r.started_at < latest.started_at
        ORDER BY r.started_at DESC
        LIMIT :last
    ) h
) base ON true
ORDER BY latest.model, latest.label, latest.fingerprint;
