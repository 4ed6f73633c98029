-- Fairness measures (jobs/online/fairness.py, docs/responsible-ml.md): one row per model version,
-- source (offline: evaluation + published lists; online: telemetry, '*' = the whole traffic)
-- and the end of the data it measured (the training data's newest event, or the online window's
-- end, both event time), so a rerun replaces its row. `measures` holds the groups, ratios,
-- exposure shares and their thresholds; `violations` counts the requirements broken.
CREATE TABLE IF NOT EXISTS fairness_measures (
    model_version text NOT NULL,
    source        text NOT NULL CHECK (source IN ('offline', 'online')),
    window_end    timestamp NOT NULL,
    measures      jsonb NOT NULL,
    violations    integer NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_version, source, window_end)
);

-- Every published model's generated model card (jobs/train/model_card.py): the JSON's path under
-- the reports site's reports directory, kept with the model in the registry.
ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS model_card text;
