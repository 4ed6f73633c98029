"""Served-quality instrument (jobs/train/served_quality.py) against hand-worked answers."""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from jobs.train import metrics
from jobs.train import served_quality as sq

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2025-03-01T00:00:00")


def ev(user, movie, minute_of_day, kind="watch", minute=0, rating=None):
    """One parsed event at T0 + `minute_of_day` minutes."""
    return {
        "user_id": user,
        "movie_id": movie,
        "event_time": T0 + pd.Timedelta(minutes=minute_of_day),
        "kind": kind,
        "minute": minute if kind == "watch" else np.nan,
        "rating": rating if kind == "rate" else np.nan,
    }


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows)


# User 1 first sees a..e at times 1..5 and returns to a at 6: n = 5, p = floor(0.8 * 5) = 4,
# t_1 = 5 (movie e) -> held: e's events (5, 7) and the later a event (6).
# User 2 has one movie (< min_movies) -> kept whole.
# User 3 first sees x at 10 and y at 11 (a tie-free pair): p = floor(1.6) = 1, t_3 = 11.
# User 4: p at 20, q and r both first at 21 (tie, broken by movie id: q before r), s at 22:
# n = 4, p = floor(3.2) = 3 -> the movie at position 3 is s, t_4 = 22.
HOLD = frame(
    [
        ev(1, "a", 1), ev(1, "b", 2), ev(1, "c", 3), ev(1, "d", 4), ev(1, "e", 5),
        ev(1, "a", 6, minute=1), ev(1, "e", 7, minute=1),
        ev(2, "a", 1), ev(2, "a", 50, minute=1),
        ev(3, "x", 10), ev(3, "y", 11), ev(3, "y", 12, "rate", rating=5),
        ev(4, "p", 20), ev(4, "r", 21), ev(4, "q", 21), ev(4, "s", 22),
    ]
)  # fmt: skip


def test_hold_back_later_hand_worked():
    kept, held = sq.hold_back_later(HOLD, fraction=0.2, min_movies=2)
    got = sorted(zip(held.user_id, held.movie_id, held.event_time.dt.minute, strict=True))
    assert got == [(1, "a", 6), (1, "e", 5), (1, "e", 7), (3, "y", 11), (3, "y", 12), (4, "s", 22)]
    assert len(kept) + len(held) == len(HOLD)
    assert set(kept.index) | set(held.index) == set(HOLD.index)
    assert (kept.user_id == 2).sum() == 2  # below min_movies: kept whole
    # each user's held events are at or after the cut time, the kept ones before it
    for user, cut in {1: 5, 3: 11, 4: 22}.items():
        assert (held[held.user_id == user].event_time.dt.minute >= cut).all()
        assert (kept[kept.user_id == user].event_time.dt.minute < cut).all()


def test_hold_back_later_is_deterministic_and_order_free():
    shuffled = HOLD.sample(frac=1.0, random_state=3)
    kept_a, held_a = sq.hold_back_later(HOLD)
    kept_b, held_b = sq.hold_back_later(shuffled)
    assert set(held_a.index) == set(held_b.index) and set(kept_a.index) == set(kept_b.index)


def test_hold_back_later_holds_at_least_one_movie():
    two = frame([ev(7, "a", 1), ev(7, "b", 2)])
    _, held = sq.hold_back_later(two, fraction=0.01)  # floor(0.99 * 2) = 1 -> b held
    assert held.movie_id.tolist() == ["b"]
    with pytest.raises(ValueError):
        sq.hold_back_later(two, fraction=1.0)


# Movie lengths (largest minute anyone watched + 1, kept and held): m 10, n 10, o 4.
# User 1 kept: m minutes 0..9 (so m is in kept history). Held:
#   m again (in kept history -> never relevant), n minutes 0..4 unrated (5 >= 0.5 * 10: yes),
#   o minute 0 unrated (1 < 0.5 * 4: no), w rated 5 then 3 (latest 3: no, however watched),
#   v rated 2 then 4 (latest 4: yes, with no watching at all).
# User 2 held: o minutes 0..3 unrated (4 >= 2: yes).
REL_KEPT = frame([ev(1, "m", i, minute=i) for i in range(10)] + [ev(9, "n", 0, minute=9)])
REL_HELD = frame(
    [ev(1, "m", 100, minute=0)]
    + [ev(1, "n", 100 + i, minute=i) for i in range(5)]
    + [ev(1, "o", 110, minute=0)]
    + [ev(1, "w", 120 + i, minute=i) for i in range(4)]
    + [ev(1, "w", 130, "rate", rating=5), ev(1, "w", 131, "rate", rating=3)]
    + [ev(1, "v", 141, "rate", rating=4), ev(1, "v", 140, "rate", rating=2)]
    + [ev(2, "o", 200 + i, minute=i) for i in range(4)]
)


def test_relevant_items_hand_worked():
    rel = sq.relevant_items(REL_HELD, REL_KEPT)
    assert list(zip(rel.user_id, rel.movie_id, strict=True)) == [(1, "n"), (1, "v"), (2, "o")]


# NDCG hand-worked, k = 20: user 1 relevant {a, b}, served [x, a, y, b]:
# DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3). User 2 relevant {c}, served [c]: 1.
# Popularity over kept (distinct users): p 3, q 2, a 1, r 1, s 1 (ties by id: a, r, s).
# User 1 has p in kept -> popularity list q, a, r, s, ...: a hit at rank 2 -> (1/log2 3)/ideal.
# User 2 has p, q, r, s in kept -> [a] only: no hit -> 0.
NDCG_KEPT = frame(
    [ev(1, "p", 0), ev(2, "p", 0), ev(3, "p", 0), ev(2, "q", 1), ev(3, "q", 1)]
    + [ev(4, "a", 2), ev(2, "r", 3), ev(2, "s", 4)]
)
NDCG_REL = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": ["a", "b", "c"]})
NDCG_LISTS = {
    1: sq.Served(["x", "a", "y", "b"], "model", "v1", 200),
    2: sq.Served(["c"], "model", "v1", 200),
}


def test_ndcg_matches_hand_worked_and_jobs_metrics():
    result = sq.served_vs_popularity(NDCG_LISTS, NDCG_REL, NDCG_KEPT, k=20, resamples=200)
    ideal = 1 + 1 / math.log2(3)
    user1 = (1 / math.log2(3) + 1 / math.log2(5)) / ideal
    assert result.ndcg_served == pytest.approx((user1 + 1.0) / 2)
    served = sq.served_frame(NDCG_LISTS, [1, 2])
    assert result.ndcg_served == pytest.approx(metrics.ndcg_at_k(NDCG_REL, served, k=20))
    popular = sq.popularity_lists(NDCG_KEPT, [1, 2], k=20)
    assert popular[popular.user_id == 1].movie_id.tolist()[:4] == ["q", "a", "r", "s"]
    assert popular[popular.user_id == 2].movie_id.tolist() == ["a"]
    assert result.ndcg_popularity == pytest.approx(((1 / math.log2(3)) / ideal + 0.0) / 2)
    assert result.ratio == pytest.approx(result.ndcg_served / result.ndcg_popularity)
    assert result.users == 2 and result.failed == 0 and result.seen_served == 0


def test_served_list_with_a_seen_movie_is_counted():
    lists = {**NDCG_LISTS, 2: sq.Served(["q", "c", "r"], "popular", "pop-1", 200)}
    result = sq.served_vs_popularity(lists, NDCG_REL, NDCG_KEPT, resamples=200)
    assert result.seen_served == 2 and result.users_with_seen == 1
    assert result.share_popular == pytest.approx(0.5)


def test_failed_and_missing_answers_are_scored_empty_and_counted():
    lists = {1: sq.Served([], "", "", 503)}  # user 2 never answered at all
    result = sq.served_vs_popularity(lists, NDCG_REL, NDCG_KEPT, resamples=200)
    assert result.failed == 2 and result.ndcg_served == 0.0 and result.users == 2


def synthetic(n_users: int, seed: int = 1):
    """Users who each like 3 of 30 movies; served lists hit more often than popularity."""
    rng = np.random.default_rng(seed)
    movies = [f"m{i:02d}" for i in range(30)]
    kept = frame([ev(int(u), movies[int(rng.integers(30))], 0) for u in range(n_users)])
    rel, lists = [], {}
    for u in range(n_users):
        liked = rng.choice(30, 3, replace=False)
        rel += [(u, movies[i]) for i in liked]
        order = rng.permutation(30)
        if rng.random() < 0.5:  # half the users get one liked movie on top
            order = np.concatenate([[liked[0]], order[order != liked[0]]])
        lists[u] = sq.Served([movies[i] for i in order[:20]], "model", "v", 200)
    return lists, pd.DataFrame(rel, columns=["user_id", "movie_id"]), kept


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_users():
    small = sq.served_vs_popularity(*synthetic(60), resamples=1000, seed=0)
    large = sq.served_vs_popularity(*synthetic(1500), resamples=1000, seed=0)
    for r in (small, large):
        assert r.ratio_low <= r.ratio <= r.ratio_high
        assert r.difference_low <= r.difference <= r.difference_high
    assert large.ratio_high - large.ratio_low < 0.5 * (small.ratio_high - small.ratio_low)
    assert large.difference_high - large.difference_low < 0.5 * (
        small.difference_high - small.difference_low
    )
    assert "[" in str(large) and str(large.users) in str(large)


def test_paired_bootstrap_is_seeded():
    a, b = np.linspace(0, 1, 50), np.linspace(1, 0, 50)
    r1, d1 = sq.paired_bootstrap(a, b, resamples=300, seed=4)
    r2, d2 = sq.paired_bootstrap(a, b, resamples=300, seed=4)
    assert np.array_equal(r1, r2) and np.array_equal(d1, d2) and len(r1) == 300


class _Handler(BaseHTTPRequestHandler):
    """/recommend/1 -> 200 with headers; /recommend/2 -> 400; anything else -> 503."""

    def do_GET(self):
        user = self.path.rsplit("/", 1)[-1]
        status, body = {"1": (200, "a,b,c"), "2": (400, "bad id")}.get(user, (503, "down"))
        self.send_response(status)
        self.send_header("X-Rec-Source", "model" if status == 200 else "")
        self.send_header("X-Model-Version", "v7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_fetch_lists_records_every_answer_including_failures():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        got = sq.fetch_lists(f"http://127.0.0.1:{server.server_port}", [1, 2, 3], workers=2)
    finally:
        server.shutdown()
        server.server_close()
    assert got[1] == sq.Served(["a", "b", "c"], "model", "v7", 200)
    assert got[2].status == 400 and got[2].items == []
    assert got[3].status == 503 and got[3].items == []
    closed = sq.fetch_lists(f"http://127.0.0.1:{server.server_port}", [1], timeout=1)
    assert closed[1].status == sq.TRANSPORT_ERROR


def test_popularity_ties_follow_the_movie_id_text_even_when_categorical():
    kept = NDCG_KEPT.astype({"movie_id": pd.CategoricalDtype(["s", "r", "q", "p", "a"])})
    popular = sq.popularity_lists(kept, [1], k=20)
    assert popular.movie_id.tolist() == ["q", "a", "r", "s"]
    assert popular["rank"].tolist() == [1, 2, 3, 4]
