-- What is live: the published reco version (with its model), the popularity list, and when.
SELECT p.reco_version,
       v.model_version,
       v.published_at,
       p.popular_version,
       pl.items AS popular_items,
       pl.window_end AS popular_window_end,
       p.updated_at
FROM serving_pointer AS p
LEFT JOIN reco_versions AS v ON v.reco_version = p.reco_version
LEFT JOIN popular_lists AS pl ON pl.popular_version = p.popular_version
WHERE p.id
