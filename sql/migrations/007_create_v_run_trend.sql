-- One row per successful run: its configuration, environment, campaign time
-- and summary metrics. What an ad-hoc trend query or a Grafana panel selects
-- from; Postgres inlines the view, so filters on config_id/started_at still
-- reach run_config_ok_started_idx. (The named queries in sql/queries/ join
-- run and run_summary directly: fewer joins to plan in their LATERAL loops.)
CREATE VIEW v_run_trend AS
SELECT
    r.id                 AS run_id,
    r.run_uid,
    r.started_at,
    r.finished_at,
    c.id                 AS campaign_id,
    c.dag_id,
    c.dag_run_id,
    c.trigger,
    c.started_at         AS campaign_started_at,
    bc.id                AS config_id,
    bc.fingerprint,
    bc.label,
    bc.model,
    bc.precision,
    bc.batch_size,
    bc.max_new_tokens,
    bc.backend,
    bc.device,
    bc.world_size,
    bc.concurrency,
    bc.request_rate,
    bc.prompt_set_sha,
    e.id                 AS environment_id,
    e.fingerprint        AS environment_fingerprint,
    e.host,
    e.device_name,
    e.device_count,
    e.driver_version,
    e.runtime_version,
    e.git_sha,
    s.n_requests,
    s.n_failed,
    s.input_tokens_total,
    s.output_tokens_total,
    s.duration_s,
    s.output_tokens_per_s,
    s.requests_per_s,
    s.ttft_mean_ms, s.ttft_p50_ms, s.ttft_p90_ms, s.ttft_p95_ms, s.ttft_p99_ms,
    s.tpot_mean_ms, s.tpot_p50_ms, s.tpot_p90_ms, s.tpot_p95_ms, s.tpot_p99_ms,
    s.itl_mean_ms,  s.itl_p50_ms,  s.itl_p90_ms,  s.itl_p95_ms,  s.itl_p99_ms,
    s.e2e_mean_ms,  s.e2e_p50_ms,  s.e2e_p90_ms,  s.e2e_p95_ms,  s.e2e_p99_ms,
    s.goodput_requests_per_s,
    s.goodput_fraction,
    s.peak_memory_bytes,
    s.energy_j,
    s.energy_j_per_token
FROM run r
JOIN campaign c          ON c.id = r.campaign_id
JOIN benchmark_config bc ON bc.id = r.config_id
JOIN run_summary s       ON s.run_id = r.id
LEFT JOIN environment e  ON e.id = r.environment_id
WHERE r.status = 'ok';
