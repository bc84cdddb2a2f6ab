-- query: environment
-- question: What did the runs of one environment record run on (host, device,
--   driver, firmware, runtime, image, kernel, model revision, packages)?
-- param: environment_id int              environment.id
-- columns: id, fingerprint, host, device, device_name, device_count, driver_version,
--   runtime_version, python_version, platform, git_sha, packages, extra, first_seen_at
--   (extra holds the backend's facts and the keys added after the columns: image,
--   kernel, cpu_model, firmware_version, model_revision)
-- index: environment_pkey.
-- psql: psql "$DB" -v environment_id=3 -f sql/queries/environment.sql
SELECT id, fingerprint, host, device, device_name, device_count, driver_version,
       runtime_version, python_version, platform, git_sha, packages, extra, first_seen_at
FROM environment
WHERE id = :environment_id;
