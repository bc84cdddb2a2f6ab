-- query: reference_runs
-- question: Which runs could one run's outputs be compared with: the newest
--   successful run of each other precision of the same configuration (same
--   model, batch size, shape, device, prompts; only the precision differs)?
-- param: run_uid text                    the run (run.run_uid, as its result file names it)
-- columns: run_id, precision, label, started_at, dag_run_id, own_run_id, own_precision
--   (one row per other precision; own_* are the given run's id and precision)
-- index: run_run_uid_key finds the run; benchmark_config (one row per configuration, small)
--   is scanned for the same identity without its precision; run_config_ok_started_idx
--   gives each such configuration's newest ok run.
-- psql: psql "$DB" -v run_uid=0123abcd -f sql/queries/reference_runs.sql
WITH me AS (
    SELECT r.id, bc.identity - 'precision' AS rest, bc.precision
    FROM run r
    JOIN benchmark_config bc ON bc.id = r.config_id
    WHERE r.run_uid = :'run_uid'
)
SELECT DISTINCT ON (bc.precision)
       r.id AS run_id, bc.precision, bc.label, r.started_at, c.dag_run_id,
       me.id AS own_run_id, me.precision AS own_precision
FROM me
JOIN benchmark_config bc ON bc.identity - 'precision' = me.rest AND bc.precision <> me.precision
JOIN run r ON r.config_id = bc.id AND r.status = 'ok'
JOIN campaign c ON c.id = r.campaign_id
ORDER BY bc.precision, r.started_at DESC;
