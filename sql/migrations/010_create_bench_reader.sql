-- bench_reader: the role of everything that only reads results (the Airflow
-- Benchmarks page, reports, Grafana, people with psql). It may SELECT every
-- table and view of this schema, now and later (default privileges for the
-- tables future migrations create), and run its functions; it owns nothing
-- and is granted no INSERT, UPDATE, DELETE, TRUNCATE or CREATE, so a reader
-- cannot write even by typing SQL by hand.
--
-- It is created NOLOGIN and without a password: no secret lives in a
-- migration. An admin gives it a login, or grants it to people's logins:
--     ALTER ROLE bench_reader WITH LOGIN PASSWORD '...';
--     CREATE ROLE grafana LOGIN PASSWORD '...' IN ROLE bench_reader;
-- (README, "Read-only access").
--
-- Idempotent and safe to run again by hand with psql: roles belong to the
-- whole server, so a second results database on it finds the role there and
-- only adds its grants. A migrating login that may not create roles (a
-- database owner without CREATEROLE, as in docker-compose) gets a warning
-- instead of an error when the role is missing: an admin creates the role,
-- then runs this file again (psql "$DB" -f sql/migrations/010_create_bench_reader.sql).
DO $$
DECLARE
    may_create boolean := (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_reader') THEN
        IF NOT may_create THEN
            RAISE WARNING 'role bench_reader does not exist and % may not create roles; an admin runs: CREATE ROLE bench_reader NOLOGIN; then this file again with psql', current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE bench_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's migration on this server created it meanwhile
        END;
        BEGIN
            -- belt and braces for its own logins; privileges are what forbid writes
            ALTER ROLE bench_reader SET default_transaction_read_only = on;
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO bench_reader', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO bench_reader', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO bench_reader', current_schema());
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO bench_reader', current_schema());
    -- tables, views and functions that later migrations create (as this login)
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO bench_reader',
                   current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT EXECUTE ON FUNCTIONS TO bench_reader',
                   current_schema());
END
$$;
