-- query: latest_vs_previous
-- question: For each configuration on each device model, how does the latest night compare with the
--   night before and with the rolling median of the nights before it?
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- param: metric run_metric = ttft_p50_ms  a run_summary metric column (bench.store.queries.RUN_METRICS)
-- param: last int = 7                    nights in the rolling median (before the latest)
-- columns: model, label, fingerprint, device_model, cards, run_id, started_at, latest, previous,
--   previous_change_pct, rolling_median, n_baseline, median_change_pct
--   (change_pct = 100 * (latest - reference) / reference; its sign, not its
--   direction of goodness: lower is better for *_ms, higher for *_per_s)
-- index: benchmark_config_model_idx (one model); run_config_ok_started_idx gives
--   each configuration's latest run (config_runs()) and, in one more scan, the
--   one before and the :last before it (config_baseline(); both migration 009).
-- psql: psql "$DB" -v model= -v metric=ttft_p50_ms -v last=7 -f sql/queries/latest_vs_previous.sql
SELECT bc.model,
       bc.label,
       bc.fingerprint,
       h.device_model,
       h.cards,
       latest.run_id,
       latest.started_at,
       latest.value AS latest,
       base.previous,
       100 * (latest.value - base.previous) / NULLIF(base.previous, 0) AS previous_change_pct,
       base.median AS rolling_median,
       base.n_baseline,
       100 * (latest.value - base.median) / NULLIF(base.median, 0) AS median_change_pct
FROM history h
JOIN benchmark_config bc ON bc.id = h.config_id
-- the newest ok run, then the one before and the :last before it (migration 014)
CROSS JOIN LATERAL config_runs(bc.id, h.device_model, h.cards, :'metric', 'infinity', 1) latest
CROSS JOIN LATERAL config_baseline(bc.id, h.device_model, h.cards, :'metric', latest.started_at, :last) base
WHERE NULLIF(:'model', '') IS NULL OR bc.model = :'model'
ORDER BY bc.model, bc.label, bc.fingerprint, h.device_model, h.cards;
