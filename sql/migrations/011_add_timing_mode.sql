-- Timing modes (bench run --timing stream|events|dual; README "Timing modes").
--
-- benchmark_config.timing: how token times were taken. Every configuration
-- stored before this migration was timed by the streamer, hence the default.
-- The fingerprint already tells modes apart (RunConfig.identity); the column
-- lets SQL filter and group on it.
ALTER TABLE benchmark_config ADD COLUMN timing text NOT NULL DEFAULT 'stream';

-- run_summary.streamed_vs_bare_ratio: under timing dual, the wall time of the
-- streamed passes over that of the bare passes of the same requests (1.0:
-- observing every token costs nothing). NULL in the other modes.
ALTER TABLE run_summary ADD COLUMN streamed_vs_bare_ratio double precision;

-- run_metric (008) names the new column from migration 013 on, and v_run_trend
-- (007) shows both from 014 on: each of them is restated once for the
-- migrations 011 to 014, which were released together (CREATE OR REPLACE
-- needs the whole definition every time).
