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
    "SERVING_PORT": "8082",
    "AIRFLOW_PORT": "8080",
    "METADATA_API_URL": "http://127.0.0.1:8090",
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
    serving_port: int
    airflow_port: int
    metadata_api_url: str
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
    def log_dir(self) -> Path:
        """Service and job logs."""
        return self.var_dir / "log"


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
        serving_port=int(env("SERVING_PORT")),
        airflow_port=int(env("AIRFLOW_PORT")),
        metadata_api_url=env("METADATA_API_URL"),
        var_dir=Path(env("RECS_VAR_DIR")),
        cache_dir=Path(env("RECS_CACHE_DIR")),
    )
