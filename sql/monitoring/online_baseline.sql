-- Trailing 7-day online accuracy of the whole traffic before %(hour)s: hits / lists summed over
-- the complete hours (a ratio of sums, so a busy hour weighs more than a quiet one).
SELECT sum(hits)::double precision / nullif(sum(lists), 0) AS accuracy
FROM online_metrics
WHERE model_version = '*' AND variant = '*' AND complete
  AND hour >= %(hour)s - interval '7 days' AND hour < %(hour)s
