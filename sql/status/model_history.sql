-- The status page: the newest model versions with their gate outcome, their held-out score (a
-- refit carries its evaluated twin's) and when each was first published (reco_versions;
-- NULL = never served).
SELECT m.model_version, m.family, m.status, m.status_reason, m.evaluated_as,
       coalesce(m.metrics ->> %(metric)s, e.metrics ->> %(metric)s)::double precision AS score,
       m.data_newest_event, m.created_at,
       (SELECT min(r.published_at) FROM reco_versions r
        WHERE r.model_version = m.model_version) AS published_at
FROM model_registry m
LEFT JOIN model_registry e ON e.model_version = m.evaluated_as
ORDER BY m.created_at DESC, m.model_version
LIMIT %(limit)s;
