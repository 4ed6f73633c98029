-- Ingested movielog snapshots (jobs/ingest registers, jobs/validate sets the status).
-- The lake manifest (snapshots/<id>/manifest.json) is the source of truth; this table mirrors it
-- so that training lists `accepted` snapshots with one query (jobs.ingest.lake.accepted_snapshots).
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id     text PRIMARY KEY,            -- s<seq:06d>, seq from the lake, never the clock
    topic           text NOT NULL,
    status          text NOT NULL DEFAULT 'ingested'
                    CHECK (status IN ('ingested', 'accepted', 'quarantined')),
    path            text NOT NULL,               -- the snapshot directory in the lake
    offsets         jsonb NOT NULL,              -- {"<partition>": [start, end)}
    row_counts      jsonb NOT NULL,              -- {"watch": n, "rate": n, ...}
    manifest        jsonb NOT NULL,
    reasons         text,                        -- why it was quarantined (failed expectations)
    created_at      timestamptz NOT NULL DEFAULT now(),
    validated_at    timestamptz,
    min_event_time  timestamp,
    max_event_time  timestamp
);
CREATE INDEX IF NOT EXISTS snapshots_status_time ON snapshots (status, max_event_time);

-- Quarantined snapshots an operator re-admitted after inspection (python -m jobs.ingest.readmit):
-- who, why, when, and what validation had said. The snapshot's status becomes `accepted`.
CREATE TABLE IF NOT EXISTS snapshot_readmissions (
    snapshot_id         text NOT NULL REFERENCES snapshots (snapshot_id),
    readmitted_by       text NOT NULL,
    reason              text NOT NULL CHECK (length(trim(reason)) > 0),
    quarantine_reasons  text,                    -- snapshots.reasons when it was re-admitted
    readmitted_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (snapshot_id, readmitted_at)
);

-- Retention (jobs/publish/retention.py) never deletes a row: a quarantined snapshot whose files
-- it removed is marked here, and re-admitting it is refused.
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS removed_at timestamptz;
