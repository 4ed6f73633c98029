-- Retention (jobs/publish/retention.py, docs/operations.md "Retention"): history rows are never
-- deleted; what retention removed from disk is marked on the row that names it, so readers
-- (provenance) say "removed by retention" instead of "missing". Idempotent.
ALTER TABLE model_registry
    ADD COLUMN IF NOT EXISTS artifact_removed_at timestamptz;  -- artifact and scored lists gone
ALTER TABLE snapshots
    ADD COLUMN IF NOT EXISTS removed_at timestamptz;           -- a quarantined snapshot's files gone
