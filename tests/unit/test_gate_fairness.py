"""The gate's fairness rule (jobs/train/gate.py rule 4): recorded by default, blocking on demand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jobs.train import gate

pytestmark = pytest.mark.unit


def units(n: int, women_score: float, men_score: float) -> pd.DataFrame:
    """Per-user scores of n users, half F, half M, all 25-34 with a medium history."""
    gender = np.array(["F", "M"] * (n // 2))
    ndcg = np.where(gender == "F", women_score, men_score)
    return pd.DataFrame(
        {
            "fold": 0,
            "user_id": np.arange(n),
            "ndcg": ndcg,
            "gender": gender,
            "age": "25-34",
            "history": "medium",
        }
    )


def popularity(n: int) -> pd.DataFrame:
    return units(n, 0.05, 0.05)


def test_unfair_candidate_is_recorded_but_published_by_default(monkeypatch):
    monkeypatch.delenv("FAIRNESS_MIN_GROUP_RATIO", raising=False)
    # women 0.2, men 0.5: ratio 0.4 < 0.8, and both beat popularity's 0.05
    cand = units(200, 0.2, 0.5)
    d = gate.decide("cand", cand, "pop", popularity(200), min_users=100)
    assert d.passed and d.publish == "cand" and d.fairness_mode == "record"
    gender = d.fairness["quality"]["gender"]
    assert gender["worst"] == "F" and gender["ratio"] == pytest.approx(0.4)
    assert d.fairness["violations"] == ["offline quality by gender: F / M = 0.400 < 0.8"]
    assert "fairness recorded, not blocking" in d.reason
    assert json.loads(d.to_json())["fairness"]["quality"]["gender"]["met"] is False


def test_unfair_candidate_is_rejected_in_block_mode():
    cand = units(200, 0.2, 0.5)
    kept = gate.decide(
        "cand", cand, "pop", popularity(200), production="prod",
        production_scores=popularity(200), min_users=100, fairness_mode="block",
    )  # fmt: skip
    assert not kept.passed and kept.publish is None
    assert kept.reason.startswith("fairness: offline quality by gender: F / M = 0.400")
    # with no model in production, the popularity list goes out instead of the unfair model
    first = gate.decide("cand", cand, "pop", popularity(200), min_users=100, fairness_mode="block")
    assert not first.passed and first.publish == "pop"


def test_fair_candidate_passes_in_block_mode():
    cand = units(200, 0.45, 0.5)  # ratio 0.9
    d = gate.decide("cand", cand, "pop", popularity(200), min_users=100, fairness_mode="block")
    assert d.passed and d.publish == "cand" and d.fairness["violations"] == []
    assert d.fairness["quality"]["gender"]["ratio"] == pytest.approx(0.9)


def test_block_mode_never_rescues_a_candidate_the_other_rules_reject():
    cand = units(200, 0.02, 0.02)  # worse than popularity, perfectly even
    d = gate.decide("cand", cand, "pop", popularity(200), production="prod", min_users=100,
                    production_scores=popularity(200), fairness_mode="block")  # fmt: skip
    assert not d.passed and "does not lie above 0" in d.reason


def test_unknown_mode_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="record' or 'block"):
        gate.decide("c", units(10, 0.1, 0.1), "p", popularity(10), fairness_mode="warn")
    monkeypatch.setenv("FAIRNESS_GATE", "warn")
    from contracts import settings

    with pytest.raises(ValueError, match="FAIRNESS_GATE"):
        settings.fairness_gate_mode()
