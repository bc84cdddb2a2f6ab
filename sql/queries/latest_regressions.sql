-- query: latest_regressions
-- question: Which runs did the regression detector flag most recently, on which
--   metric, by how much, and in which Airflow DAG run?
-- param: verdict text = regression       a verdict name, or several comma-separated (table
--   verdict: regression, suspicious, improvement, output_changed, host_anomaly,
--   campaign_shift, ...; '' = every verdict)
-- param: campaign text = ''              campaign.dag_run_id ('' = every campaign)
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- param: metric text = ''                a run_summary metric column ('' = every metric)
-- param: since timestamp = ''            runs started at or after this ('' = no bound)
-- param: last int = 50                   newest verdicts kept
-- columns: run_id, started_at, model, label, fingerprint, metric, verdict, baseline,
--   current, change_pct, p_value, detected_at, dag_id, dag_run_id, changed, detail,
--   reason, telemetry
--   (newest run first; dag_id is NULL for a `bench run` from the shell;
--   change_pct = 100 * (current - baseline) / baseline; changed = what changed in the
--   environment against the baseline's runs; detail = the verdict's scope (confirm
--   run, host, covered runs); telemetry = the run's device/host telemetry summary)
-- index: regression holds notable verdicts only (a few a night), so it is read
--   whole and sorted; each verdict then joins run, benchmark_config and campaign
--   by primary key; campaign_dag_run_id_key narrows to one campaign.
-- psql: psql "$DB" -v verdict=regression -v campaign= -v model= -v metric= -v since= -v last=50 \
--   -f sql/queries/latest_regressions.sql
SELECT g.run_id,
       r.started_at,
       bc.model,
       bc.label,
       bc.fingerprint,
       g.metric,
       g.verdict,
       g.baseline,
       g.current,
       g.change_pct,
       g.p_value,
       g.detected_at,
       c.dag_id,
       c.dag_run_id,
       g.changed,
       g.detail,
       g.reason,
       r.telemetry
FROM regression g
JOIN run r ON r.id = g.run_id
JOIN benchmark_config bc ON bc.id = r.config_id
JOIN campaign c ON c.id = r.campaign_id
WHERE (NULLIF(:'verdict', '') IS NULL OR g.verdict = ANY(string_to_array(:'verdict', ',')))
  AND (NULLIF(:'campaign', '') IS NULL OR c.dag_run_id = :'campaign')
  AND (NULLIF(:'model', '') IS NULL OR bc.model = :'model')
  AND (NULLIF(:'metric', '') IS NULL OR g.metric = :'metric')
  AND r.started_at >= COALESCE(NULLIF(:'since', '')::timestamptz, '-infinity')
ORDER BY r.started_at DESC, bc.label, g.metric
LIMIT :last;
