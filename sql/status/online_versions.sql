-- The status page: served lists and hits per event-time hour and model version, summed over
-- variants ('*' roll-ups and '' = no answer to attribute excluded), the last :hours hours.
SELECT hour, model_version, sum(lists)::bigint AS lists, sum(hits)::bigint AS hits
FROM online_metrics
WHERE model_version NOT IN ('*', '') AND variant <> '*'
  AND hour > (SELECT max(hour) FROM online_metrics) - make_interval(hours => %(hours)s)
GROUP BY hour, model_version
ORDER BY hour, model_version;
