"""The batch figures DAG tasks push to the Pushgateway: every name, help text and label, once.

jobs/monitoring.py pushes them, ops/prometheus/alerts-platform.yml and
ops/grafana/dashboards/recs.json query them, and their tests check every name they use
against this module (the serving tier's own metrics are defined in serving/telemetry.py).
Times are Unix timestamps (`*_timestamp_seconds`), so a rule computes an age as `time() - x`.
docs/monitoring.md says what each figure is, the data used and how it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One pushed gauge: its name, help text and label names."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


# Pushgateway groups: the `job` label, one per DAG step that owns the figures.
GROUP_VALIDATE = "ingest_validate"
GROUP_MARK = "ingest_mark"
GROUP_ONLINE = "online_evaluate"
GROUP_GATE = "train_gate"
GROUP_MODEL = "production_model"  # refreshed by publish and by every online evaluation
GROUP_FAIRNESS = "responsible_fairness"  # + "_offline" / "_online": one group per source

# Label values standing for online_metrics' roll-up '*' and empty '' (Prometheus drops an
# empty label, which would merge "no variant" with "no label").
ALL_LABEL = "all"
NONE_LABEL = "none"

# --- ingest: freshness and quarantines (GROUP_MARK) -------------------------------------------
SNAPSHOT_ACCEPTED_TIME = Metric(
    "recs_snapshot_last_accepted_timestamp_seconds",
    "Wall-clock time the newest accepted snapshot was validated.",
)
SNAPSHOT_NEWEST_EVENT = Metric(
    "recs_snapshot_newest_event_timestamp_seconds",
    "Newest event time (stream clock) in the accepted snapshots.",
)
SNAPSHOT_QUARANTINED = Metric(
    "recs_snapshot_quarantined",
    "1 when the latest judged snapshot was quarantined, 0 when it was accepted.",
)
SNAPSHOTS_QUARANTINED = Metric(
    "recs_snapshots_quarantined",
    "Snapshots in quarantine now (validated as bad and not re-admitted).",
)
SNAPSHOT_JUDGED_TIME = Metric(
    "recs_snapshot_last_judged_timestamp_seconds",
    "Wall-clock time the latest snapshot was accepted or quarantined.",
)

# --- ingest: drift of the last validated snapshot (GROUP_VALIDATE) ------------------------------
DRIFT = Metric(
    "recs_snapshot_drift",
    "Drift statistic of the last validated snapshot against its reference snapshots.",
    ("statistic",),
)
DRIFT_LIMIT = Metric(
    "recs_snapshot_drift_limit",
    "The expectations/thresholds.yml bound a drift statistic is checked against.",
    ("statistic", "bound"),
)
REJECT_RATE = Metric(
    "recs_snapshot_reject_rate",
    "Rejected lines / lines read of the last validated snapshot.",
)
SNAPSHOT_VALID = Metric(
    "recs_snapshot_validation_success",
    "1 when every expectation held on the last validated snapshot, else 0.",
)

# --- online evaluation: the latest complete hour (GROUP_ONLINE) ---------------------------------
ONLINE_LABELS = ("model_version", "variant")
ONLINE_AVAILABILITY = Metric(
    "recs_online_availability_ratio",
    "Share of recommendation requests a client got a 200 for within the deadline (800 ms).",
    ONLINE_LABELS,
)
ONLINE_LATENCY_P99 = Metric(
    "recs_online_latency_p99_seconds",
    "p99 of the client-measured response time of recommendation requests.",
    ONLINE_LABELS,
)
ONLINE_PERSONALISED = Metric(
    "recs_online_personalised_ratio",
    "Share of answers that came from a model rather than a fallback.",
    ONLINE_LABELS,
)
ONLINE_ACCURACY = Metric(
    "recs_online_accuracy_ratio",
    "Share of served lists followed by a watch of a listed movie within the window.",
    ONLINE_LABELS,
)
ONLINE_LISTS = Metric(
    "recs_online_lists",
    "Served lists behind the online accuracy of the hour.",
    ONLINE_LABELS,
)
ONLINE_BASELINE = Metric(
    "recs_online_accuracy_baseline_ratio",
    "Online accuracy of the whole traffic over the 7 days of complete hours before the hour.",
)
ONLINE_HOUR = Metric(
    "recs_online_hour_timestamp_seconds",
    "Start (stream clock) of the latest complete hour the online figures describe.",
)

# --- training: gate decisions (GROUP_GATE) and the production model (GROUP_MODEL) ----------------
GATE_PASSED = Metric(
    "recs_gate_passed",
    "1 when the last training run's candidate passed the gate, 0 when it was rejected.",
)
TRAINING_RUN_TIME = Metric(
    "recs_training_last_run_timestamp_seconds",
    "Wall-clock time the gate decided on the last training run.",
)
GATE_SCORE = Metric(
    "recs_gate_score",
    "Offline NDCG@20 on the run's test users of the candidate, the popularity baseline and "
    "production's configuration.",
    ("model",),
)
MODEL_PUBLISHED_TIME = Metric(
    "recs_model_published_timestamp_seconds",
    "Wall-clock time the served reco version (the production model's lists) was published.",
)
MODEL_INFO = Metric(
    "recs_model_production_info",
    "1 for the model version and reco version the serving pointer names.",
    ("model_version", "reco_version"),
)

# --- fairness requirements (GROUP_FAIRNESS; docs/responsible-ml.md) -----------------------------
FAIRNESS_LABELS = ("source", "model_version")
FAIRNESS_GROUP_RATIO = Metric(
    "recs_fairness_group_ratio",
    "Quality of service of the worst user group / the best group's (offline NDCG@20, online "
    "accuracy), per grouping (age, gender, history).",
    (*FAIRNESS_LABELS, "grouping"),
)
FAIRNESS_GROUP_RATIO_LIMIT = Metric(
    "recs_fairness_group_ratio_limit",
    "The least worst/best ratio the fairness requirement allows for the grouping.",
    (*FAIRNESS_LABELS, "grouping"),
)
EXPOSURE_SHARE = Metric(
    "recs_exposure_share",
    "Share of served slots that hold a long-tail (kind=long_tail) or new (kind=new_movie) movie.",
    (*FAIRNESS_LABELS, "kind"),
)
EXPOSURE_SHARE_LIMIT = Metric(
    "recs_exposure_share_limit",
    "The least exposure share the catalogue requirement allows.",
    (*FAIRNESS_LABELS, "kind"),
)
FAIRNESS_MET = Metric(
    "recs_fairness_requirement_met",
    "1 when the fairness requirement holds, 0 when it is violated (judged measures only).",
    (*FAIRNESS_LABELS, "requirement"),
)

PUSHED = (
    SNAPSHOT_ACCEPTED_TIME,
    SNAPSHOT_NEWEST_EVENT,
    SNAPSHOT_QUARANTINED,
    SNAPSHOTS_QUARANTINED,
    SNAPSHOT_JUDGED_TIME,
    DRIFT,
    DRIFT_LIMIT,
    REJECT_RATE,
    SNAPSHOT_VALID,
    ONLINE_AVAILABILITY,
    ONLINE_LATENCY_P99,
    ONLINE_PERSONALISED,
    ONLINE_ACCURACY,
    ONLINE_LISTS,
    ONLINE_BASELINE,
    ONLINE_HOUR,
    GATE_PASSED,
    TRAINING_RUN_TIME,
    GATE_SCORE,
    MODEL_PUBLISHED_TIME,
    MODEL_INFO,
    FAIRNESS_GROUP_RATIO,
    FAIRNESS_GROUP_RATIO_LIMIT,
    EXPOSURE_SHARE,
    EXPOSURE_SHARE_LIMIT,
    FAIRNESS_MET,
)
