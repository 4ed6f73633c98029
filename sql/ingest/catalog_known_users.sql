-- Which of the given user ids the catalogue already holds.
SELECT user_id FROM users WHERE user_id = ANY(CAST(:ids AS bigint[]));
