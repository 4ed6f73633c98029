-- Which of the given movie ids the catalogue already holds.
SELECT movie_id FROM movies WHERE movie_id = ANY(CAST(:ids AS text[]));
