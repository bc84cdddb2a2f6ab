-- query: best_batch_size
-- question: Which batch size gives each model the most output tokens per second
--   while its TTFT p99 stays within the SLO?
-- param: slo_ttft_p99_ms float           the SLO: a batch size qualifies when ttft_p99_ms <= this
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- param: shape text = ''                 shape_label() such as 'in128-out128' or 'outds256' ('' = every shape)
-- columns: model, precision, device, device_model, cards, backend, shape, input_tokens,
--   max_new_tokens, world_size, best_batch_size, output_tokens_per_s, ttft_p99_ms, run_id,
--   started_at, n_within_slo, n_batch_sizes
--   One row per model x precision x device x device model x cards x backend x shape
--   (input_tokens, NULL: the prompt set as is, and max_new_tokens; outdsN: the dataset's
--   output lengths capped at N) x world_size (a Gaudi2
--   and a Gaudi3 node have their own best),
--   judged on the latest successful run of each batch size; best_batch_size is
--   NULL (and the other figures are the fastest TTFT's) when none meets the SLO.
--   Concurrency/request-rate configurations (openai backend) are left out.
-- index: benchmark_config_model_idx (one model); run_config_ok_started_idx gives
--   the latest ok run of each configuration (v_latest_run, migration 009).
-- psql: psql "$DB" -v slo_ttft_p99_ms=500 -v model= -v shape= -f sql/queries/best_batch_size.sql
WITH latest AS (
    SELECT l.model, l.precision, l.device, l.device_model, l.cards, l.backend,
           shape_label(bc.input_tokens, l.max_new_tokens, bc.output_lengths) AS shape, bc.input_tokens,
           l.max_new_tokens, l.world_size, l.batch_size, l.run_id, l.started_at, l.output_tokens_per_s, l.ttft_p99_ms,
           l.ttft_p99_ms <= :slo_ttft_p99_ms AS within_slo
    FROM v_latest_run l
    JOIN benchmark_config bc ON bc.id = l.config_id
    WHERE (NULLIF(:'model', '') IS NULL OR l.model = :'model')
      AND (NULLIF(:'shape', '') IS NULL
           OR shape_label(bc.input_tokens, l.max_new_tokens, bc.output_lengths) = :'shape')
      AND l.concurrency IS NULL
      AND l.request_rate IS NULL
),
ranked AS (
    SELECT latest.*,
           count(*) FILTER (WHERE within_slo) OVER shape AS n_within_slo,
           count(*) OVER shape AS n_batch_sizes,
           row_number() OVER (
               shape ORDER BY within_slo DESC NULLS LAST,
                              CASE WHEN within_slo THEN output_tokens_per_s END DESC NULLS LAST,
                              ttft_p99_ms ASC NULLS LAST,
                              batch_size
           ) AS rank
    FROM latest
    WINDOW shape AS (PARTITION BY model, precision, device, device_model, cards, backend, shape,
                                  world_size)
)
SELECT model, precision, device, device_model, cards, backend, shape, input_tokens,
       max_new_tokens, world_size,
       CASE WHEN within_slo THEN batch_size END AS best_batch_size,
       output_tokens_per_s, ttft_p99_ms, run_id, started_at, n_within_slo, n_batch_sizes
FROM ranked
WHERE rank = 1
ORDER BY model, precision, device, device_model, cards, backend, input_tokens NULLS FIRST,
         max_new_tokens, world_size;
