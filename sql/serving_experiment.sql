-- The active experiment's variants (at most one experiment is active), in a stable order.
SELECT e.experiment_id,
       e.salt,
       ev.variant,
       ev.reco_version,
       rv.model_version,
       ev.share
FROM experiments AS e
JOIN experiment_variants AS ev ON ev.experiment_id = e.experiment_id
JOIN reco_versions AS rv ON rv.reco_version = ev.reco_version
WHERE e.active
ORDER BY ev.variant
