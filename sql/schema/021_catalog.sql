-- Metadata dimensions fetched from the metadata API by jobs/ingest/catalog.py.
-- status 'known' = the API answered; 'unknown' = it answered 404 (kept so we do not ask again).
CREATE TABLE IF NOT EXISTS movies (
    movie_id           text PRIMARY KEY,
    status             text NOT NULL CHECK (status IN ('known', 'unknown')),
    tmdb_id            bigint,
    imdb_id            text,
    title              text,
    genres             text[],
    release_date       date,
    runtime            integer,
    popularity         double precision,
    vote_average       double precision,
    vote_count         bigint,
    original_language  text,
    raw                jsonb,
    fetched_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    user_id     bigint PRIMARY KEY,
    status      text NOT NULL CHECK (status IN ('known', 'unknown')),
    age         integer,
    occupation  text,
    gender      text,
    raw         jsonb,
    fetched_at  timestamptz NOT NULL DEFAULT now()
);

-- Accepted snapshots whose ids the catalogue sync has fully looked up (jobs/ingest/catalog.py):
-- its watermark. Each run reads only accepted snapshots not listed here, and lists them once
-- every id they hold is known or `unknown` (a run that left ids unfetched lists none, so the
-- next run asks again).
CREATE TABLE IF NOT EXISTS catalog_synced (
    snapshot_id  text PRIMARY KEY,
    synced_at    timestamptz NOT NULL DEFAULT now()
);
