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

# The serving prediction log (serving/telemetry.py writes it, jobs/online/predictions.py
# ingests it): each process appends to its active file; a full one is sealed under a unique,
# never reused name (pid, UTC time of sealing, sequence), which ingestion takes and deletes.
PREDICTION_LOG_ACTIVE = "predictions-{pid}.jsonl"
PREDICTION_LOG_SEALED = "predictions-{pid}-{stamp}-{seq:04d}.jsonl"
PREDICTION_LOG_SEALED_RE = r"predictions-(\d+)-(\d{8}T\d{12}Z)-(\d{4,})\.jsonl"
PREDICTION_LOG_ACTIVE_RE = r"predictions-(\d+)\.jsonl"
PREDICTION_LOG_STAMP = "%Y%m%dT%H%M%S%fZ"
# Columns of the lake table `predictions` (besides USER_COL and TIME_COL)
REQUEST_ID_COL = "request_id"
MODEL_VERSION_COL = "model_version"
RECO_VERSION_COL = "reco_version"
VARIANT_COL = "variant"
SOURCE_COL = "source"
# What the shadow version would have answered (absent or null when no shadow ran or its lookup
# failed; shadow_items null alone: the shadow had no list for the user)
SHADOW_VERSION_COL = "shadow_version"
SHADOW_LIST_COL = "shadow_items"
# user-level experiment outcomes (jobs/online/experiment_analysis.py, simulator/outcomes.py)
REQUESTS_COL = "requests"
LISTS_COL = "lists"
HITS_COL = "hits"
FIRST_SEEN_COL = "first_seen"
SERVED_LIST_COL = "items"  # the served ids, in order (publish.py names its own column)
