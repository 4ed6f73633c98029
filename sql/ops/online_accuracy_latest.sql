-- The newest hours of online accuracy per model version (all variants together), for `make demo`.
SELECT hour, model_version, lists, online_accuracy, accuracy_low, accuracy_high
FROM online_metrics
WHERE variant IN ('', '*') AND model_version <> '*' AND lists > 0
ORDER BY hour DESC, model_version
LIMIT %(n)s
