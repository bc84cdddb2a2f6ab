-- query: latest_per_config
-- question: What did each configuration of a model measure in its newest
--   successful run on each device model (the points of the throughput vs TTFT p99 tuning view)?
-- param: model text                      benchmark_config.model
-- columns: label, fingerprint, shape, device_model, cards, precision, batch_size, concurrency,
--   request_rate,
--   world_size, run_id, started_at, output_tokens_per_s, ttft_p99_ms, tpot_p50_ms
-- index: benchmark_config_model_idx finds the configurations; run_config_ok_started_idx
--   gives each one's newest ok run in one probe (v_latest_run, migration 009).
-- psql: psql "$DB" -v model=llama-2-7b -f sql/queries/latest_per_config.sql
SELECT l.label, l.fingerprint, shape_label(bc.input_tokens, l.max_new_tokens, bc.output_lengths) AS shape,
       l.device_model, l.cards, l.precision, l.batch_size, l.concurrency, l.request_rate,
       l.world_size, l.run_id, l.started_at, l.output_tokens_per_s, l.ttft_p99_ms, l.tpot_p50_ms
FROM v_latest_run l
JOIN benchmark_config bc ON bc.id = l.config_id
WHERE l.model = :'model'
ORDER BY bc.input_tokens NULLS FIRST, l.max_new_tokens, l.precision, l.batch_size,
         l.concurrency, l.label, l.device_model, l.cards;
