"""Retraining triggers (jobs/train/triggers.py): drift past the retrain levels on the platform's
topic, a significant online accuracy drop, and the cooldown after a fresh model."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta

import pytest

from jobs.ingest import lake, validate
from jobs.train import registry, triggers

pytestmark = pytest.mark.unit

NEWEST = datetime(2025, 3, 10, 12, 0)


def write_snapshot(snapshot_id: str, topic: str, facts: dict) -> None:
    """A snapshot manifest and its validation outcome, as ingestion and validation leave them."""
    path = lake.snapshot_path(snapshot_id)
    path.mkdir(parents=True)
    manifest = {"snapshot_id": snapshot_id, "topic": topic, "max_event_time": NEWEST.isoformat()}
    (path / "manifest.json").write_text(json.dumps(manifest))
    outcome = validate.Outcome(snapshot_id, True, [], facts, "")
    out = validate.outcome_path(snapshot_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(outcome)))


@pytest.fixture
def platform(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_TOPIC", "movielog")
    monkeypatch.setattr(registry, "production", lambda url=None: None)


def test_only_statistics_past_their_retrain_level_are_named():
    limits = {"retrain_new_movie_share": 0.08, "retrain_new_user_share": 0.3}
    facts = {"new_movie_share": 0.2, "new_user_share": 0.1, "rating_kl": 9.0}
    assert triggers.drift_beyond_levels(facts, limits) == ["new_movie_share=0.200 > 0.08"]
    assert triggers.drift_beyond_levels({"new_movie_share": None}, limits) == []


def test_drift_on_the_platform_topic_triggers(platform):
    write_snapshot("s000007", "movielog", {"new_movie_share": 0.25, "new_user_share": 0.01})
    reason = triggers.drift_reason("s000007")
    assert reason is not None and "s000007" in reason and "new_movie_share=0.250" in reason


def test_no_drift_or_another_topic_does_not_trigger(platform):
    write_snapshot("s000001", "movielog", {"new_movie_share": 0.01, "new_user_share": 0.01})
    write_snapshot("s000002", "replay-test", {"new_movie_share": 0.9, "new_user_share": 0.9})
    assert triggers.drift_reason("s000001") is None
    assert triggers.drift_reason("s000002") is None
    assert triggers.drift_reason(None) is None


def test_a_share_many_times_its_usual_level_triggers_above_its_floor():
    limits = validate.thresholds()
    usual = {"new_movie_share": 0.002, "new_user_share": 0.0005}
    closed_loop_day = {"new_movie_share": 0.018, "new_user_share": 0.014}
    # new users back after a quiet night: 28x usual, but below the new-user floor
    assert triggers.drift_beyond_levels(closed_loop_day, limits, usual) == [
        "new_movie_share=0.018 > 5 x its usual 0.002"
    ]
    assert triggers.drift_beyond_levels({"new_movie_share": 0.009}, limits, usual) == []  # floor
    assert triggers.drift_beyond_levels({"new_movie_share": 0.018}, limits, {}) == []
    hourly = {"new_movie_share": 0.052}  # the stable hourly world's largest, median 0.017
    assert triggers.drift_beyond_levels(hourly, limits, {"new_movie_share": 0.017}) == []


def test_the_usual_level_is_the_references_median(platform):
    for i, share in enumerate((0.001, 0.003, 0.002, 0.5), start=1):
        write_snapshot(f"s00000{i}", "movielog", {"new_movie_share": share})
    facts = {"new_movie_share": 0.02, "reference": ["s000001", "s000002", "s000003"]}
    write_snapshot("s000009", "movielog", facts)
    assert triggers.usual_drift(facts) == {"new_movie_share": 0.002}
    assert "5 x its usual 0.002" in triggers.drift_reason("s000009")


def test_the_retrain_level_is_where_the_trigger_starts_to_fire():
    limits = validate.thresholds()
    assert triggers.retrain_level("new_movie_share", limits) == 0.08  # no usual: absolute
    usual = {"new_movie_share": 0.002, "new_user_share": 0.03}
    assert triggers.retrain_level("new_movie_share", limits, usual) == 0.01  # the floor
    assert triggers.retrain_level("new_user_share", limits, usual) == pytest.approx(0.15)
    assert triggers.retrain_level("new_user_share", limits, {"new_user_share": 0.2}) == 0.3
    for share in (0.0099, 0.0101, 0.0799, 0.0801):
        level = triggers.retrain_level("new_movie_share", limits, usual)
        fires = bool(triggers.drift_beyond_levels({"new_movie_share": share}, limits, usual))
        assert fires == (share > level), share
    no_floor = {**limits, "retrain_new_movie_floor": 0.0}  # a level of 0 is a level, not none
    assert triggers.drift_beyond_levels(
        {"new_movie_share": 0.001}, no_floor, {"new_movie_share": 0}
    )


def test_the_status_page_plots_each_snapshots_retrain_level(platform):
    from jobs.online import status_page

    for i, share in enumerate((0.001, 0.003, 0.002), start=1):
        write_snapshot(f"s00000{i}", "movielog", {"new_movie_share": share})
    refs = ["s000001", "s000002", "s000003"]
    write_snapshot("s000004", "movielog", {"new_movie_share": 0.02, "reference": refs})
    rows = status_page.read_drift(validate.thresholds())
    assert [r["snapshot_id"] for r in rows] == ["s000001", "s000002", "s000003", "s000004"]
    assert [r["retrain_new_movie_share"] for r in rows] == [0.08, 0.08, 0.08, 0.01]
    assert rows[-1]["retrain_new_user_share"] == 0.3  # no usual value: the absolute level


def test_a_model_trained_on_recent_data_cools_the_trigger_down(platform, monkeypatch):
    write_snapshot("s000003", "movielog", {"new_movie_share": 0.5})
    fresh = {"data_newest_event": NEWEST - timedelta(hours=2)}
    monkeypatch.setattr(registry, "production", lambda url=None: fresh)
    assert triggers.drift_reason("s000003") is None
    stale = {"data_newest_event": NEWEST - timedelta(days=2)}
    monkeypatch.setattr(registry, "production", lambda url=None: stale)
    assert triggers.drift_reason("s000003") is not None


def test_wilson_upper_bound_matches_a_hand_worked_value():
    # 10 of 100: centre 0.1 + 1.96²/200, spread 1.96·sqrt((0.09 + 1.96²/400)/100)
    assert triggers.wilson_high(10, 100) == pytest.approx(0.17436, abs=1e-4)
    assert triggers.wilson_high(0, 50) > 0


def hours(rows: list[tuple[int, int]]) -> list[tuple[datetime, int, int]]:
    """(hour, lists, hits), newest first, one hour apart."""
    return [(NEWEST - timedelta(hours=i), lists, hits) for i, (lists, hits) in enumerate(rows)]


@pytest.mark.parametrize(
    ("recent_hits", "fires"),
    [(30, True), (90, False)],  # 30/300 = 0.10 vs baseline 0.30: down; 90/300 = baseline
)
def test_accuracy_drop_needs_the_interval_below_the_floor(monkeypatch, recent_hits, fires):
    rows = hours([(100, recent_hits // 3)] * 3 + [(100, 30)] * 48)
    monkeypatch.setattr(triggers, "_whole_hours", lambda url=None: rows)
    monkeypatch.setattr(registry, "production", lambda url=None: None)
    reason = triggers.accuracy_drop_reason()
    assert (reason is not None) is fires
    if fires:
        assert "300 lists" in reason and "baseline 0.300" in reason


def test_too_few_recent_lists_give_no_verdict(monkeypatch):
    rows = hours([(10, 0)] * 3 + [(100, 30)] * 48)
    monkeypatch.setattr(triggers, "_whole_hours", lambda url=None: rows)
    assert triggers.accuracy_drop_reason() is None


def test_the_baseline_is_the_seven_days_before_the_recent_hours(monkeypatch):
    old = [(100, 90)] * 24  # more than 7 days before the recent hours: not in the baseline
    rows = hours([(100, 10)] * 3 + [(100, 20)] * (7 * 24) + old)
    monkeypatch.setattr(triggers, "_whole_hours", lambda url=None: rows)
    recent, baseline = triggers.recent_and_baseline()
    assert recent == {"lists": 300, "hits": 30, "end": NEWEST + timedelta(hours=1)}
    assert baseline["accuracy"] == pytest.approx(0.2)
