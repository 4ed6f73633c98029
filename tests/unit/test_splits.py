"""jobs.train.splits: the per-user later split on a hand-worked frame."""

from __future__ import annotations

import pandas as pd
import pytest

from jobs.train.splits import per_user_later_split

pytestmark = pytest.mark.unit


def test_each_users_later_fifth_is_held_out_and_single_interactions_stay():
    t = pd.Timestamp("2024-01-01")
    rows = [(1, f"m{i}", t + pd.Timedelta(days=i)) for i in range(10)]  # 10 -> last 2 later
    rows += [(2, "a", t), (2, "b", t + pd.Timedelta(days=1))]  # 2 -> last 1 later
    rows += [(3, "only", t)]  # 1 interaction: stays whole
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "event_time"])
    earlier, later = per_user_later_split(frame, 0.2)
    assert sorted(map(tuple, later[["user_id", "movie_id"]].to_numpy())) == [
        (1, "m8"),
        (1, "m9"),
        (2, "b"),
    ]
    assert len(earlier) + len(later) == len(frame)
    assert (3, "only") in set(map(tuple, earlier[["user_id", "movie_id"]].to_numpy()))
    with pytest.raises(ValueError, match="fraction"):
        per_user_later_split(frame, 1.0)
