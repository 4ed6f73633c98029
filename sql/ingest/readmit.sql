-- Re-admit one quarantined snapshot (jobs.ingest.readmit): record who/why/when, then accept it,
-- in one statement. No row comes back when the snapshot is not quarantined, or when retention
-- removed its files.
WITH old AS (
    SELECT snapshot_id, reasons
    FROM snapshots
    WHERE snapshot_id = %(snapshot_id)s AND status = 'quarantined'
      AND removed_at IS NULL  -- its files were removed by retention (020_snapshots.sql)
    FOR UPDATE
), logged AS (
    INSERT INTO snapshot_readmissions (snapshot_id, readmitted_by, reason, quarantine_reasons)
    SELECT snapshot_id, %(by)s, %(reason)s, reasons FROM old
    RETURNING snapshot_id, readmitted_at, quarantine_reasons
)
UPDATE snapshots AS s
SET status = 'accepted',
    validated_at = logged.readmitted_at,
    reasons = 'readmitted by ' || %(by)s || ': ' || %(reason)s
FROM logged
WHERE s.snapshot_id = logged.snapshot_id
RETURNING s.snapshot_id, logged.readmitted_at, logged.quarantine_reasons;
