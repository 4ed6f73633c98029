-- The newest event time any ingested snapshot holds (make run / make demo: live users start after it).
SELECT max(max_event_time) FROM snapshots
