-- A/B experiment admin (jobs/publish/experiments.py).

-- name: lock
-- Two concurrent starts cannot both see "no active experiment".
LOCK TABLE experiments IN SHARE ROW EXCLUSIVE MODE

-- name: lock_for_retire
-- Retire reads the active experiment's versions: no start or stop may commit meanwhile.
LOCK TABLE experiments IN SHARE MODE

-- name: lock_shadow_for_retire
-- Likewise for the shadow: no shadow start may commit while retire reads what is protected.
LOCK TABLE shadow_deployments IN SHARE MODE

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

-- name: shadow_lock
-- Two concurrent shadow starts cannot both see "no active shadow".
LOCK TABLE shadow_deployments IN SHARE ROW EXCLUSIVE MODE

-- name: shadow_live
-- Versions that are served: the live pointer's and the active experiment's (never a shadow).
SELECT reco_version FROM serving_pointer WHERE id AND reco_version IS NOT NULL
UNION
SELECT ev.reco_version
FROM experiment_variants AS ev
JOIN experiments AS e USING (experiment_id)
WHERE e.active

-- name: shadow_end
UPDATE shadow_deployments SET active = false, ended_at = now() WHERE active
RETURNING reco_version

-- name: shadow_insert
INSERT INTO shadow_deployments (reco_version) VALUES (%s)
RETURNING shadow_id

-- name: shadow_active
SELECT s.reco_version, rv.model_version, s.started_at
FROM shadow_deployments AS s
JOIN reco_versions AS rv USING (reco_version)
WHERE s.active

-- name: shadow_one
-- The latest deployment of a version (active or not): when it ran.
SELECT reco_version, active, started_at, ended_at
FROM shadow_deployments
WHERE reco_version = %s
ORDER BY started_at DESC
LIMIT 1

-- name: model_exists
SELECT 1 FROM model_registry WHERE model_version = %s
