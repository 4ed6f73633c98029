-- What the serving tier reads. Written only by jobs/score (write-audit-publish) and by
-- experiment admin; the server's role (recs_reader) can only SELECT.

-- One partition per scored version: jobs/score loads a standalone table with COPY, audits
-- it, attaches it as a partition, then switches serving_pointer in one transaction.
CREATE TABLE IF NOT EXISTS recommendations (
    reco_version  text   NOT NULL,
    user_id       bigint NOT NULL,
    items         text   NOT NULL,            -- 'id1,id2,…,id20', best first, as served
    PRIMARY KEY (reco_version, user_id)
) PARTITION BY LIST (reco_version);

-- Every scored version, published or not (for audit, rollback and A/B variants).
CREATE TABLE IF NOT EXISTS reco_versions (
    reco_version   text PRIMARY KEY,
    model_version  text NOT NULL,             -- model_registry.model_version
    table_name     text NOT NULL,
    n_users        bigint NOT NULL,
    status         text NOT NULL DEFAULT 'loaded'
                   CHECK (status IN ('loaded', 'audited', 'published', 'retired', 'failed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);

-- Popularity lists (fallback for unknown and cold users), versioned the same way.
CREATE TABLE IF NOT EXISTS popular_lists (
    popular_version text PRIMARY KEY,
    items           text NOT NULL,            -- 'id1,…,id20', best first
    window_end      timestamptz,              -- newest event time the list was computed from
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Where a popularity list came from (docs/provenance.md): the evaluated popularity model whose
-- configuration was fitted on every interaction of `dataset_path`, and the publishing code.
ALTER TABLE popular_lists
    ADD COLUMN IF NOT EXISTS baseline_version text,  -- model_registry.model_version
    ADD COLUMN IF NOT EXISTS dataset_path     text,
    ADD COLUMN IF NOT EXISTS git_commit       text,
    ADD COLUMN IF NOT EXISTS library_versions jsonb;

-- The single row the server reads to know what is live. Publishing or rolling back is
-- one UPDATE of this row; the previous values are kept for `make rollback`.
CREATE TABLE IF NOT EXISTS serving_pointer (
    id                        boolean PRIMARY KEY DEFAULT true CHECK (id),
    reco_version              text REFERENCES reco_versions (reco_version),
    popular_version           text REFERENCES popular_lists (popular_version),
    previous_reco_version     text,
    previous_popular_version  text,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
INSERT INTO serving_pointer (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

-- A/B experiments: when one is active, a user's variant is a stable hash of (salt, user id)
-- over the variants' shares, and the lookup uses that variant's reco_version.
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id  text PRIMARY KEY,
    salt           text NOT NULL,
    active         boolean NOT NULL DEFAULT false,
    started_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS experiments_one_active ON experiments (active) WHERE active;

CREATE TABLE IF NOT EXISTS experiment_variants (
    experiment_id  text NOT NULL REFERENCES experiments (experiment_id),
    variant        text NOT NULL,
    reco_version   text NOT NULL REFERENCES reco_versions (reco_version),
    share          double precision NOT NULL CHECK (share >= 0 AND share <= 1),
    PRIMARY KEY (experiment_id, variant)
);
