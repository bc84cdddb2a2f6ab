-- One row per measured request (bench.records.RequestResult), bulk-loaded
-- with COPY. Timings are float8 milliseconds exactly as the run computed
-- them; itl_ms (every inter-token gap) is real[] to keep the table compact.
--
-- No foreign key to run, on purpose: Postgres checks a foreign key once per
-- row, which cut COPY throughput by half to two thirds when measured (short
-- rows: about 300k -> 100k rows/s). The writer inserts a run's requests in
-- the transaction that creates the run, and the trigger below gives
-- ON DELETE CASCADE's behaviour.
CREATE TABLE request_result (
    run_id        bigint NOT NULL,
    request_index integer NOT NULL,
    prompt_sha    text NOT NULL,
    input_tokens  integer NOT NULL,
    output_tokens integer NOT NULL,
    ttft_ms       double precision,                  -- NULL: no token arrived
    tpot_ms       double precision,                  -- NULL: fewer than two tokens
    e2e_ms        double precision,
    itl_ms        real[] NOT NULL DEFAULT '{}',
    success       boolean NOT NULL DEFAULT true,
    error         text,
    -- Serves request_percentiles.sql (the requests of a run) and the cascade below.
    CONSTRAINT request_result_pkey PRIMARY KEY (run_id, request_index)
);

CREATE FUNCTION request_result_delete_for_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM request_result rr USING deleted_runs d WHERE rr.run_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER run_delete_request_results
    AFTER DELETE ON run
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION request_result_delete_for_runs();
