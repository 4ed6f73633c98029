"""The spam detector's rule (jobs/train/detect.py) on hand-made frames."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jobs.train import detect

T0 = pd.Timestamp("2025-03-01T10:00:00")


def rating(user: int, movie: str, stars: int, minutes: float) -> dict:
    return {
        "event_time": T0 + pd.Timedelta(minutes=minutes),
        "user_id": user,
        "movie_id": movie,
        "rating": stars,
    }


def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spam: accounts 100-105 rate 'obscure' 5 stars unwatched within 50 minutes (6 of them).
    Not spam: 4 unwatched 5-star ratings of 'small' (< 5 accounts); 'hit' rated 5 stars by
    8 users within minutes, all of whom watched it; 'slow' rated by 5 unwatched accounts,
    but spread over 5 hours (no one-hour window holds 5)."""
    rows = [rating(100 + i, "obscure", 5, 10 * i) for i in range(6)]
    rows += [rating(200 + i, "small", 5, i) for i in range(4)]
    rows += [rating(300 + i, "hit", 5, i) for i in range(8)]
    rows += [rating(400 + i, "slow", 5, 70 * i) for i in range(5)]
    rows += [rating(300, "other", 2, 30), rating(100, "other2", 3, 300)]
    watched = pd.DataFrame({"user_id": [300 + i for i in range(8)], "movie_id": ["hit"] * 8})
    return pd.DataFrame(rows), watched


def test_only_the_burst_of_unwatched_ratings_is_flagged():
    rates, watched = world()
    bursts = detect.find_bursts(detect.suspect_ratings(detect.high_ratings(rates), watched))
    accounts = detect.flagged_accounts(bursts, rates)
    assert accounts.user_id.tolist() == [100, 101, 102, 103, 104, 105]
    assert set(accounts.movies) == {"obscure"}
    assert set(accounts.burst_size) == {6}
    # 101-105 rated nothing else: identical vectors; 100 also rated 'other2'.
    assert accounts.set_index("user_id").reasons.to_dict() == {
        100: "burst,unwatched,thin",
        **{u: "burst,unwatched,thin,identical" for u in range(101, 106)},
    }
    movies = detect.attacked_movies(bursts)
    assert movies.to_dict("records") == [
        {"movie_id": "obscure", "accounts": 6, "start": T0, "end": T0 + pd.Timedelta(minutes=50)}
    ]


def test_without_watch_data_thin_accounts_stand_in():
    rates, _ = world()
    bursts = detect.find_bursts(detect.suspect_ratings(detect.high_ratings(rates), None))
    # 'hit' raters are thin too (300 rated two movies): without watch data they look the same.
    assert set(bursts.movie_id) == {"obscure", "hit"}


def test_burst_sizes_cover_each_rating_of_a_window():
    times = (T0 + pd.to_timedelta([0, 10, 20, 30, 40, 200], unit="m")).to_numpy("datetime64[ns]")
    sizes = detect.burst_members(times, pd.Timedelta(hours=1), 5)
    assert sizes.tolist() == [5, 5, 5, 5, 5, 0]


def test_run_writes_the_detection_and_the_exclusion_record(tmp_path):
    rates, _ = world()
    snap = tmp_path / "s000001"
    for table, frame in (("rate", rates),):
        (snap / table / "event_date=2025-03-01").mkdir(parents=True)
        frame.to_parquet(snap / table / "event_date=2025-03-01" / "part-00000.parquet")
    out = detect.run([snap], tmp_path / "det")
    record = detect.exclusion_record(out)
    assert record["detector_version"] == detect.DETECTOR_VERSION
    assert record["flagged"] == len(detect.flagged_users(out)) == 14  # no watch data: thin
    assert record["attacked_movies"] == ["hit", "obscure"]
    assert detect.read_detection(out)["watch_data"] is False


def test_security_section_lists_each_attacked_movie_as_a_violation(tmp_path, monkeypatch):
    from jobs.online import responsible_site, security_report

    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
    assert security_report.run(tmp_path / "flagged") is None  # no detection yet
    rates, _ = world()
    snap = tmp_path / "s000001"
    (snap / "rate" / "event_date=2025-03-01").mkdir(parents=True)
    rates.to_parquet(snap / "rate" / "event_date=2025-03-01" / "part-00000.parquet")
    detect.run([snap], tmp_path / "flagged" / "det-1")
    report = json.loads(Path(security_report.run(tmp_path / "flagged")).read_text())
    assert report["violations"] == [
        "rating spam on hit: 8 accounts",
        "rating spam on obscure: 6 accounts",
    ]
    assert report["reasons"] == {"burst": 14, "thin": 14, "identical": 12}  # 101-105, 301-307
    page = (responsible_site.section_dir("security") / "report.html").read_text()
    assert "<b>14 accounts flagged</b>" in page
    responsible_site.build()
    listing = json.loads((responsible_site.root() / "index.json").read_text())
    assert {"section": "security", "violations": 2}.items() <= {
        k: v for s in listing["sections"] if s["section"] == "security" for k, v in s.items()
    }.items()


def test_watched_pairs_are_the_distinct_pairs_of_every_snapshot(tmp_path):
    from tests.unit.test_ingest_derive import day, make_snapshot

    root = tmp_path / "lake"
    first = make_snapshot(root, 1, day("2025-03-01", range(1, 4), 3))
    second = make_snapshot(root, 2, day("2025-03-02", range(2, 6), 3), first_offset=100)
    pairs = detect.watched_pairs([first, second])
    got = sorted((int(u), m) for u, m in pairs[["user_id", "movie_id"]].itertuples(index=False))
    assert got == [(u, f"film+{m}+1999") for u in range(1, 6) for m in (1, 2)]
    assert detect.watched_pairs([]) is None
    # asked about some pairs: only those that were watched come back
    among = pd.DataFrame({"user_id": [1, 5, 9], "movie_id": ["film+2+1999", "film+1+1999", "x"]})
    got = detect.watched_pairs([first, second], among=among)
    assert sorted(map(tuple, got.to_numpy().tolist())) == [(1, "film+2+1999"), (5, "film+1+1999")]
    none_watched = detect.watched_pairs([first], among=among.iloc[2:])
    assert none_watched is not None and none_watched.empty  # watch data, none of these pairs
