-- query: campaign_subjects
-- question: Which runs of one campaign does the regression gate judge, on which
--   host and device, and which of them has a same-night confirm run?
-- param: campaign text                   campaign.dag_run_id
-- columns: run_id, label, fingerprint, device, device_model, cards, target, backend, world_size, status, host,
--   device_name, environment_id, config, prompt_set, telemetry, confirm_run_id, confirm_status,
--   confirm_host
--   (the campaign's primary runs, every status; the label ends in @<target> for a
--   campaign with targets; confirm_* NULL without a confirm run)
-- index: campaign_dag_run_id_key finds the campaign; run_campaign_config_key its runs;
--   run_confirm_of_key each run's confirm run.
-- psql: psql "$DB" -v campaign=scheduled__2025-01-02T02:00:00+00:00 -f sql/queries/campaign_subjects.sql
SELECT r.id AS run_id,
       bc.label || CASE WHEN r.target <> '' THEN '@' || r.target ELSE '' END AS label,
       bc.fingerprint,
       bc.device,
       r.device_model,
       r.cards,
       r.target,
       bc.backend,
       bc.world_size,
       r.status,
       e.host,
       e.device_name,
       r.environment_id,
       r.config,
       r.prompt_set,
       r.telemetry,
       k.id AS confirm_run_id,
       k.status AS confirm_status,
       ke.host AS confirm_host
FROM campaign c
JOIN run r ON r.campaign_id = c.id
JOIN benchmark_config bc ON bc.id = r.config_id
LEFT JOIN environment e ON e.id = r.environment_id
LEFT JOIN run k ON k.confirm_of = r.id
LEFT JOIN environment ke ON ke.id = k.environment_id
WHERE c.dag_run_id = :'campaign'
ORDER BY bc.model, bc.precision, bc.batch_size, bc.concurrency, bc.label, r.target;
