-- Experiment plans (jobs/publish/experiments.py, docs/experiments.md): what each experiment was
-- sized for and the users each arm needs. The primary metric is the user hit rate (share of
-- users with at least one served list followed by a watch of a listed movie within the window);
-- the sample size is that of a two-sided two-proportion z-test on it. Idempotent: experiments
-- started before this file have NULL plans, which status and reports show as "no plan".
ALTER TABLE experiments
    ADD COLUMN IF NOT EXISTS control        text,
    ADD COLUMN IF NOT EXISTS baseline_rate  double precision
        CHECK (baseline_rate > 0 AND baseline_rate < 1),
    ADD COLUMN IF NOT EXISTS min_effect     double precision
        CHECK (min_effect <> 0 AND min_effect > -1 AND min_effect < 1),
    ADD COLUMN IF NOT EXISTS alpha          double precision CHECK (alpha > 0 AND alpha < 1),
    ADD COLUMN IF NOT EXISTS power          double precision CHECK (power > 0 AND power < 1);

ALTER TABLE experiment_variants
    ADD COLUMN IF NOT EXISTS planned_users  bigint CHECK (planned_users >= 0);
