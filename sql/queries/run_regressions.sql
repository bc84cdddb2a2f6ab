-- query: run_regressions
-- question: Which verdicts did the regression gate give one run (last night's,
--   when tonight's change needs a second night to be confirmed)?
-- param: run_id int                      run.id
-- columns: metric, baseline, current, change_pct, p_value, verdict, detected_at
-- index: regression_run_metric_key (run_id, metric).
-- psql: psql "$DB" -v run_id=41 -f sql/queries/run_regressions.sql
SELECT metric, baseline, current, change_pct, p_value, verdict, detected_at
FROM regression
WHERE run_id = :run_id
ORDER BY metric;
