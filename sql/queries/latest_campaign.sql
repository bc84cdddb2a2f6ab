-- query: latest_campaign
-- question: Which is the newest campaign, overall or among those that ran a given
--   model (what a report shows by default)?
-- param: model text = ''                 benchmark_config.model ('' = any model)
-- columns: dag_run_id, dag_id, trigger, started_at, finished_at
-- index: campaign rows are few (one a night per DAG); a model narrows through
--   benchmark_config_model_idx and run_campaign_config_key.
-- psql: psql "$DB" -v model= -f sql/queries/latest_campaign.sql
SELECT c.dag_run_id, c.dag_id, c.trigger, c.started_at, c.finished_at
FROM campaign c
WHERE NULLIF(:'model', '') IS NULL
   OR EXISTS (SELECT 1 FROM run r JOIN benchmark_config bc ON bc.id = r.config_id
              WHERE r.campaign_id = c.id AND bc.model = :'model')
ORDER BY c.started_at DESC
LIMIT 1;
