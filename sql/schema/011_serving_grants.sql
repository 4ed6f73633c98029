-- The serving role (recs_reader) may SELECT every table the schema owner creates, now and
-- later (new partitions are read through their parent, which is covered too). Idempotent;
-- a database without that role (e.g. an external deployment with another name) is left as is.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recs_reader') THEN
        EXECUTE 'GRANT USAGE ON SCHEMA public TO recs_reader';
        EXECUTE 'GRANT SELECT ON recommendations, reco_versions, popular_lists, serving_pointer, '
                'experiments, experiment_variants TO recs_reader';
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO recs_reader';
    END IF;
END
$$;
