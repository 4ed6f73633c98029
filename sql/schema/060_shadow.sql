-- Shadow deployment (jobs/publish/experiments.py `shadow`, docs/experiments.md): a candidate
-- reco version whose lists are published (attached) but never served. For each served request
-- the server looks up what the shadow would have answered and logs it beside the answer.
-- At most one shadow is active; ended rows stay as history. Idempotent.
CREATE TABLE IF NOT EXISTS shadow_deployments (
    shadow_id     bigserial PRIMARY KEY,
    reco_version  text NOT NULL REFERENCES reco_versions (reco_version),
    active        boolean NOT NULL DEFAULT true,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS shadow_deployments_one_active
    ON shadow_deployments (active) WHERE active;

-- The serving role reads it (011's default privileges cover tables created after it too; this
-- covers a schema where the table existed before them).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recs_reader') THEN
        EXECUTE 'GRANT SELECT ON shadow_deployments TO recs_reader';
    END IF;
END
$$;
