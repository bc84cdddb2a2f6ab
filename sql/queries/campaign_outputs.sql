-- query: campaign_outputs
-- question: What did each configuration of one campaign generate, and what does
--   it compare with (the same model, batch size and shape at the campaign's
--   reference precision)?
-- param: campaign text                   campaign.dag_run_id
-- columns: run_id, label, model, precision, batch_size, status, output_sha, config,
--   identity, reference_precision, output_exact_match, output_prefix_match
--   (the campaign's primary runs, every status; output_sha is the run's digest in
--   hex; identity what the configuration's fingerprint hashed; reference_precision
--   the campaign's, as its plan task recorded it, NULL for a campaign that did not;
--   the agreement metrics as the gate stored them, NULL before it ran)
-- index: campaign_dag_run_id_key finds the campaign; run_campaign_config_key its runs.
-- psql: psql "$DB" -v campaign=scheduled__2025-01-02T02:00:00+00:00 -f sql/queries/campaign_outputs.sql
SELECT r.id AS run_id,
       bc.label,
       bc.model,
       bc.precision,
       bc.batch_size,
       r.status,
       encode(r.output_sha, 'hex') AS output_sha,
       r.config,
       bc.identity,
       c.params ->> 'reference_precision' AS reference_precision,
       s.output_exact_match,
       s.output_prefix_match
FROM campaign c
JOIN run r ON r.campaign_id = c.id
JOIN benchmark_config bc ON bc.id = r.config_id
LEFT JOIN run_summary s ON s.run_id = r.id
WHERE c.dag_run_id = :'campaign'
ORDER BY bc.model, bc.label, r.id;
