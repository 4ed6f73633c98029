-- The status page (jobs/online/status_page.py): availability and latency per event-time hour
-- (the roll-up rows, model_version = variant = '*'), the last :hours hours before the newest.
SELECT hour, requests, ok_requests, availability, latency_p99_ms, lists, hits, complete
FROM online_metrics
WHERE model_version = '*' AND variant = '*'
  AND hour > (SELECT max(hour) FROM online_metrics) - make_interval(hours => %(hours)s)
ORDER BY hour;
