-- Workload shapes (bench run --input-tokens N; campaign shapes: [{input, output}];
-- README "Shapes").
--
-- benchmark_config.input_tokens: the exact prompt length of every request,
-- counted as the model sees it (chat template and BOS included); NULL: the
-- prompt set as is (every configuration stored before this migration). With
-- max_new_tokens it is the configuration's shape, the pair published tables
-- are quoted by (128/128, 128/2048, 2048/128, 2048/2048). The fingerprint
-- already tells shapes apart (RunConfig.identity); the column lets SQL filter
-- and group on it.
--
-- Views are left alone on purpose: v_run_trend and v_latest_run are
-- recreated by later migrations with their own column lists, and
-- CREATE OR REPLACE VIEW cannot drop a column. Queries reach the column
-- through config_id (benchmark_config's primary key).
ALTER TABLE benchmark_config ADD COLUMN input_tokens integer
    CHECK (input_tokens IS NULL OR input_tokens > 0);

-- How a shape reads everywhere (labels, reports, the Benchmarks page):
-- 'in128-out128', or 'out128' for a configuration without an exact input length.
CREATE FUNCTION shape_label(p_input_tokens integer, p_max_new_tokens integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_input_tokens IS NULL THEN 'out' || p_max_new_tokens
                ELSE 'in' || p_input_tokens || '-out' || p_max_new_tokens END
$$;
COMMENT ON FUNCTION shape_label(integer, integer) IS
    'in<input_tokens>-out<max_new_tokens>, or out<max_new_tokens> when the prompt set was used as is';
