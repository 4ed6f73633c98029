-- serving_pointer (what is live, and what was live before) and popular_lists.

-- name: lock
SELECT reco_version, popular_version, previous_reco_version, previous_popular_version
FROM serving_pointer
WHERE id
FOR UPDATE

-- name: insert
INSERT INTO serving_pointer (id) VALUES (true)

-- name: switch_reco
UPDATE serving_pointer
SET previous_reco_version = reco_version, reco_version = %s, updated_at = now()
WHERE id

-- name: rollback_reco
UPDATE serving_pointer
SET reco_version = previous_reco_version,
    previous_reco_version = reco_version,
    updated_at = now()
WHERE id

-- name: rollback_popular
UPDATE serving_pointer
SET popular_version = previous_popular_version,
    previous_popular_version = popular_version,
    updated_at = now()
WHERE id

-- name: store_popular
-- With its provenance: baseline model, dataset, code commit, library versions.
INSERT INTO popular_lists (popular_version, items, window_end, baseline_version, dataset_path,
                           git_commit, library_versions)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (popular_version) DO UPDATE
SET items = EXCLUDED.items, window_end = EXCLUDED.window_end,
    baseline_version = EXCLUDED.baseline_version, dataset_path = EXCLUDED.dataset_path,
    git_commit = EXCLUDED.git_commit, library_versions = EXCLUDED.library_versions

-- name: switch_popular
UPDATE serving_pointer
SET previous_popular_version = popular_version, popular_version = %s, updated_at = now()
WHERE id

-- name: show
SELECT reco_version, previous_reco_version, popular_version, previous_popular_version,
       updated_at
FROM serving_pointer
WHERE id
