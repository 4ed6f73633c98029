"""Exploration slots (jobs.publish.topk.explore_slots, EXPLORATION_SLOTS): the last places of a
scored list go to unseen movies drawn uniformly, the model's head of the list stays."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import settings
from jobs.publish import topk

pytestmark = pytest.mark.unit


def test_last_slots_are_unseen_distinct_and_new():
    items = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    seen = topk.SeenCSR.from_lists([[10, 11, 12], []])
    out = topk.explore_slots(items, 40, 2, np.random.default_rng(1), seen)
    assert (out[:, :3] == items[:, :3]).all()  # the model's head is kept
    for row, banned in ((0, {0, 1, 2, 10, 11, 12}), (1, {5, 6, 7})):
        tail = out[row, 3:].tolist()
        assert len(set(tail)) == 2 and not set(tail) & banned and all(0 <= i < 40 for i in tail)
    again = topk.explore_slots(items, 40, 2, np.random.default_rng(1), seen)
    assert (again == out).all()  # seeded: a rerun scores the same lists


def test_draws_cover_the_catalogue_uniformly():
    items = np.tile(np.arange(5), (4000, 1))
    out = topk.explore_slots(items, 25, 1, np.random.default_rng(0), topk.SeenCSR.empty(4000))
    counts = np.bincount(out[:, 4], minlength=25)
    assert counts[:4].sum() == 0 and (counts[4:] > 0).all()  # 0-3 listed above; 4 may return
    assert counts[5:].max() / counts[5:].min() < 1.6  # about 4000/21 each


def test_a_row_without_enough_unseen_movies_keeps_its_list():
    items = np.array([[0, 1, 2]])
    out = topk.explore_slots(
        items, 4, 2, np.random.default_rng(0), topk.SeenCSR.from_lists([[2, 3]])
    )
    assert (out == items).all()
    assert topk.explore_slots(items, 4, 0, np.random.default_rng(0), topk.SeenCSR.empty(1)) is items


def test_exploration_slots_setting(monkeypatch):
    monkeypatch.delenv("EXPLORATION_SLOTS", raising=False)
    assert settings.exploration_slots() == 0
    monkeypatch.setenv("EXPLORATION_SLOTS", "5")
    assert settings.exploration_slots() == 5
    monkeypatch.setenv("EXPLORATION_SLOTS", "20")
    with pytest.raises(ValueError, match="EXPLORATION_SLOTS"):
        settings.exploration_slots()
