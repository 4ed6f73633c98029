-- One user's precomputed list in one reco version: a primary-key lookup in one partition.
PREPARE serving_lookup (text, bigint) AS
SELECT items FROM recommendations WHERE reco_version = $1 AND user_id = $2
