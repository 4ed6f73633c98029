-- The active shadow deployment, if any: its reco version and that version's model.
SELECT s.reco_version, rv.model_version
FROM shadow_deployments AS s
JOIN reco_versions AS rv ON rv.reco_version = s.reco_version
WHERE s.active
