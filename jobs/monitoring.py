"""Batch figures for Prometheus: each DAG step pushes its gauges to the Pushgateway.

Names, help texts and labels are in contracts/metrics.py; docs/monitoring.md defines each
figure. A step's push replaces its whole group (`job` = the step), so a series that no longer
applies (a model version gone from the latest hour) disappears instead of going stale.

Monitoring never fails the pipeline: an unreachable Pushgateway, or a figure that cannot be
read, is logged as a warning and the step carries on (`report`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts import metrics as m
from contracts import settings

log = logging.getLogger(__name__)

PUSH_TIMEOUT_S = 2.0  # a step waits at most this long for the Pushgateway
# thresholds.yml keys of the drift statistics, with the bound each is checked against.
DRIFT_LIMITS = {
    "rating_kl": (("max", "max_rating_kl"),),
    "new_user_share": (("max", "max_new_user_share"),),
    "new_movie_share": (("max", "max_new_movie_share"),),
    "volume_ratio": (("min", "min_volume_ratio"), ("max", "max_volume_ratio")),
}
GATE_MODELS = {
    "candidate": "candidate_score",
    "popularity": "popularity_score",
    "production": "production_score",
}


@dataclass(frozen=True)
class Sample:
    """One gauge value with its labels."""

    metric: m.Metric
    value: float | None
    labels: Mapping[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ pushing
def push(group: str, samples: Sequence[Sample], gateway: str | None = None) -> bool:
    """Replace the Pushgateway group `job=group` with `samples`; False (logged) on failure.

    Samples without a value (a statistic that was not judged) are left out, not sent as NaN.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for sample in samples:
        if sample.value is None or not math.isfinite(sample.value):
            continue
        metric = sample.metric
        if metric.name not in gauges:
            gauges[metric.name] = Gauge(metric.name, metric.help, metric.labels, registry=registry)
        gauge = gauges[metric.name]
        (gauge.labels(**sample.labels) if metric.labels else gauge).set(sample.value)
    if not gauges:
        log.info("monitoring: nothing to push for %s", group)
        return False
    url = gateway or settings.load().pushgateway_url
    try:
        push_to_gateway(url, job=group, registry=registry, timeout=PUSH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure to push must leave the step running
        log.warning("monitoring: could not push %s to %s: %s", group, url, exc)
        return False
    return True


def report(group: str, collect: Callable[[], Sequence[Sample]]) -> bool:
    """Collect a group's figures and push them; any failure is a warning, never an error."""
    try:
        samples = collect()
    except Exception as exc:  # noqa: BLE001 - a figure we cannot read must not fail the step
        log.warning("monitoring: could not collect %s: %s", group, exc)
        return False
    return push(group, samples)


def timestamp(value: datetime | None) -> float | None:
    """Unix seconds of a datetime; a naive one is UTC (stream clock, Postgres `timestamp`)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _query(name: str, params: Mapping[str, Any] | None, database_url: str | None) -> list[dict]:
    from contracts import db

    conn = db.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(db.read_sql(name), params or {})
            columns = [c.name for c in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


# ------------------------------------------------------------------ ingest
def validation_samples(aggregates: Mapping[str, Any], success: bool, limits: Mapping) -> list:
    """Drift, reject rate and verdict of one validated snapshot, with the drift bounds."""
    samples = [
        Sample(m.SNAPSHOT_VALID, float(success)),
        Sample(m.REJECT_RATE, aggregates.get("reject_rate")),
    ]
    for statistic, bounds in DRIFT_LIMITS.items():
        samples.append(Sample(m.DRIFT, aggregates.get(statistic), {"statistic": statistic}))
        for bound, key in bounds:
            labels = {"statistic": statistic, "bound": bound}
            samples.append(Sample(m.DRIFT_LIMIT, float(limits[key]), labels))
    return samples


def report_validation(outcome: Any) -> bool:
    """Push the drift statistics of a snapshot validation has just judged
    (jobs.ingest.validate.Outcome)."""

    def collect() -> list[Sample]:
        from jobs.ingest import validate

        return validation_samples(outcome.aggregates, outcome.success, validate.thresholds())

    return report(m.GROUP_VALIDATE, collect)


def snapshot_samples(row: Mapping[str, Any]) -> list[Sample]:
    """Freshness and quarantine figures from sql/monitoring/snapshots.sql's row."""
    latest = row["latest_status"]
    return [
        Sample(m.SNAPSHOT_ACCEPTED_TIME, timestamp(row["last_accepted"])),
        Sample(m.SNAPSHOT_NEWEST_EVENT, timestamp(row["newest_event"])),
        Sample(m.SNAPSHOTS_QUARANTINED, float(row["quarantined"])),
        Sample(m.SNAPSHOT_QUARANTINED, None if latest is None else float(latest == "quarantined")),
        Sample(m.SNAPSHOT_JUDGED_TIME, timestamp(row["latest_judged"])),
    ]


def report_snapshots(database_url: str | None = None) -> bool:
    """Push data freshness and quarantines as Postgres `snapshots` has them now."""
    return report(
        m.GROUP_MARK,
        lambda: snapshot_samples(_query("monitoring/snapshots.sql", None, database_url)[0]),
    )


# ------------------------------------------------------------------ online evaluation
def _label(value: str) -> str:
    """online_metrics' '*' and '' as label values Prometheus keeps apart."""
    return {"*": m.ALL_LABEL, "": m.NONE_LABEL}.get(value, value)


def online_samples(rows: Sequence[Mapping[str, Any]], baseline: float | None) -> list[Sample]:
    """Gauges of one hour's online_metrics rows, per model version and variant, plus the
    trailing baseline of the whole traffic."""
    if not rows:
        return []
    samples = [
        Sample(m.ONLINE_HOUR, timestamp(rows[0]["hour"])),
        Sample(m.ONLINE_BASELINE, baseline),
    ]
    for row in rows:
        labels = {"model_version": _label(row["model_version"]), "variant": _label(row["variant"])}
        p99 = row["latency_p99_ms"]
        samples += [
            Sample(m.ONLINE_AVAILABILITY, row["availability"], labels),
            Sample(m.ONLINE_LATENCY_P99, None if p99 is None else p99 / 1000.0, labels),
            Sample(m.ONLINE_PERSONALISED, row["personalised_share"], labels),
            Sample(m.ONLINE_ACCURACY, row["online_accuracy"], labels),
            Sample(m.ONLINE_LISTS, float(row["lists"]), labels),
        ]
    return samples


def report_online(database_url: str | None = None) -> bool:
    """Push the latest complete hour of online_metrics and its trailing 7-day accuracy."""

    def collect() -> list[Sample]:
        rows = _query("monitoring/online_latest.sql", None, database_url)
        if not rows:
            return []
        params = {"hour": rows[0]["hour"]}
        baseline = _query("monitoring/online_baseline.sql", params, database_url)[0]["accuracy"]
        return online_samples(rows, baseline)

    return report(m.GROUP_ONLINE, collect)


# ------------------------------------------------------------------ training and publishing
def gate_samples(decision: Any, decided_at: float) -> list[Sample]:
    """Verdict, time and offline scores of one gate decision (jobs.train.gate.GateDecision)."""
    samples = [
        Sample(m.GATE_PASSED, float(decision.passed)),
        Sample(m.TRAINING_RUN_TIME, decided_at),
    ]
    for model, attribute in GATE_MODELS.items():
        samples.append(Sample(m.GATE_SCORE, getattr(decision, attribute), {"model": model}))
    return samples


def report_gate(decision: Any, decided_at: float | None = None) -> bool:
    """Push the gate's verdict on a training run."""
    now = datetime.now(UTC).timestamp() if decided_at is None else decided_at
    return report(m.GROUP_GATE, lambda: gate_samples(decision, now))


def model_samples(pointer: Mapping[str, Any]) -> list[Sample]:
    """Publish time and versions of what the serving pointer names (sql/serving_pointer.sql)."""
    if pointer.get("reco_version") is None:
        return []
    labels = {"model_version": pointer["model_version"], "reco_version": pointer["reco_version"]}
    return [
        Sample(m.MODEL_PUBLISHED_TIME, timestamp(pointer["published_at"])),
        Sample(m.MODEL_INFO, 1.0, labels),
    ]


def report_model(database_url: str | None = None) -> bool:
    """Push the production model's publish time as the serving pointer has it now."""

    def collect() -> list[Sample]:
        rows = _query("serving_pointer.sql", None, database_url)
        return model_samples(rows[0]) if rows else []

    return report(m.GROUP_MODEL, collect)
