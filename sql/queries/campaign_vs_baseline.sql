-- query: campaign_vs_baseline
-- question: How did every configuration of one campaign (one night) do against
--   its own history: the run before it and the median of the runs before it?
-- param: campaign text                   campaign.dag_run_id (a CLI run's is cli__<run_uid>)
-- param: metric run_metric = ttft_p50_ms  a run_summary metric column (bench.store.queries.RUN_METRICS)
-- param: last int = 7                    earlier runs of the same configuration in the median
-- columns: model, label, fingerprint, run_id, status, error, started_at, current,
--   previous, previous_change_pct, baseline_median, n_baseline, median_change_pct
--   (failed/oom/timeout runs are listed with a NULL current value)
-- index: campaign_dag_run_id_key finds the campaign; run_campaign_config_key its
--   runs; run_config_ok_started_idx the :last earlier ok runs of each config.
-- psql: psql "$DB" -v campaign=scheduled__2025-01-02T02:00:00+00:00 -v metric=ttft_p50_ms \
--   -v last=7 -f sql/queries/campaign_vs_baseline.sql
SELECT bc.model,
       bc.label,
       bc.fingerprint,
       r.id AS run_id,
       r.status,
       r.error,
       r.started_at,
       cur.value AS current,
       prev.value AS previous,
       100 * (cur.value - prev.value) / NULLIF(prev.value, 0) AS previous_change_pct,
       base.median AS baseline_median,
       base.n AS n_baseline,
       100 * (cur.value - base.median) / NULLIF(base.median, 0) AS median_change_pct
FROM campaign c
JOIN run r ON r.campaign_id = c.id
JOIN benchmark_config bc ON bc.id = r.config_id
LEFT JOIN run_summary s ON s.run_id = r.id AND r.status = 'ok'
CROSS JOIN LATERAL (SELECT run_metric(s, :'metric') AS value) cur
LEFT JOIN LATERAL (
    SELECT run_metric(hs, :'metric') AS value
    FROM run h
    JOIN run_summary hs ON hs.run_id = h.id
    WHERE h.config_id = r.config_id AND h.status = 'ok' AND h.started_at < r.started_at
    ORDER BY h.started_at DESC
    LIMIT 1
) prev ON true
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY b.value) AS median,
           count(b.value) AS n
    FROM (
        SELECT run_metric(hs, :'metric') AS value
        FROM run h
        JOIN run_summary hs ON hs.run_id = h.id
        WHERE h.config_id = r.config_id AND h.status = 'ok' AND h.started_at < r.started_at
        ORDER BY h.started_at DESC
        LIMIT :last
    ) b
) base ON true
WHERE c.dag_run_id = :'campaign'
ORDER BY bc.model, bc.label, bc.fingerprint;
