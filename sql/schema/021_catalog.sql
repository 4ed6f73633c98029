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
