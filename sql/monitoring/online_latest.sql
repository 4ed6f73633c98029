-- The latest complete hour of online_metrics, every (model version, variant) row of it, for the
-- Pushgateway (jobs/monitoring.py report_online). A complete hour has seen every follow-up
-- watch that can count, so its accuracy is final.
SELECT hour, model_version, variant, availability, latency_p99_ms, personalised_share,
       online_accuracy, lists
FROM online_metrics
WHERE hour = (SELECT max(hour) FROM online_metrics WHERE complete)
ORDER BY model_version, variant
