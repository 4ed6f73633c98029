-- One fairness result (jobs/online/fairness.py store): a rerun on the same data replaces it.
INSERT INTO fairness_measures (model_version, source, window_end, measures, violations)
VALUES (%(model_version)s, %(source)s, %(window_end)s, %(measures)s, %(violations)s)
ON CONFLICT (model_version, source, window_end) DO UPDATE
SET measures = EXCLUDED.measures, violations = EXCLUDED.violations, computed_at = now();
