-- query: run_requests
-- question: What were one run's per-request timings (the distributions the
--   regression gate compares night against night)?
-- param: run_id int                      run.id
-- columns: request_index, ttft_ms, tpot_ms, e2e_ms, itl_ms (successful requests only;
--   itl_ms is the request's array of gaps)
-- index: request_result_pkey (run_id, request_index): one range scan.
-- psql: psql "$DB" -v run_id=42 -f sql/queries/run_requests.sql
SELECT request_index, ttft_ms, tpot_ms, e2e_ms, itl_ms
FROM request_result
WHERE run_id = :run_id AND success
ORDER BY request_index;
