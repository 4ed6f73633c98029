-- A/B experiment admin (jobs/publish/experiments.py).

-- name: lock
-- Two concurrent starts cannot both see "no active experiment".
LOCK TABLE experiments IN SHARE ROW EXCLUSIVE MODE

-- name: lock_for_retire
-- Retire reads the active experiment's versions: no start or stop may commit meanwhile.
LOCK TABLE experiments IN SHARE MODE

-- name: active
SELECT experiment_id FROM experiments WHERE active

-- name: exists
SELECT 1 FROM experiments WHERE experiment_id = %s

-- name: version_status
SELECT status FROM reco_versions WHERE reco_version = %s

-- name: end_active
UPDATE experiments SET active = false, ended_at = now() WHERE active

-- name: insert
INSERT INTO experiments (experiment_id, salt, active) VALUES (%s, %s, true)

-- name: insert_variant
INSERT INTO experiment_variants (experiment_id, variant, reco_version, share)
VALUES (%s, %s, %s, %s)

-- name: stop
-- The active experiment, or only the named one when a name is given.
UPDATE experiments
SET active = false, ended_at = now()
WHERE active AND (%s::text IS NULL OR experiment_id = %s)
RETURNING experiment_id

-- name: recent
SELECT e.experiment_id, e.active, e.salt, e.started_at, e.ended_at,
       ev.variant, ev.reco_version, ev.share
FROM experiments AS e
LEFT JOIN experiment_variants AS ev USING (experiment_id)
ORDER BY e.started_at DESC, e.experiment_id, ev.variant
LIMIT 200

-- name: record_plan
UPDATE experiments
SET control = %s, baseline_rate = %s, min_effect = %s, alpha = %s, power = %s
WHERE experiment_id = %s

-- name: record_planned_users
UPDATE experiment_variants SET planned_users = %s WHERE experiment_id = %s AND variant = %s

-- name: one
-- The named experiment, or the active one when no name is given, with its plan and variants.
SELECT e.experiment_id, e.active, e.salt, e.started_at, e.ended_at, e.control,
       e.baseline_rate, e.min_effect, e.alpha, e.power,
       ev.variant, ev.reco_version, ev.share, ev.planned_users
FROM experiments AS e
JOIN experiment_variants AS ev USING (experiment_id)
WHERE CASE WHEN %s::text IS NULL THEN e.active ELSE e.experiment_id = %s END
ORDER BY ev.variant
