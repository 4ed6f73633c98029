"""Names every part shares: column names (pandas and Spark alike, used as keyword defaults),
the list length K and the metric keys the registry, the gate and the reports use."""

USER_COL = "user_id"
ITEM_COL = "movie_id"
RATING_COL = "rating"
TIME_COL = "event_time"
DATE_COL = "event_date"
MINUTE_COL = "minute"
STRENGTH_COL = "strength"
PREDICTION_COL = "prediction"
RANK_COL = "rank"
SNAPSHOT_COL = "snapshot_id"
PARTITION_COL = "kafka_partition"
OFFSET_COL = "kafka_offset"

K = 20  # movies per served list, per evaluated list, per scored row
METRIC = f"ndcg_at_{K}"  # the metric that chooses and gates models (registry key)
