-- query: campaign_runs
-- question: What happened to every configuration of one campaign: its status,
--   error and headline numbers (the table the DAG's report task prints)?
-- param: campaign text                   campaign.dag_run_id
-- columns: label, fingerprint, model, precision, batch_size, concurrency, shape, target,
--   device_model, status, error, attempt,
--   run_id, started_at, finished_at, n_requests, n_failed, ttft_p50_ms,
--   ttft_p99_ms, tpot_p50_ms, itl_p99_ms, e2e_p99_ms, output_tokens_per_s,
--   goodput_fraction, peak_memory_bytes, energy_j_per_token, regressions
--   (failed/oom/timeout runs have NULL metrics; regressions counts the run's
--   'regression' verdicts; the label ends in @<target> for a campaign with targets;
--   attempt: which try of its task stored the run, NULL before migration 016)
-- index: campaign_dag_run_id_key finds the campaign; run_campaign_config_key its runs.
-- psql: psql "$DB" -v campaign=manual__2026-11-29T02:00:00+00:00 -f sql/queries/campaign_runs.sql
SELECT bc.label || CASE WHEN r.target <> '' THEN '@' || r.target ELSE '' END AS label,
       bc.fingerprint,
       bc.model,
       bc.precision,
       bc.batch_size,
       bc.concurrency,
       shape_label(bc.input_tokens, bc.max_new_tokens, bc.output_lengths) AS shape,
       r.target,
       r.device_model,
       r.status,
       r.error,
       r.attempt,
       r.id AS run_id,
       r.started_at,
       r.finished_at,
       s.n_requests,
       s.n_failed,
       s.ttft_p50_ms,
       s.ttft_p99_ms,
       s.tpot_p50_ms,
       s.itl_p99_ms,
       s.e2e_p99_ms,
       s.output_tokens_per_s,
       s.goodput_fraction,
       s.peak_memory_bytes,
       s.energy_j_per_token,
       (SELECT count(*) FROM regression g WHERE g.run_id = r.id AND g.verdict = 'regression') AS regressions
FROM campaign c
JOIN run r ON r.campaign_id = c.id
JOIN benchmark_config bc ON bc.id = r.config_id
LEFT JOIN run_summary s ON s.run_id = r.id
WHERE c.dag_run_id = :'campaign'
ORDER BY bc.model, bc.input_tokens NULLS FIRST, bc.max_new_tokens, bc.precision, bc.batch_size,
         bc.concurrency, bc.label, r.target;
