-- One row of online_metrics (jobs/online/evaluate.py store()): insert, or replace the hour's
-- numbers when it was evaluated before (idempotent reruns; late data completes an hour).
INSERT INTO online_metrics (
    hour, model_version, variant, requests, ok_requests, availability,
    latency_p50_ms, latency_p95_ms, latency_p99_ms, answers, personalised, personalised_share,
    lists, hits, online_accuracy, accuracy_low, accuracy_high, window_minutes, deadline_ms,
    complete, computed_at
) VALUES (
    %(hour)s, %(model_version)s, %(variant)s, %(requests)s, %(ok_requests)s, %(availability)s,
    %(latency_p50_ms)s, %(latency_p95_ms)s, %(latency_p99_ms)s, %(answers)s, %(personalised)s,
    %(personalised_share)s, %(lists)s, %(hits)s, %(online_accuracy)s, %(accuracy_low)s,
    %(accuracy_high)s, %(window_minutes)s, %(deadline_ms)s, %(complete)s, now()
)
ON CONFLICT (hour, model_version, variant) DO UPDATE SET
    requests = EXCLUDED.requests,
    ok_requests = EXCLUDED.ok_requests,
    availability = EXCLUDED.availability,
    latency_p50_ms = EXCLUDED.latency_p50_ms,
    latency_p95_ms = EXCLUDED.latency_p95_ms,
    latency_p99_ms = EXCLUDED.latency_p99_ms,
    answers = EXCLUDED.answers,
    personalised = EXCLUDED.personalised,
    personalised_share = EXCLUDED.personalised_share,
    lists = EXCLUDED.lists,
    hits = EXCLUDED.hits,
    online_accuracy = EXCLUDED.online_accuracy,
    accuracy_low = EXCLUDED.accuracy_low,
    accuracy_high = EXCLUDED.accuracy_high,
    window_minutes = EXCLUDED.window_minutes,
    deadline_ms = EXCLUDED.deadline_ms,
    complete = EXCLUDED.complete,
    computed_at = now();
