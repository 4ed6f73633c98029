"""Settings read from the environment, with the embedded-local defaults from DESIGN.md.

No side effects on import: every value is read when `load()` is called, so tests and
operators can point any part at external services by setting the variable beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Embedded loopback defaults. Production values come from the environment (.env.example).
DEFAULTS = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_TOPIC": "movielog",
    "KAFKA_PARTITIONS": "3",
    "DATABASE_URL": "postgresql://recs:recs@127.0.0.1:55432/recs",
    "SERVING_DATABASE_URL": "postgresql://recs_reader:recs_reader@127.0.0.1:55432/recs",
    "SPARK_MASTER_URL": "local[2]",
    # The standalone cluster of ops/spark_cluster.py: SPARK_MASTER_URL=spark://127.0.0.1:7077
    "SPARK_MASTER_PORT": "7077",
    "SPARK_MASTER_UI_PORT": "8070",
    "SERVING_PORT": "8082",
    "AIRFLOW_PORT": "8080",
    "METADATA_API_URL": "http://127.0.0.1:8090",
    "REPORTS_PORT": "8091",
    "PROMETHEUS_PORT": "9090",
    "PUSHGATEWAY_PORT": "9091",
    "ALERTMANAGER_PORT": "9093",
    "ALERT_RECEIVER_PORT": "9095",
    "RECS_VAR_DIR": str(REPO_ROOT / ".var"),
    "RECS_CACHE_DIR": str(REPO_ROOT / ".cache"),
}


@dataclass(frozen=True)
class Settings:
    """Every externally configurable name of the platform, resolved once per call to load()."""

    kafka_bootstrap_servers: str
    kafka_topic: str
    kafka_partitions: int
    database_url: str
    serving_database_url: str
    spark_master_url: str
    spark_master_port: int
    spark_master_ui_port: int
    serving_port: int
    airflow_port: int
    metadata_api_url: str
    reports_port: int
    prometheus_port: int
    pushgateway_port: int
    alertmanager_port: int
    alert_receiver_port: int
    var_dir: Path
    cache_dir: Path

    @property
    def lake_dir(self) -> Path:
        """Root of the Parquet lake (snapshots, derived tables, datasets)."""
        return self.var_dir / "lake"

    @property
    def models_dir(self) -> Path:
        """Where trained model artifacts are stored, one folder per model version."""
        return self.var_dir / "models"

    @property
    def reports_dir(self) -> Path:
        """Evaluation reports (HTML + JSON + PNG) per training run."""
        return self.var_dir / "reports"

    @property
    def data_docs_dir(self) -> Path:
        """The Great Expectations Data Docs site."""
        return self.var_dir / "gx" / "data_docs"

    @property
    def popular_fallback_file(self) -> Path:
        """The popularity list the server answers from when it starts during an outage."""
        return self.var_dir / "serving" / "popular_cache.json"

    @property
    def log_dir(self) -> Path:
        """Service and job logs."""
        return self.var_dir / "log"

    @property
    def alerts_log(self) -> Path:
        """Every alert Alertmanager delivered, one JSON object per line (the webhook receiver)."""
        return self.log_dir / "alerts.jsonl"

    @property
    def site_dir(self) -> Path:
        """The status page and its plots, served on REPORTS_PORT with Data Docs and reports."""
        return self.var_dir / "site"

    # The monitoring stack on loopback (ops/monitoring.py); *_URL points a part elsewhere
    # (compose: http://pushgateway:9091).
    @property
    def prometheus_url(self) -> str:
        return os.environ.get("PROMETHEUS_URL") or f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def pushgateway_url(self) -> str:
        return os.environ.get("PUSHGATEWAY_URL") or f"http://127.0.0.1:{self.pushgateway_port}"

    @property
    def alertmanager_url(self) -> str:
        return os.environ.get("ALERTMANAGER_URL") or f"http://127.0.0.1:{self.alertmanager_port}"


def env(name: str) -> str:
    """One setting's raw value: the environment first, then the embedded default."""
    return os.environ.get(name) or DEFAULTS[name]


def env_number(name: str, default: float) -> float:
    """A numeric tuning knob from the environment (unset or empty: `default`)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


def load() -> Settings:
    """Read all settings from the environment now."""
    return Settings(
        kafka_bootstrap_servers=env("KAFKA_BOOTSTRAP_SERVERS"),
        kafka_topic=env("KAFKA_TOPIC"),
        kafka_partitions=int(env("KAFKA_PARTITIONS")),
        database_url=env("DATABASE_URL"),
        serving_database_url=env("SERVING_DATABASE_URL"),
        spark_master_url=env("SPARK_MASTER_URL"),
        spark_master_port=int(env("SPARK_MASTER_PORT")),
        spark_master_ui_port=int(env("SPARK_MASTER_UI_PORT")),
        serving_port=int(env("SERVING_PORT")),
        airflow_port=int(env("AIRFLOW_PORT")),
        metadata_api_url=env("METADATA_API_URL"),
        reports_port=int(env("REPORTS_PORT")),
        prometheus_port=int(env("PROMETHEUS_PORT")),
        pushgateway_port=int(env("PUSHGATEWAY_PORT")),
        alertmanager_port=int(env("ALERTMANAGER_PORT")),
        alert_receiver_port=int(env("ALERT_RECEIVER_PORT")),
        var_dir=Path(env("RECS_VAR_DIR")),
        cache_dir=Path(env("RECS_CACHE_DIR")),
    )


def git_commit_override() -> str | None:
    """GIT_COMMIT: the commit a deployment was built from (images carry no .git)."""
    return os.environ.get("GIT_COMMIT") or None


# Gate knobs (jobs/train/gate.py validates them)
def gate_tolerance() -> float:
    """Relative NDCG@20 drop allowed against production (GATE_NDCG_TOLERANCE, default 0.05)."""
    return env_number("GATE_NDCG_TOLERANCE", 0.05)


def gate_min_users() -> int:
    """Fewest distinct test users the gate decides on (GATE_MIN_USERS, default 100)."""
    return _env_int("GATE_MIN_USERS", 100)


def retrain_accuracy_drop() -> float:
    """Relative drop of online accuracy below its trailing 7-day baseline that triggers
    retraining and the accuracy alert (RETRAIN_ACCURACY_DROP, default 0.2 = 20% below)."""
    return env_number("RETRAIN_ACCURACY_DROP", 0.2)


# Training at scale (jobs/train/train.py, docs/models.md "Training at scale")
def train_spark_rows() -> int:
    """Interactions above which training runs in Spark: the dataset is read as a Spark
    DataFrame, kNN similarities are Spark jobs, the rating model is Spark ALS instead of
    Surprise's SVD (counted: rated interactions) and evaluation uses the Spark metrics
    (TRAIN_SPARK_ROWS, default 500,000: below one day of the scenario world, 782,107, so the
    1M-user scale run never holds an interactions-sized frame in the driver; docs/scale.md)."""
    return _env_int("TRAIN_SPARK_ROWS", 500_000)


# Retention (jobs/publish/retention.py, docs/operations.md "Retention")
def retention_days() -> float:
    """Days that retired models, ended experiments and prediction batches are kept before the
    daily `retention` DAG removes what nothing else needs (RETENTION_DAYS, default 30)."""
    days = env_number("RETENTION_DAYS", 30)
    if days < 1:
        raise ValueError(f"RETENTION_DAYS={days!r} must be at least 1 day")
    return days


# Exploration (jobs/publish/score.py, docs/responsible-ml.md "Feedback loops")
def exploration_slots() -> int:
    """Places at the end of each scored list given to movies drawn uniformly from those the
    user has not seen, so the loop can learn about movies the model would not show
    (EXPLORATION_SLOTS, default 0: off)."""
    from contracts.names import K

    slots = _env_int("EXPLORATION_SLOTS", 0)
    if not 0 <= slots < K:
        raise ValueError(f"EXPLORATION_SLOTS={slots} must be between 0 and {K - 1}")
    return slots


# Local services (ops/services.py)
def pg_bin() -> Path:
    """Directory of the PostgreSQL server binaries (PG_BIN, default Debian's PostgreSQL 15)."""
    return Path(os.environ.get("PG_BIN") or "/usr/lib/postgresql/15/bin")


def postgres_homes_dir() -> Path:
    """Where the platform cluster lives when the `postgres` OS user cannot reach the checkout
    (RECS_POSTGRES_HOMES, default /var/lib/movierecs; one subdirectory per checkout)."""
    return Path(os.environ.get("RECS_POSTGRES_HOMES") or "/var/lib/movierecs")


def running_in_ci() -> bool:
    """CI=true (or 1/yes): the test run treats every skipped test as a failure."""
    return (os.environ.get("CI") or "").strip().lower() in ("1", "true", "yes")


def passthrough_env() -> dict[str, str]:
    """The caller's environment, handed to the processes ops starts (supervisord and its
    programs): they read their own knobs from it, as any process of the platform does."""
    return dict(os.environ)


def supervisor_startretries() -> int:
    """Failed starts supervisord retries, waiting 1 s, 2 s, … between them, before it marks a
    program FATAL (SUPERVISOR_STARTRETRIES, default 30: about 8 minutes of back-off)."""
    return _env_int("SUPERVISOR_STARTRETRIES", 30)


def batch_niceness() -> int:
    """Niceness of the embedded Airflow scheduler and DAG processor, and so of every task they
    run (BATCH_NICENESS, default 10; 0 = as the serving tier)."""
    return _env_int("BATCH_NICENESS", 10)


def kafka_controller_port() -> int:
    """The embedded broker's KRaft controller listener (KAFKA_CONTROLLER_PORT, default the
    bootstrap port + 2 = 9094: the port above Kafka's, 9093, is Alertmanager's in DESIGN.md)."""
    bootstrap_port = int(env("KAFKA_BOOTSTRAP_SERVERS").split(",")[0].rsplit(":", 1)[1])
    return _env_int("KAFKA_CONTROLLER_PORT", bootstrap_port + 2)


def kafka_heap_opts() -> str:
    """JVM heap options of the embedded Kafka broker (KAFKA_HEAP_OPTS)."""
    return os.environ.get("KAFKA_HEAP_OPTS") or "-Xms512m -Xmx1g"


# The Spark standalone cluster (ops/spark_cluster.py) and its executors (jobs/spark.py)
def spark_worker_instances() -> int:
    """Workers the local standalone cluster starts (SPARK_WORKER_INSTANCES, default 2)."""
    return _env_int("SPARK_WORKER_INSTANCES", 2)


def spark_worker_cores() -> int:
    """Cores each worker offers, and so each executor takes (SPARK_WORKER_CORES, default 1)."""
    return _env_int("SPARK_WORKER_CORES", 1)


def spark_worker_memory() -> str:
    """Memory each worker offers its executors (SPARK_WORKER_MEMORY, default 2g)."""
    return os.environ.get("SPARK_WORKER_MEMORY") or "2g"


def spark_executor_memory() -> str:
    """JVM heap of each executor on a cluster (SPARK_EXECUTOR_MEMORY, default 1g): within the
    worker's memory, the rest of the node left to the executor's Python workers."""
    return os.environ.get("SPARK_EXECUTOR_MEMORY") or "1g"


# Serving knobs (serving/app.py, serving/workers.py, serving/telemetry.py, serving/gunicorn_conf.py)
def _env_int(name: str, default: int) -> int:
    """A whole-number knob from the environment (unset or empty: `default`)."""
    value = env_number(name, default)
    if value != int(value):
        raise ValueError(f"{name}={value!r} is not a whole number")
    return int(value)


def serving_rate_limit() -> tuple[float, float]:
    """(requests/s, burst) per client address on /recommend (SERVING_RATE_LIMIT_RPS, default 0
    = off; SERVING_RATE_LIMIT_BURST, default 2 s worth): serving/ratelimit.py."""
    rate = env_number("SERVING_RATE_LIMIT_RPS", 0.0)
    return rate, env_number("SERVING_RATE_LIMIT_BURST", max(1.0, 2 * rate))


def serving_host() -> str:
    """Interface gunicorn binds (SERVING_HOST, default loopback)."""
    return os.environ.get("SERVING_HOST") or "127.0.0.1"


def serving_workers() -> int:
    """gunicorn worker processes (SERVING_WORKERS, default 2)."""
    return _env_int("SERVING_WORKERS", 2)


def serving_worker_class() -> str:
    """gunicorn worker class (SERVING_WORKER_CLASS, default the sync worker with a deadline)."""
    return os.environ.get("SERVING_WORKER_CLASS") or "serving.workers.DeadlineSyncWorker"


def serving_threads() -> int:
    """Threads per worker when the worker class is gthread (SERVING_THREADS, default 4)."""
    return _env_int("SERVING_THREADS", 4)


def serving_access_log() -> str | None:
    """gunicorn access log target (SERVING_ACCESS_LOG: unset = off, "-" = stdout)."""
    return os.environ.get("SERVING_ACCESS_LOG") or None


def serving_log_level() -> str:
    """gunicorn log level (SERVING_LOG_LEVEL, default info)."""
    return os.environ.get("SERVING_LOG_LEVEL") or "info"


def serving_client_timeout_s() -> float:
    """Read/write deadline on a client socket (SERVING_CLIENT_TIMEOUT_S, default 1 s; the
    worker rejects values <= 0)."""
    return env_number("SERVING_CLIENT_TIMEOUT_S", 1.0)


def serving_refresh_s() -> float:
    """Seconds between re-reads of the serving pointer (SERVING_REFRESH_S, default 2)."""
    return env_number("SERVING_REFRESH_S", 2.0)


def serving_pool_size() -> int:
    """Database connections per worker (SERVING_POOL_SIZE, default 4)."""
    return int(env_number("SERVING_POOL_SIZE", 4))


def serving_statement_timeout_ms() -> int:
    """Statement timeout of a lookup, in ms (SERVING_STATEMENT_TIMEOUT_MS, default 50)."""
    return int(env_number("SERVING_STATEMENT_TIMEOUT_MS", 50))


def prometheus_multiproc_dir() -> str | None:
    """Directory of the per-worker metric files (PROMETHEUS_MULTIPROC_DIR; unset = one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prediction_log_max_sealed() -> int:
    """Sealed prediction-log files that may wait for ingestion in the log directory before the
    oldest is deleted and its records counted as discarded (PREDICTION_LOG_MAX_SEALED, default
    40: 2 GB of 50 MB files, many hours of traffic between hourly ingests)."""
    return _env_int("PREDICTION_LOG_MAX_SEALED", 40)


def prediction_log_seal_age_s() -> float:
    """Seconds after its first record that a serving process seals its prediction-log file even
    when it is small (PREDICTION_LOG_SEAL_AGE_S, default 300): hourly online evaluation then
    sees every answer older than 5 minutes; time-compressed runs use a few seconds."""
    return env_number("PREDICTION_LOG_SEAL_AGE_S", 300)


# The monitoring stack (ops/monitoring.py): time-compressed runs and tests shorten these.
def prometheus_scrape_interval_s() -> float:
    """Seconds between Prometheus scrapes (PROMETHEUS_SCRAPE_INTERVAL_S, default 15)."""
    return env_number("PROMETHEUS_SCRAPE_INTERVAL_S", 15)


def prometheus_evaluation_interval_s() -> float:
    """Seconds between evaluations of the alert rules (PROMETHEUS_EVALUATION_INTERVAL_S,
    default 15)."""
    return env_number("PROMETHEUS_EVALUATION_INTERVAL_S", 15)


def prometheus_extra_rules() -> Path | None:
    """A directory whose *.yml rule files Prometheus loads besides ops/prometheus/alerts-*.yml
    (PROMETHEUS_EXTRA_RULES, default none; tests put rules of their own there)."""
    raw = os.environ.get("PROMETHEUS_EXTRA_RULES")
    return Path(raw) if raw else None


def alertmanager_group_wait_s() -> float:
    """Seconds Alertmanager waits before the first notification of a new alert
    (ALERTMANAGER_GROUP_WAIT_S, default 10)."""
    return env_number("ALERTMANAGER_GROUP_WAIT_S", 10)


def alertmanager_group_interval_s() -> float:
    """Seconds between notifications about changes to an alert, its resolution included
    (ALERTMANAGER_GROUP_INTERVAL_S, default 30)."""
    return env_number("ALERTMANAGER_GROUP_INTERVAL_S", 30)


def alertmanager_repeat_interval_s() -> float:
    """Seconds before an alert still firing is delivered again (ALERTMANAGER_REPEAT_INTERVAL_S,
    default 4 h)."""
    return env_number("ALERTMANAGER_REPEAT_INTERVAL_S", 4 * 3600)


# Fairness requirements (docs/responsible-ml.md, jobs/online/fairness.py): each threshold once.
def fairness_min_group_ratio() -> float:
    """Worst age band's or gender's quality of service / the best one's, at least
    (FAIRNESS_MIN_GROUP_RATIO, default 0.8: the four-fifths rule)."""
    return env_number("FAIRNESS_MIN_GROUP_RATIO", 0.8)


def fairness_min_history_ratio() -> float:
    """Worst history band's quality of service / the best one's, at least
    (FAIRNESS_MIN_HISTORY_RATIO, default 0.6: a new user's list rests on less evidence)."""
    return env_number("FAIRNESS_MIN_HISTORY_RATIO", 0.6)


def fairness_min_group_users() -> int:
    """Fewest users (offline) or served lists (online) a group needs to be judged
    (FAIRNESS_MIN_GROUP_USERS, default 30)."""
    return _env_int("FAIRNESS_MIN_GROUP_USERS", 30)


def fairness_min_long_tail_share() -> float:
    """Share of served slots that go to the long tail (movies outside the head that takes 80% of
    the training interactions), at least (FAIRNESS_MIN_LONG_TAIL_SHARE, default 0.1)."""
    return env_number("FAIRNESS_MIN_LONG_TAIL_SHARE", 0.1)


def fairness_min_new_movie_share() -> float:
    """Share of served slots that go to new movies (first seen in the last
    FAIRNESS_NEW_MOVIE_DAYS of training data), at least (FAIRNESS_MIN_NEW_MOVIE_SHARE,
    default 0.01)."""
    return env_number("FAIRNESS_MIN_NEW_MOVIE_SHARE", 0.01)


def fairness_new_movie_days() -> float:
    """Days before the training data's newest event in which a first-seen movie is new
    (FAIRNESS_NEW_MOVIE_DAYS, default 7)."""
    return env_number("FAIRNESS_NEW_MOVIE_DAYS", 7)


def fairness_gate_mode() -> str:
    """What the gate does with a fairness violation (FAIRNESS_GATE: `record`, the default, only
    records it; `block` rejects the candidate)."""
    mode = (os.environ.get("FAIRNESS_GATE") or "record").strip().lower()
    if mode not in ("record", "block"):
        raise ValueError(f"FAIRNESS_GATE must be 'record' or 'block', got {mode!r}")
    return mode
