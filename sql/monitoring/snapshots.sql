-- Freshness and quarantines for the Pushgateway (jobs/monitoring.py report_snapshots): one row,
-- whether or not any snapshot has been judged yet (the LEFT JOIN keeps it).
SELECT (SELECT max(validated_at) FROM snapshots WHERE status = 'accepted') AS last_accepted,
       (SELECT max(max_event_time) FROM snapshots WHERE status = 'accepted') AS newest_event,
       (SELECT count(*) FROM snapshots WHERE status = 'quarantined') AS quarantined,
       latest.status AS latest_status,
       latest.validated_at AS latest_judged
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT status, validated_at
    FROM snapshots
    WHERE status IN ('accepted', 'quarantined') AND validated_at IS NOT NULL
    ORDER BY validated_at DESC, snapshot_id DESC
    LIMIT 1
) AS latest ON true
