"""When to retrain outside the fixed schedule: drift in accepted data, or online accuracy down.

Both are asked by DAG tasks (movielog_ingest `flag_drift`, online_evaluation
`flag_accuracy_drop`) whose success emits an Airflow asset that schedules train_and_publish
(docs/monitoring.md, "Drift response"). Each function returns the reason to retrain, or None.

- **Drift.** An accepted snapshot of the platform's topic whose drift statistics (computed by
  validation, jobs/ingest/validate.py) pass a *retrain* level in expectations/thresholds.yml,
  or pass `retrain_drift_ratio` times their median over the snapshot's own references while
  above the statistic's floor. The absolute levels sit below the quarantine limits: a
  snapshot past a quarantine limit is bad data, one past a retrain level is a changed world
  the model should learn. The relative rule is for the new-movie share, whose stable level
  depends on how much history the references span (hourly snapshots: median 0.017; 2-5 hour
  snapshots: 0.001-0.003): in the closed loop a day's new movies reach only the users who
  find them on their own, 0.018 of the events, far below an absolute level but 6-18 times
  the snapshots before. Snapshots of other topics (tests, replays) never trigger: training
  does not read them as the platform.
- **Accuracy drop.** The latest complete event-time hours' online accuracy, whose Wilson
  upper bound lies below (1 - RETRAIN_ACCURACY_DROP) x its trailing 7-day baseline.
- **Cooldown.** Neither fires while the production model's data is newer than
  `retrain_cooldown_hours` of event time before the evidence: a model just trained on the
  changed world is not retrained for the same change again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from contracts import settings

log = logging.getLogger(__name__)

# statistic of the validation outcome -> its retrain level and floor in thresholds.yml
# (The rating KL is left out: on hourly snapshots of the simulated stable world it passes 1.0
# by chance, with few ratings at night; the quarantine limit keeps watching it.)
DRIFT_LEVELS = {
    "new_movie_share": ("retrain_new_movie_share", "retrain_new_movie_floor"),
    "new_user_share": ("retrain_new_user_share", "retrain_new_user_floor"),
}
BASELINE_DAYS = 7
RECENT_HOURS = 3  # complete hours pooled for the recent accuracy (one hour is noisy)
MIN_RECENT_LISTS = 200  # fewer served lists than this: no verdict


def drift_beyond_levels(
    facts: dict[str, Any], limits: dict[str, Any], usual: dict[str, float] | None = None
) -> list[str]:
    """'name=value > level' for every drift statistic of `facts` past its retrain level, or
    past `retrain_drift_ratio` x its `usual` value (and its floor)."""
    out = []
    for stat, (level_name, _floor) in DRIFT_LEVELS.items():
        value, level = facts.get(stat), limits.get(level_name)
        if value is None:
            continue
        threshold = retrain_level(stat, limits, usual)
        if level is not None and value > level:
            out.append(f"{stat}={value:.3f} > {level}")
        elif threshold is not None and value > threshold:
            ratio, typical = float(limits["retrain_drift_ratio"]), (usual or {})[stat]
            out.append(f"{stat}={value:.3f} > {ratio:g} x its usual {typical:.3f}")
    return out


def retrain_level(
    stat: str, limits: dict[str, Any], usual: dict[str, float] | None = None
) -> float | None:
    """The value of `stat` past which it triggers retraining: its absolute level, or
    `retrain_drift_ratio` x its `usual` value where that is lower (but never below the floor)."""
    level_name, floor_name = DRIFT_LEVELS[stat]
    levels = [] if limits.get(level_name) is None else [float(limits[level_name])]
    typical = (usual or {}).get(stat)
    if typical is not None:
        ratio = float(limits["retrain_drift_ratio"])
        levels.append(max(float(limits.get(floor_name, 1.0)), ratio * typical))
    return min(levels, default=None)


def usual_drift(
    facts: dict[str, Any], known: dict[str, dict[str, Any]] | None = None
) -> dict[str, float]:
    """Median of each drift statistic over the snapshot's references: their aggregates from
    `known` (snapshot id -> aggregates) when given, else their own stored outcomes."""
    seen: dict[str, list[float]] = {stat: [] for stat in DRIFT_LEVELS}
    for snapshot_id in facts.get("reference") or []:
        earlier = known.get(snapshot_id) if known is not None else stored_aggregates(snapshot_id)
        for stat, values in seen.items():
            if earlier and earlier.get(stat) is not None:
                values.append(float(earlier[stat]))
    return {stat: float(np.median(values)) for stat, values in seen.items() if values}


def stored_aggregates(snapshot_id: str) -> dict[str, Any] | None:
    """A snapshot's validation aggregates, None when validated before outcomes were kept."""
    from jobs.ingest import validate

    try:
        return validate.read_outcome(snapshot_id).aggregates
    except FileNotFoundError:
        return None


def cooling_down(evidence_time: datetime, database_url: str | None = None) -> bool:
    """True while the production model's newest training event is within the cooldown of
    `evidence_time` (event time)."""
    from jobs.ingest.validate import thresholds
    from jobs.train import registry

    production = registry.production(database_url)
    newest = production and production.get("data_newest_event")
    if not newest:
        return False
    cooldown = timedelta(hours=float(thresholds()["retrain_cooldown_hours"]))
    return evidence_time - newest < cooldown


def drift_reason(snapshot_id: str | None, database_url: str | None = None) -> str | None:
    """Why the accepted snapshot `snapshot_id` calls for retraining, or None."""
    from jobs.ingest import lake, validate

    if snapshot_id is None:
        return None
    manifest = lake.read_manifest(lake.snapshot_path(snapshot_id))
    if manifest.get("topic") != settings.load().kafka_topic:
        return None
    facts = validate.read_outcome(snapshot_id).aggregates
    beyond = drift_beyond_levels(facts, validate.thresholds(), usual_drift(facts))
    if not beyond or not manifest.get("max_event_time"):
        return None
    newest = datetime.fromisoformat(str(manifest["max_event_time"]))
    if cooling_down(newest, database_url):
        log.info("snapshot %s drifted (%s) but the model is fresh", snapshot_id, beyond)
        return None
    return f"snapshot {snapshot_id} drifted: {', '.join(beyond)}"


def accuracy_drop_reason(database_url: str | None = None) -> str | None:
    """Why the recent online accuracy calls for retraining, or None (see the module doc)."""
    recent, baseline = recent_and_baseline(database_url)
    if recent is None or baseline is None or recent["lists"] < MIN_RECENT_LISTS:
        return None
    floor = (1.0 - settings.retrain_accuracy_drop()) * baseline["accuracy"]
    high = wilson_high(recent["hits"], recent["lists"])
    if high >= floor:
        return None
    if cooling_down(recent["end"], database_url):
        return None
    return (
        f"online accuracy {recent['hits'] / recent['lists']:.3f} (95% upper {high:.3f}, "
        f"{recent['lists']} lists, hours to {recent['end']:%Y-%m-%d %H:%M}) is below "
        f"{floor:.3f} = (1 - {settings.retrain_accuracy_drop()}) x the 7-day baseline "
        f"{baseline['accuracy']:.3f} ({baseline['lists']} lists)"
    )


def wilson_high(hits: int, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson score interval of hits/n."""
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return (centre + spread) / (1 + z * z / n)


def _whole_hours(database_url: str | None = None) -> list[tuple[datetime, int, int]]:
    """(hour, lists, hits) of every complete hour of online_metrics' whole-hour rows, newest
    first."""
    from sqlalchemy import text

    from contracts import db

    query = text(
        "SELECT hour, lists, hits FROM online_metrics"
        " WHERE model_version = '*' AND variant = '*' AND complete ORDER BY hour DESC"
    )
    with db.engine(database_url).connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def recent_and_baseline(database_url: str | None = None) -> tuple[dict | None, dict | None]:
    """Pooled lists and hits of the latest RECENT_HOURS complete hours, and of the
    BASELINE_DAYS before them."""
    rows = _whole_hours(database_url)
    if len(rows) <= RECENT_HOURS:
        return None, None
    recent = rows[:RECENT_HOURS]
    since = recent[-1][0] - timedelta(days=BASELINE_DAYS)
    before = [r for r in rows[RECENT_HOURS:] if r[0] >= since]
    base_lists, base_hits = sum(r[1] for r in before), sum(r[2] for r in before)
    if base_lists == 0:
        return None, None
    return (
        {
            "lists": sum(r[1] for r in recent),
            "hits": sum(r[2] for r in recent),
            "end": recent[0][0] + timedelta(hours=1),
        },
        {"lists": base_lists, "accuracy": base_hits / base_lists},
    )
