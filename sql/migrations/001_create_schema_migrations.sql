-- The migration runner's ledger (bench/store/migrate.py): one row per file of
-- sql/migrations/ applied to this database, in file-name order. The runner
-- reads it only when it exists, so this first migration bootstraps it.
CREATE TABLE schema_migrations (
    name       text PRIMARY KEY,                    -- file name, e.g. 003_create_run.sql
    checksum   text NOT NULL,                       -- sha256 of the file as applied
    applied_at timestamptz NOT NULL DEFAULT now()
);
