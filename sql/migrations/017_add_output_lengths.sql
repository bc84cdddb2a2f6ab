-- Per-request output lengths (bench run --output-lengths dataset; campaign
-- output_lengths; README "Dataset prompt sets").
--
-- benchmark_config.output_lengths: 'fixed' (every request asked for
-- max_new_tokens: every configuration stored before this migration) or
-- 'dataset' (each request asked for its reference reply's length in the
-- model's tokens, capped at max_new_tokens). The fingerprint already tells
-- them apart (RunConfig.identity); the column lets SQL filter on it.
ALTER TABLE benchmark_config ADD COLUMN output_lengths text NOT NULL DEFAULT 'fixed'
    CONSTRAINT benchmark_config_output_lengths_check CHECK (output_lengths IN ('fixed', 'dataset'));

-- A shape with the output lengths: 'outds256' for the dataset's lengths
-- capped at 256, else what shape_label(integer, integer) says.
CREATE FUNCTION shape_label(p_input_tokens integer, p_max_new_tokens integer, p_output_lengths text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_output_lengths = 'dataset' THEN 'outds' || p_max_new_tokens
                ELSE shape_label(p_input_tokens, p_max_new_tokens) END
$$;
COMMENT ON FUNCTION shape_label(integer, integer, text) IS
    'outds<max_new_tokens> for output lengths from a dataset (capped), else in<input>-out<output> or out<output>';
