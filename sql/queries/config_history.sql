-- query: config_history
-- question: What are the nightly numbers of one run's history (its configuration
--   on its device model and card count), that run and the successful runs before it (what the regression gate and the change
--   point search compare against)?
-- param: run_id int                      the run being judged (run.id)
-- param: last int = 60                   earlier successful runs to return at most
-- columns: run_id, started_at, dag_run_id, is_current, ttft_p50_ms, ttft_p99_ms,
--   tpot_p50_ms, tpot_p99_ms, itl_p99_ms, e2e_p99_ms, output_tokens_per_s,
--   peak_memory_bytes, energy_j_per_token, campaign_id, environment_id,
--   output_exact_match, output_prefix_match, output_sha
--   (newest first; the judged run first; output_sha the run's output digest in hex)
-- index: run_pkey finds the run; run_config_ok_started_idx walks its
--   history's earlier ok runs backwards from it, :last at most.
-- psql: psql "$DB" -v run_id=42 -v last=60 -f sql/queries/config_history.sql
WITH target AS (
    SELECT id, config_id, device_model, cards, started_at FROM run WHERE id = :run_id
)
SELECT r.id AS run_id,
       r.started_at,
       c.dag_run_id,
       r.id = t.id AS is_current,
       s.ttft_p50_ms, s.ttft_p99_ms, s.tpot_p50_ms, s.tpot_p99_ms, s.itl_p99_ms, s.e2e_p99_ms,
       s.output_tokens_per_s, s.peak_memory_bytes::float8 AS peak_memory_bytes, s.energy_j_per_token,
       r.campaign_id, r.environment_id,
       s.output_exact_match, s.output_prefix_match, encode(r.output_sha, 'hex') AS output_sha
FROM target t
CROSS JOIN LATERAL (
    (SELECT * FROM run WHERE id = t.id)
    UNION ALL
    (SELECT * FROM run h
     WHERE h.config_id = t.config_id AND h.device_model = t.device_model AND h.cards = t.cards
       AND h.status = 'ok' AND h.started_at < t.started_at
     ORDER BY h.started_at DESC
     LIMIT :last)
) r
JOIN campaign c ON c.id = r.campaign_id
JOIN run_summary s ON s.run_id = r.id
ORDER BY r.started_at DESC;
