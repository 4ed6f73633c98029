"""Fairness measures (jobs/online/fairness.py) against examples worked by hand."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from jobs.online import fairness
from jobs.online.fairness import Limits

pytestmark = pytest.mark.unit

LIMITS = Limits(
    min_group_ratio=0.8,
    min_history_ratio=0.6,
    min_group_users=2,
    min_long_tail_share=0.5,
    min_new_movie_share=0.3,
    new_movie_days=7,
)


def per_user() -> pd.DataFrame:
    # age 18-24: 0.4, 0.6 -> 0.5; 25-34: 0.2, 0.3 -> 0.25; unknown: 1.0 (shown, never judged)
    # gender F: 0.4, 0.2 -> 0.3; M: 0.6, 0.3 -> 0.45
    # history new: 0.4, 0.2, 0.3 -> 0.3 (n=3); heavy 0.6 and medium 1.0 have one user each
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5],
            "ndcg": [0.4, 0.6, 0.2, 0.3, 1.0],
            "age": ["18-24", "18-24", "25-34", "25-34", "unknown"],
            "gender": ["F", "M", "F", "M", "unknown"],
            "history": ["new", "heavy", "new", "new", "medium"],
        }
    )


def interactions() -> pd.DataFrame:
    # a x5, b x3, c x1, d x1: a + b take 80% -> head {a, b}. c first seen on day 9 of 10 -> new.
    day = lambda d: datetime(2025, 1, 1 + d)  # noqa: E731
    rows = [("a", 0)] * 5 + [("b", 0)] * 3 + [("c", 9), ("d", 1)]
    frame = pd.DataFrame(rows, columns=["movie_id", "day"])
    frame["first_time"] = frame["day"].map(day)
    frame["event_time"] = frame["first_time"]
    frame.loc[0, "event_time"] = day(10)  # the newest event: day 10, so new = since day 3
    return frame.assign(user_id=range(len(frame)))


def test_quality_by_group_ratios_worked_by_hand():
    q = fairness.quality_by_group(per_user(), "ndcg", LIMITS)
    assert q["age"]["groups"]["18-24"] == {"units": 2, "value": pytest.approx(0.5)}
    assert (q["age"]["best"], q["age"]["worst"]) == ("18-24", "25-34")
    assert q["age"]["ratio"] == pytest.approx(0.25 / 0.5) and q["age"]["met"] is False
    assert q["gender"]["ratio"] == pytest.approx(0.3 / 0.45) and q["gender"]["met"] is False
    # one judged history band only: nothing to compare, not judged
    assert q["history"]["ratio"] is None and q["history"]["met"] is None
    assert q["history"]["limit"] == 0.6 and q["age"]["limit"] == 0.8


def test_a_ratio_at_the_limit_is_met():
    units = pd.DataFrame({"ndcg": [0.8, 0.8, 1.0, 1.0], "gender": ["F", "F", "M", "M"]})
    q = fairness.group_quality(units, "ndcg", "gender", 2, 0.8)
    assert q["ratio"] == pytest.approx(0.8) and q["met"] is True


def test_head_new_and_exposure_worked_by_hand():
    head, new, known = fairness.catalogue(interactions(), LIMITS)
    assert head == {"a", "b"} and new == {"c"} and known == {"a", "b", "c", "d"}
    # slots a b c a e: tail = c, e (unseen) -> 2/5; new = c, e -> 2/5
    ex = fairness.exposure(["a", "b", "c", "a", "e"], head, new, known, LIMITS)
    assert ex["slots"] == 5 and ex["movies"] == 4
    assert ex["long_tail_share"] == pytest.approx(0.4) and ex["long_tail_met"] is False
    assert ex["new_movie_share"] == pytest.approx(0.4) and ex["new_movie_met"] is True


def test_offline_result_names_each_violation():
    lists = pd.DataFrame({"user_id": [1, 2], "items": [["a", "b", "c"], ["a", "e"]]})
    result = fairness.offline_result("m1", per_user(), lists, interactions(), LIMITS)
    assert result["users"] == 5
    assert result["violations"] == [
        "offline quality by age: 25-34 / 18-24 = 0.500 < 0.8",
        "offline quality by gender: F / M = 0.667 < 0.8",
        "offline long-tail share 0.400 < 0.5",
    ]


def test_online_result_by_group_of_the_users_served():
    # user 1 (F, 18-24): lists hit, miss; user 2 (M, 25-34): hit; user 3 unknown: miss.
    # A line without a list (hit NaN, an error) is no list.
    lines = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 2],
            "hit": [1.0, 0.0, 1.0, 0.0, float("nan")],
            "items": [["a", "b"], ["c", "a"], ["a", "b"], ["d", "x"], None],
        }
    )
    dim = pd.DataFrame({"user_id": [1, 2], "age": [20, 30], "gender": ["F", "M"]})
    history = pd.Series({1: 3, 2: 50})  # user 3 never interacted: new
    groups = fairness.user_groups(lines["user_id"], dim, history)
    assert groups.set_index("user_id").loc[3].tolist() == ["unknown", "unknown", "new"]
    limits = Limits(0.8, 0.6, 1, 0.5, 0.3, 7)
    sets = fairness.catalogue(interactions(), limits)
    window = (datetime(2025, 1, 10), datetime(2025, 1, 11))
    result = fairness.online_result(lines, groups, sets, limits, "*", window)
    assert result["lists"] == 4 and result["users"] == 3
    gender = result["quality"]["gender"]
    assert gender["groups"]["F"]["value"] == pytest.approx(0.5)
    assert gender["ratio"] == pytest.approx(0.5 / 1.0) and gender["met"] is False
    history_q = result["quality"]["history"]  # new: users 1 (2 lists) and 3: 1/3; heavy: 1/1
    assert history_q["ratio"] == pytest.approx(1 / 3) and history_q["met"] is False
    # 8 slots a b c a a b d x: tail = c d x -> 3/8; new = c x -> 2/8
    assert result["exposure"]["long_tail_share"] == pytest.approx(3 / 8)
    assert result["exposure"]["new_movie_share"] == pytest.approx(2 / 8)


def test_samples_carry_ratio_limit_and_verdict():
    result = fairness.offline_result("m1", per_user(), None, interactions(), LIMITS)
    by_name = {}
    for s in fairness.samples([result]):
        by_name.setdefault(s.metric.name, []).append(s)
    met = {s.labels["requirement"]: s.value for s in by_name["recs_fairness_requirement_met"]}
    assert met["quality_age"] == 0.0 and met["quality_history"] is None
    assert met["exposure_long_tail"] is None  # no published lists: not judged
