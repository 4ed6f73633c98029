-- The status page: the newest accepted snapshot and the snapshot counts per status.
SELECT
    (SELECT snapshot_id FROM snapshots WHERE status = 'accepted'
     ORDER BY snapshot_id DESC LIMIT 1) AS newest_accepted,
    (SELECT max(max_event_time) FROM snapshots WHERE status = 'accepted') AS newest_event,
    (SELECT max(validated_at) FROM snapshots WHERE status = 'accepted') AS accepted_at,
    count(*) FILTER (WHERE status = 'accepted') AS accepted,
    count(*) FILTER (WHERE status = 'quarantined') AS quarantined,
    count(*) FILTER (WHERE status = 'ingested') AS unjudged
FROM snapshots;
