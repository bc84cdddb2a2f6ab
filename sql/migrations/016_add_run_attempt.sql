-- Which try of its Airflow task produced a run (bench run --attempt N; the
-- task's try_number). A retried task replaces its run (UNIQUE (campaign_id,
-- config_id), newest attempt wins), so without this column a retry left no
-- trace in the results DB; the campaign table shows it as "tries".
--
-- 1 for a run that needed no retry and for every CLI run; NULL for runs
-- stored before this migration (which try they were is not known).
ALTER TABLE run ADD COLUMN attempt integer CONSTRAINT run_attempt_check CHECK (attempt >= 1);
