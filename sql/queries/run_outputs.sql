-- query: run_outputs
-- question: What did each request of one run generate (what output drift and
--   agreement with the reference precision compare)?
-- param: run_id int                      run.id
-- columns: request_index, prompt_sha, output_sha, output_ids, output_text
--   (successful requests, in request order; output_sha as hex; output_ids the
--   little-endian uint32 token ids, NULL when the run kept no outputs;
--   output_text an endpoint's streamed text, else NULL)
-- index: request_result_pkey (run_id, request_index): one range scan.
-- psql: psql "$DB" -v run_id=42 -f sql/queries/run_outputs.sql
SELECT request_index, prompt_sha, encode(output_sha, 'hex') AS output_sha, output_ids, output_text
FROM request_result
WHERE run_id = :run_id AND success
ORDER BY request_index;
