-- The audit of a loaded version's table before it is attached (jobs/publish/publish.py).

-- name: list_shapes
-- Rows; rows without exactly k ids; rows that repeat an id.
SELECT count(*),
       count(*) FILTER (WHERE cardinality(a) <> %(k)s),
       count(*) FILTER (
           WHERE (SELECT count(DISTINCT x) FROM unnest(a) AS x) <> cardinality(a)
       )
FROM (SELECT string_to_array(items, ',') AS a FROM {table}) AS s

-- name: create_catalog
CREATE TEMP TABLE audit_catalog (movie_id text PRIMARY KEY) ON COMMIT DROP

-- name: fill_catalog
INSERT INTO audit_catalog SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING

-- name: unknown_ids
-- Listed ids missing from audit_catalog, and up to five of them.
SELECT count(*), (array_agg(DISTINCT x))[1:5]
FROM {table} AS t, unnest(string_to_array(t.items, ',')) AS x
WHERE NOT EXISTS (SELECT 1 FROM audit_catalog AS c WHERE c.movie_id = x)
