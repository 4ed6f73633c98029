-- The standalone table (later a partition of recommendations) holding one reco version.
-- Placeholders in braces are identifiers or literals filled by psycopg2.sql (publish.query).

-- name: lock_name
-- Serialises two loads of the same version for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext(%s))

-- name: try_lock_name
-- The same lock, without waiting: retire skips a version that a loader is (re)writing.
SELECT pg_try_advisory_xact_lock(hashtext(%s))

-- name: drop
DROP TABLE IF EXISTS {table}

-- name: create
CREATE TABLE {table} (
    reco_version text NOT NULL DEFAULT {version},
    user_id bigint NOT NULL,
    items text NOT NULL
)

-- name: copy
COPY {table} (user_id, items) FROM STDIN

-- name: add_constraints
-- The key rejects a user loaded twice; the check matches the partition bound, so that
-- ATTACH PARTITION need not scan the table.
ALTER TABLE {table}
    ADD CONSTRAINT {pkey} PRIMARY KEY (reco_version, user_id),
    ADD CONSTRAINT {check} CHECK (reco_version = {version})

-- name: analyze
ANALYZE {table}

-- name: attach
ALTER TABLE recommendations ATTACH PARTITION {table} FOR VALUES IN ({version})

-- name: is_attached
-- A row when the table is a partition; true when an interrupted DETACH … CONCURRENTLY left it
-- pending (only FINALIZE completes that one).
SELECT inhdetachpending
FROM pg_inherits
WHERE inhparent = 'recommendations'::regclass AND inhrelid = to_regclass(%s)

-- name: detach
-- CONCURRENTLY: readers of other partitions are never blocked (needs autocommit).
ALTER TABLE recommendations DETACH PARTITION {table} CONCURRENTLY

-- name: finalize_detach
ALTER TABLE recommendations DETACH PARTITION {table} FINALIZE
