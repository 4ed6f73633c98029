-- Provenance of one served recommendation (docs/provenance.md), from the fields its prediction
-- row in the lake table `predictions` carries: model_version, reco_version, user_id, event_time.
-- One row: the served version, the model (or, for a popularity answer, the popularity list and
-- the evaluated baseline whose configuration made it), the evaluated twin of a refit, the
-- experiment the variant belonged to, and the training snapshots with offsets and files.
--
-- By hand (psql variables; an empty reco_version means a popularity or cache answer):
--   psql "$DATABASE_URL" -x -v model_version=item_knn-… -v reco_version=reco-item_knn-… \
--        -v user_id=42 -v event_time=2025-01-02T03:04:05Z -f sql/provenance/recommendation.sql
-- jobs/online/provenance.py runs the same file, each psql variable bound as a parameter.
WITH served AS (
    SELECT CAST(:'model_version' AS text) AS logged_version,
           nullif(CAST(:'reco_version' AS text), '') AS reco_version,
           CAST(:'user_id' AS bigint) AS user_id,
           CAST(:'event_time' AS timestamptz) AS event_time
),
popular AS (
    SELECT pl.*
    FROM popular_lists AS pl, served AS s
    WHERE s.reco_version IS NULL AND pl.popular_version = s.logged_version
),
reco AS (
    SELECT rv.*
    FROM reco_versions AS rv
    JOIN served AS s USING (reco_version)
),
-- The registry row that answers for the data and configuration: the served model, or the
-- popularity baseline behind a popularity list.
model AS (
    SELECT m.*
    FROM model_registry AS m, served AS s
    WHERE m.model_version = coalesce(
        (SELECT model_version FROM reco),
        (SELECT baseline_version FROM popular),
        CASE WHEN s.reco_version IS NOT NULL THEN s.logged_version END
    )
),
snapshot AS (
    SELECT e.ord, e.snap, ls.status, ls.offsets AS registered_offsets
    FROM model AS m
    CROSS JOIN LATERAL jsonb_array_elements(m.dataset_manifest -> 'snapshots')
        WITH ORDINALITY AS e (snap, ord)
    LEFT JOIN snapshots AS ls ON ls.snapshot_id = e.snap ->> 'snapshot_id'
)
SELECT
    s.logged_version,
    s.reco_version,
    (SELECT row_to_json(r)::jsonb FROM reco AS r) AS reco,
    (SELECT row_to_json(p)::jsonb FROM popular AS p) AS popular,
    (SELECT row_to_json(m)::jsonb FROM model AS m) AS model,
    (SELECT row_to_json(e)::jsonb
     FROM model_registry AS e
     WHERE e.model_version = (SELECT evaluated_as FROM model)) AS evaluated,
    -- The list stored for this user now (NULL once the version's table is retired).
    coalesce(
        (SELECT r.items FROM recommendations AS r
         WHERE r.reco_version = s.reco_version AND r.user_id = s.user_id),
        (SELECT items FROM popular)
    ) AS stored_items,
    (SELECT jsonb_build_object('experiment_id', x.experiment_id, 'share', v.share,
                               'started_at', x.started_at, 'ended_at', x.ended_at)
     FROM experiment_variants AS v
     JOIN experiments AS x USING (experiment_id)
     WHERE v.reco_version = s.reco_version
       AND x.started_at <= s.event_time
       AND (x.ended_at IS NULL OR x.ended_at >= s.event_time)
     ORDER BY x.started_at DESC
     LIMIT 1) AS experiment,
    (SELECT jsonb_agg(
                jsonb_build_object(
                    'snapshot_id', sn.snap ->> 'snapshot_id',
                    'path', sn.snap ->> 'path',
                    'status', sn.status,
                    'topic', sn.snap -> 'manifest' ->> 'topic',
                    'offsets', sn.snap -> 'manifest' -> 'offsets',
                    'registered_offsets', sn.registered_offsets,
                    'lines_read', sn.snap -> 'manifest' -> 'lines_read',
                    -- The files training read (watch, rate), with the hashes ingest wrote.
                    'files', (
                        SELECT jsonb_agg(f ORDER BY f ->> 'path')
                        FROM jsonb_array_elements(sn.snap -> 'manifest' -> 'files') AS f
                        WHERE f ->> 'path' IN (
                            SELECT jsonb_array_elements_text(sn.snap -> 'files')
                        )
                    )
                )
                ORDER BY sn.ord
            )
     FROM snapshot AS sn) AS snapshots
FROM served AS s
