-- Retention (jobs/publish/retention.py): what is kept, read from Postgres, and the marks it
-- leaves. Named statements, loaded with jobs.publish.publish.query("retention", name).

-- name: pointer
-- Live and previous (rollback) versions, reco and popular.
SELECT reco_version, previous_reco_version, popular_version, previous_popular_version
FROM serving_pointer
WHERE id

-- name: experiment_versions
-- Versions of every experiment that is active or ended at or after the cutoff.
SELECT DISTINCT ev.reco_version
FROM experiment_variants AS ev
JOIN experiments AS e USING (experiment_id)
WHERE e.active OR e.ended_at >= %(cutoff)s

-- name: has_shadows
SELECT to_regclass('shadow_deployments') IS NOT NULL

-- name: shadow_versions
-- Shadow deployments that are active or ended at or after the cutoff.
SELECT DISTINCT reco_version
FROM shadow_deployments
WHERE active OR ended_at >= %(cutoff)s

-- name: lock_shadows
-- As retire does: no shadow start may commit while retention reads what is protected.
LOCK TABLE shadow_deployments IN SHARE MODE

-- name: protected_shadows
SELECT reco_version FROM shadow_deployments WHERE active

-- name: models
-- Every registry row; `live`: production, or its status changed at or after the cutoff.
SELECT model_version, status, status = 'production' OR updated_at >= %(cutoff)s AS live,
       artifact_path, dataset_path, evaluated_as, artifact_removed_at
FROM model_registry

-- name: reco_versions
-- `recent`: loaded at or after the cutoff (kept whatever its model: a version staged for an
-- experiment or a shadow, or one whose model was never registered).
SELECT reco_version, model_version, status, created_at >= %(cutoff)s AS recent
FROM reco_versions

-- name: popular_lists
-- Popularity lists served now, before (rollback), or made at or after the cutoff.
SELECT popular_version, baseline_version, dataset_path,
       created_at >= %(cutoff)s AS recent
FROM popular_lists

-- name: lock_registry
-- The lock registry.promote_in and set_status take: no status change commits meanwhile.
LOCK TABLE model_registry IN SHARE ROW EXCLUSIVE MODE

-- name: lock_model
-- A row if the model still may lose its artifact: not production, its status unchanged since
-- before the cutoff.
SELECT 1
FROM model_registry
WHERE model_version = %(model_version)s
  AND status <> 'production'
  AND updated_at < %(cutoff)s

-- name: served_by_model
-- Protected versions (live, previous, active experiment) whose lists this model made.
SELECT rv.reco_version
FROM reco_versions AS rv
JOIN serving_pointer AS p ON rv.reco_version IN (p.reco_version, p.previous_reco_version)
WHERE rv.model_version = %(model_version)s
UNION
SELECT rv.reco_version
FROM reco_versions AS rv
JOIN experiment_variants AS ev USING (reco_version)
JOIN experiments AS e USING (experiment_id)
WHERE rv.model_version = %(model_version)s AND e.active

-- name: mark_artifact_removed
UPDATE model_registry
SET artifact_removed_at = now()
WHERE model_version = %(model_version)s AND artifact_removed_at IS NULL

-- name: snapshots
-- Every registered snapshot; `expired`: quarantined, ingested and judged before the cutoff
-- (the only kind retention may remove; `removed` once it has).
SELECT snapshot_id, topic, status, removed_at IS NOT NULL AS removed,
       status = 'quarantined' AND created_at < %(cutoff)s
           AND coalesce(validated_at, created_at) < %(cutoff)s AS expired
FROM snapshots

-- name: trained_snapshots
-- The snapshots each model's dataset was built from (its stored manifest).
SELECT m.model_version, s.snap ->> 'snapshot_id' AS snapshot_id
FROM model_registry AS m
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(m.dataset_manifest -> 'snapshots') = 'array'
         THEN m.dataset_manifest -> 'snapshots' ELSE '[]'::jsonb END
) AS s (snap)

-- name: lock_snapshot
-- The snapshot's row, locked, if it is still quarantined (a re-admission, which locks the same
-- row in sql/ingest/readmit.sql, either commits first or finds it removed); whether an earlier
-- run marked it already.
SELECT removed_at IS NOT NULL
FROM snapshots
WHERE snapshot_id = %(snapshot_id)s AND status = 'quarantined'
FOR UPDATE

-- name: mark_snapshot_removed
UPDATE snapshots SET removed_at = now() WHERE snapshot_id = %(snapshot_id)s AND removed_at IS NULL
