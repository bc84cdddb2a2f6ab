-- query: config_slos
-- question: Which service-level objectives (TTFT, TPOT) was each configuration
--   of a model measured against in its newest successful run?
-- param: model text                      benchmark_config.model
-- columns: label, fingerprint, device_model, slo_ttft_ms, slo_tpot_ms
--   (from the run's stored config; NULL where the run had no SLO on that
--   metric; configurations with neither are left out)
-- index: benchmark_config_model_idx finds the configurations;
--   run_config_ok_started_idx gives each one's newest ok run (v_latest_run,
--   migration 009); run_pkey its stored config.
-- psql: psql "$DB" -v model=llama-2-7b -f sql/queries/config_slos.sql
SELECT l.label,
       l.fingerprint,
       l.device_model,
       slo.ttft AS slo_ttft_ms,
       slo.tpot AS slo_tpot_ms
FROM v_latest_run l
JOIN run r ON r.id = l.run_id
CROSS JOIN LATERAL (
    SELECT (r.config ->> 'slo_ttft_ms')::float8 AS ttft,
           (r.config ->> 'slo_tpot_ms')::float8 AS tpot
) slo
WHERE l.model = :'model'
  AND (slo.ttft IS NOT NULL OR slo.tpot IS NOT NULL)
ORDER BY l.label, l.fingerprint, l.device_model;
