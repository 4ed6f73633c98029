-- The status page: the newest snapshots, newest first, with status and event-time span.
SELECT snapshot_id, status, created_at, validated_at, min_event_time, max_event_time,
       row_counts, reasons
FROM snapshots
ORDER BY snapshot_id DESC
LIMIT %(limit)s;
