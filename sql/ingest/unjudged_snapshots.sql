-- Registered snapshots of one topic that validation never judged (status still `ingested`),
-- oldest first: what an ingest try left behind when it failed after writing its snapshot
-- (jobs.ingest.lake.unjudged_snapshots; the DAG's next try validates these first).
SELECT snapshot_id
FROM snapshots
WHERE topic = %(topic)s AND status = 'ingested'
ORDER BY snapshot_id;
