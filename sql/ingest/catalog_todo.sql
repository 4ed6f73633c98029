-- Accepted snapshots the catalogue sync has not looked up yet, oldest first.
SELECT s.snapshot_id, s.path
FROM snapshots AS s
WHERE s.status = 'accepted'
  AND NOT EXISTS (SELECT 1 FROM catalog_synced AS c WHERE c.snapshot_id = s.snapshot_id)
ORDER BY s.snapshot_id;
