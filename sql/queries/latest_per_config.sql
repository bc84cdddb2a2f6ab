-- query: latest_per_config
-- question: What did each configuration of a model measure in its newest
--   successful run (the points of the throughput vs TTFT p99 tuning view)?
-- param: model text                      benchmark_config.model
-- columns: label, fingerprint, precision, batch_size, concurrency, request_rate,
--   world_size, run_id, started_at, output_tokens_per_s, ttft_p99_ms, tpot_p50_ms
-- index: benchmark_config_model_idx finds the configurations; run_config_ok_started_idx
--   gives each one's newest ok run in one probe.
-- psql: psql "$DB" -v model=llama-2-7b -f sql/queries/latest_per_config.sql
SELECT bc.label, bc.fingerprint, bc.precision, bc.batch_size, bc.concurrency, bc.request_rate,
       bc.world_size, l.id AS run_id, l.started_at, s.output_tokens_per_s, s.ttft_p99_ms, s.tpot_p50_ms
FROM benchmark_config bc
CROSS JOIN LATERAL (
    SELECT r.id, r.started_at FROM run r
    WHERE r.config_id = bc.id AND r.status = 'ok'
    ORDER BY r.started_at DESC
    LIMIT 1
) l
JOIN run_summary s ON s.run_id = l.id
WHERE bc.model = :'model'
ORDER BY bc.precision, bc.batch_size, bc.concurrency, bc.label;
