-- Model registry: every trained model version with its full provenance. Written by
-- jobs/train/registry.py (train registers candidates; the gate sets production/rejected/retired).
CREATE TABLE IF NOT EXISTS model_registry (
    model_version     text PRIMARY KEY,          -- <family>-<YYYYmmddHHMMSS newest data>-<hash8>
    family            text NOT NULL,
    hyperparameters   jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics           jsonb NOT NULL DEFAULT '{}'::jsonb,  -- offline evaluation + measurements
    dataset_manifest  jsonb NOT NULL DEFAULT '{}'::jsonb,  -- snapshots, Kafka offsets, files
    dataset_path      text,
    data_newest_event timestamp,                 -- newest event time in the training data
    git_commit        text,
    library_versions  jsonb NOT NULL DEFAULT '{}'::jsonb,
    artifact_path     text NOT NULL,
    artifact_sha256   text NOT NULL CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    training_seconds  double precision,
    status            text NOT NULL DEFAULT 'candidate'
                      CHECK (status IN ('candidate', 'production', 'rejected', 'retired')),
    status_reason     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- At most one production model at any time (set_status swaps it in one transaction).
CREATE UNIQUE INDEX IF NOT EXISTS model_registry_one_production
    ON model_registry ((true)) WHERE status = 'production';
CREATE INDEX IF NOT EXISTS model_registry_family_created
    ON model_registry (family, created_at DESC);

-- Select, then refit: a published model is a refit of an evaluated candidate on all the data
-- of its window. `evaluated_as` names the evaluated version whose held-out numbers it carries;
-- `trained_on` says which part of the dataset each artifact saw (part, rows, users, newest).
ALTER TABLE model_registry
    ADD COLUMN IF NOT EXISTS evaluated_as text REFERENCES model_registry (model_version),
    ADD COLUMN IF NOT EXISTS trained_on jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Retention (jobs/publish/retention.py) marks a model whose artifact and scored lists it removed;
-- the row stays, and provenance says "removed by retention" instead of "missing".
ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS artifact_removed_at timestamptz;
