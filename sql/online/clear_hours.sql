-- The evaluated hours' rows, removed in the transaction that writes them again (a rerun
-- leaves exactly what the lake says now, also when a version or variant no longer appears).
DELETE FROM online_metrics WHERE hour >= %(start)s AND hour < %(end)s;
