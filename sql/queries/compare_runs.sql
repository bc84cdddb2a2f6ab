-- query: compare_runs
-- question: Which successful runs make up side A and side B of a comparison: two
--   campaigns, or the runs whose environment has KEY=VALUE (an image, a driver,
--   a package version) within a time window?
-- param: campaign_a text = ''            side A: a campaign.dag_run_id ...
-- param: campaign_b text = ''            side B: a campaign.dag_run_id ...
-- param: select_a text = ''              ... or an environment selection KEY=VALUE, e.g.
--   image=llm-bench-hpu:stack-1.21, driver_version=1.19.1, packages.torch=2.6.0
-- param: select_b text = ''              side B's selection
-- param: since timestamp = ''            selections: runs started at or after this
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- param: metric run_metric = ttft_p50_ms  the run_summary value returned per run
-- columns: side, label, fingerprint, model, run_id, started_at, dag_run_id, environment_id,
--   value (oldest first within a side and configuration; the caller keeps the
--   configurations both sides ran)
--   A selection key is an environment column (host, driver_version, runtime_version,
--   device_name, git_sha, ...), a key of environment.extra (image, kernel,
--   firmware_version, model_revision, cpu_model, ...), packages.<distribution>, or
--   the run's target, device_model or cards (migration 014). A side with both a
--   campaign and a selection is that campaign's runs that match (two targets of
--   one campaign: the same campaign on both sides, target=gaudi2 and target=gaudi3).
-- index: campaign_dag_run_id_key and run_campaign_config_key find a campaign's runs; a
--   selection reads the ok runs of the window (run.started_at) and the few
--   environment rows, flattened once each.
-- psql: psql "$DB" -v campaign_a= -v campaign_b= -v select_a=image=stack-1.21 \
--   -v select_b=image=stack-1.22 -v since=2025-01-01 -v model= -v metric=ttft_p50_ms \
--   -f sql/queries/compare_runs.sql
WITH side AS (
    SELECT 'A' AS side, NULLIF(:'campaign_a', '') AS campaign, NULLIF(:'select_a', '') AS selection
    UNION ALL
    SELECT 'B', NULLIF(:'campaign_b', ''), NULLIF(:'select_b', '')
),
flat AS (
    -- one level of key -> value per environment, as bench.environment.flatten_environment
    SELECT e.id,
           (to_jsonb(e) - 'extra' - 'packages') || e.extra
           || COALESCE((SELECT jsonb_object_agg('packages.' || p.key, p.value)
                        FROM jsonb_each(e.packages) AS p), '{}'::jsonb) AS env
    FROM environment e
)
SELECT s.side,
       bc.label,
       bc.fingerprint,
       bc.model,
       r.id AS run_id,
       r.started_at,
       c.dag_run_id,
       r.environment_id,
       run_metric(rs, :'metric') AS value
FROM side s
JOIN run r ON r.status = 'ok'
JOIN campaign c ON c.id = r.campaign_id
JOIN benchmark_config bc ON bc.id = r.config_id
JOIN run_summary rs ON rs.run_id = r.id
LEFT JOIN flat f ON f.id = r.environment_id
WHERE (s.campaign IS NOT NULL OR s.selection IS NOT NULL)
  AND (s.campaign IS NULL OR c.dag_run_id = s.campaign)
  AND (s.selection IS NULL
       OR (COALESCE(f.env, '{}'::jsonb)
           || jsonb_build_object('target', r.target, 'device_model', r.device_model,
                                 'cards', r.cards::text))
          ->> split_part(s.selection, '=', 1)
          = substr(s.selection, strpos(s.selection, '=') + 1))
  AND (s.campaign IS NOT NULL
       OR r.started_at >= COALESCE(NULLIF(:'since', '')::timestamptz, '-infinity'))
  AND (NULLIF(:'model', '') IS NULL OR bc.model = :'model')
ORDER BY bc.label, bc.fingerprint, s.side, r.started_at;
