-- The newest fairness result per source of one model version (its model card shows them).
SELECT DISTINCT ON (source) measures
FROM fairness_measures
WHERE model_version = %(model)s
ORDER BY source, window_end DESC;
