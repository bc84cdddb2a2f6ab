-- query: output_changes
-- question: When did the generated tokens of a model's configurations change
--   from one run to the next, how many requests changed and where did the first
--   one part, and was the configuration marked output-nondeterministic?
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- param: last int = 50                   newest changes kept
-- columns: run_id, started_at, label, requests_changed, requests_compared,
--   first_request, first_position, nondeterministic, baseline_run_id, changed,
--   dag_run_id, reason
--   (newest first; first_position is the token index of the first difference in
--   first_request, NULL when a run kept no outputs; changed = what changed in the
--   environment since the baseline run)
-- index: regression holds notable verdicts only, read whole; each joins run,
--   benchmark_config and campaign by primary key.
-- psql: psql "$DB" -v model=llama-2-7b -v last=50 -f sql/queries/output_changes.sql
SELECT g.run_id,
       r.started_at,
       bc.label,
       (g.detail ->> 'requests_changed')::int AS requests_changed,
       (g.detail ->> 'requests_compared')::int AS requests_compared,
       (g.detail ->> 'first_request')::int AS first_request,
       (g.detail ->> 'first_position')::int AS first_position,
       COALESCE((g.detail ->> 'nondeterministic')::boolean, false) AS nondeterministic,
       (g.detail ->> 'baseline_run_id')::bigint AS baseline_run_id,
       g.changed,
       c.dag_run_id,
       g.reason
FROM regression g
JOIN run r ON r.id = g.run_id
JOIN benchmark_config bc ON bc.id = r.config_id
JOIN campaign c ON c.id = r.campaign_id
WHERE g.verdict = 'output_changed'
  AND (NULLIF(:'model', '') IS NULL OR bc.model = :'model')
ORDER BY r.started_at DESC, bc.label
LIMIT :last;
