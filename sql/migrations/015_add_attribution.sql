-- Attribution: what changed next to every verdict, device telemetry per run,
-- same-night confirm runs, and verdicts about a host or a whole campaign.

-- Device and host telemetry over the measured window (bench.telemetry):
-- {"sources", "samples", "interval_s", "fields": {name: {min, median, max}},
--  "throttle_reasons", "throttled"}; NULL when nothing was sampled.
ALTER TABLE run ADD COLUMN telemetry jsonb;

-- A confirm run is a same-night re-run of a suspicious configuration, judged
-- together with the campaign's run of it (confirm_of). It has no config_id
-- of its own, on purpose: every query that follows a configuration's runs
-- (trends, baselines, v_run_trend, change points) joins run.config_id, so a
-- confirm run can never be mistaken for an extra night. Its configuration is
-- its primary's (and run.config holds it in full). Replacing the primary (an
-- Airflow retry) removes its confirm run; a retried confirm replaces the
-- earlier one (one confirm run per primary).
ALTER TABLE run ADD COLUMN confirm_of bigint REFERENCES run (id) ON DELETE CASCADE;
ALTER TABLE run ALTER COLUMN config_id DROP NOT NULL;
ALTER TABLE run ADD CONSTRAINT run_config_or_confirm_check
    CHECK ((config_id IS NULL) = (confirm_of IS NOT NULL));
-- Serves campaign_confirms.sql and the writer's "the confirm run of run X".
ALTER TABLE run ADD CONSTRAINT run_confirm_of_key UNIQUE (confirm_of);

-- The verdicts the gate writes, one row each: a new kind of verdict is one
-- INSERT here, not a constraint to rewrite.
CREATE TABLE verdict (
    name        text PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('run', 'host', 'campaign')),
    description text NOT NULL
);
INSERT INTO verdict (name, scope, description) VALUES
    ('regression', 'run', 'worse than its baseline, significant and confirmed (a second night, a same-night confirm run, or overwhelming)'),
    ('suspicious', 'run', 'worse or better than its baseline on one run only: shown, not alerted'),
    ('improvement', 'run', 'better than its baseline, significant and confirmed'),
    ('output_changed', 'run', 'generated tokens differ from the previous run of the same configuration'),
    ('host_anomaly', 'host', 'every configuration that ran on one host got worse, none elsewhere: the node, not the code'),
    ('campaign_shift', 'campaign', 'the configurations of one device class moved together: a campaign-wide shift')
ON CONFLICT (name) DO NOTHING;

-- Replace the CHECK of 006 (or of any later migration that widened it) by
-- the foreign key.
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'regression'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%verdict%'
    LOOP
        EXECUTE format('ALTER TABLE regression DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
ALTER TABLE regression ADD CONSTRAINT regression_verdict_fkey
    FOREIGN KEY (verdict) REFERENCES verdict (name);

-- What changed between the run and its baseline's runs
-- (bench.environment.environment_diff): key -> {baseline: [values], runs:
-- [counts], current: value}. {} when nothing did.
ALTER TABLE regression ADD COLUMN IF NOT EXISTS changed jsonb NOT NULL DEFAULT '{}'::jsonb;
-- The verdict's evidence and scope: the confirm run, the host or device
-- class, the runs a host_anomaly or campaign_shift covers.
ALTER TABLE regression ADD COLUMN IF NOT EXISTS detail jsonb NOT NULL DEFAULT '{}'::jsonb;
-- One line: why this verdict.
ALTER TABLE regression ADD COLUMN IF NOT EXISTS reason text;
