-- A detector's verdict on one metric of one run against its baseline
-- (bench regressions). Only notable changes are stored.
CREATE TABLE regression (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    metric      text NOT NULL,                       -- a run_summary column, e.g. ttft_p50_ms
    baseline    double precision,
    current     double precision,
    change_pct  double precision,
    p_value     double precision,
    verdict     text NOT NULL CHECK (verdict IN ('regression', 'suspicious', 'improvement')),
    detected_at timestamptz NOT NULL DEFAULT now(),
    -- One verdict per run and metric: re-running detection upserts. Its
    -- leading run_id serves "the regressions of these runs".
    CONSTRAINT regression_run_metric_key UNIQUE (run_id, metric)
);
