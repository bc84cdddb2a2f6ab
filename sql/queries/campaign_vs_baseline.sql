-- query: campaign_vs_baseline
-- question: How did every configuration of one campaign (one night) do against
--   its own history (same configuration, device model and cards): the run
--   before it and the median of the runs before it?
-- param: campaign text                   campaign.dag_run_id (a CLI run's is cli__<run_uid>)
-- param: metric run_metric = ttft_p50_ms  a run_summary metric column (bench.store.queries.RUN_METRICS)
-- param: last int = 7                    earlier runs of the same configuration in the median
-- columns: model, label, fingerprint, device_model, cards, target, run_id, status, error, started_at, current,
--   previous, previous_change_pct, baseline_median, n_baseline, median_change_pct
--   (failed/oom/timeout runs are listed with a NULL current value; the label
--   ends in @<target> for a campaign with targets)
-- index: campaign_dag_run_id_key finds the campaign; run_campaign_config_key its
--   runs; run_config_ok_started_idx the :last earlier ok runs of each config
--   (one scan each, inside config_baseline(), migration 009).
-- psql: psql "$DB" -v campaign=scheduled__2025-01-02T02:00:00+00:00 -v metric=ttft_p50_ms \
--   -v last=7 -f sql/queries/campaign_vs_baseline.sql
SELECT bc.model,
       bc.label || CASE WHEN r.target <> '' THEN '@' || r.target ELSE '' END AS label,
       bc.fingerprint,
       r.device_model,
       r.cards,
       r.target,
       r.id AS run_id,
       r.status,
       r.error,
       r.started_at,
       cur.value AS current,
       base.previous,
       100 * (cur.value - base.previous) / NULLIF(base.previous, 0) AS previous_change_pct,
       base.median AS baseline_median,
       base.n_baseline,
       100 * (cur.value - base.median) / NULLIF(base.median, 0) AS median_change_pct
FROM campaign c
JOIN run r ON r.campaign_id = c.id
JOIN benchmark_config bc ON bc.id = r.config_id
LEFT JOIN run_summary s ON s.run_id = r.id AND r.status = 'ok'
CROSS JOIN LATERAL (SELECT run_metric(s, :'metric') AS value) cur
-- previous run, median and count of the :last before it in its history (migration 014)
CROSS JOIN LATERAL config_baseline(r.config_id, r.device_model, r.cards, :'metric', r.started_at, :last) base
WHERE c.dag_run_id = :'campaign'
ORDER BY bc.model, bc.label, bc.fingerprint, r.target, r.device_model, r.cards;
