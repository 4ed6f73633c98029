-- reco_versions: one row per scored version (jobs/publish/publish.py).
-- Named statements: each starts at a "-- name: <statement>" line (see publish.query).

-- name: lock
SELECT status, table_name, model_version
FROM reco_versions
WHERE reco_version = %s
FOR UPDATE

-- name: register_load
-- A new load, or a reload of a version that was loaded or failed before.
INSERT INTO reco_versions (reco_version, model_version, table_name, n_users, status)
VALUES (%s, %s, %s, 0, 'loaded')
ON CONFLICT (reco_version) DO UPDATE
SET model_version = EXCLUDED.model_version,
    table_name = EXCLUDED.table_name,
    n_users = 0,
    status = 'loaded',
    created_at = now()

-- name: mark_failed
-- A load that failed; a version audited or served meanwhile (by another run) keeps its status.
INSERT INTO reco_versions (reco_version, model_version, table_name, n_users, status)
VALUES (%s, %s, %s, 0, 'failed')
ON CONFLICT (reco_version) DO UPDATE
SET status = 'failed'
WHERE reco_versions.status IN ('loaded', 'failed')

-- name: set_n_users
UPDATE reco_versions SET n_users = %s WHERE reco_version = %s

-- name: set_status
UPDATE reco_versions SET status = %s WHERE reco_version = %s

-- name: mark_audited
UPDATE reco_versions SET status = 'audited', n_users = %s WHERE reco_version = %s

-- name: mark_published
UPDATE reco_versions SET status = 'published', published_at = now() WHERE reco_version = %s

-- name: recent
SELECT reco_version, model_version, status, n_users, created_at, published_at
FROM reco_versions
ORDER BY created_at DESC
LIMIT 20

-- name: retire_candidates
-- Attached versions newest first (the caller keeps the newest N), failed loads, and retired
-- versions whose table a crashed retire left behind.
SELECT reco_version, table_name, status
FROM reco_versions
WHERE status IN ('audited', 'published', 'failed')
   OR (status = 'retired' AND to_regclass(table_name) IS NOT NULL)
ORDER BY created_at DESC, reco_version DESC

-- name: lock_if_status
-- The version's row, locked, if its status is still the one the caller saw.
SELECT 1 FROM reco_versions WHERE reco_version = %s AND status = %s FOR UPDATE

-- name: model_of
SELECT model_version FROM reco_versions WHERE reco_version = %s

-- name: protected
-- Versions that must keep their tables: live, previous, those in an active experiment and
-- the active shadow.
SELECT reco_version, previous_reco_version FROM serving_pointer WHERE id
UNION ALL
SELECT ev.reco_version, NULL
FROM experiment_variants AS ev
JOIN experiments AS e USING (experiment_id)
WHERE e.active
UNION ALL
SELECT reco_version, NULL FROM shadow_deployments WHERE active

-- name: served_rows
SELECT count(*) FROM recommendations WHERE reco_version = %s;
