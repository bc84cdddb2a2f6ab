-- query: device_models
-- question: On which device models (and card counts) has each model's history
--   been measured (the device filter of `bench trend` and the Benchmarks page)?
-- param: model text = ''                 benchmark_config.model ('' = every model)
-- columns: model, device_model, cards, n_configs, first_seen_at
-- index: history_pkey walks the histories (one row per configuration x device
--   model x cards, migration 014); benchmark_config_pkey gives each one's model.
-- psql: psql "$DB" -v model= -f sql/queries/device_models.sql
SELECT bc.model,
       h.device_model,
       h.cards,
       count(*) AS n_configs,
       min(h.first_seen_at) AS first_seen_at
FROM history h
JOIN benchmark_config bc ON bc.id = h.config_id
WHERE NULLIF(:'model', '') IS NULL OR bc.model = :'model'
GROUP BY bc.model, h.device_model, h.cards
ORDER BY bc.model, h.device_model, h.cards;
