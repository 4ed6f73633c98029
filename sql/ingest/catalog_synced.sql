-- Record snapshots whose every id the catalogue now holds (known or unknown).
INSERT INTO catalog_synced (snapshot_id)
SELECT unnest(CAST(:ids AS text[]))
ON CONFLICT (snapshot_id) DO NOTHING;
