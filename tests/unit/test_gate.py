"""The statistical gate: paired bootstrap intervals over users decide, not bare means."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jobs.train import gate

pytestmark = pytest.mark.unit


def scores(values, users=None, folds=None) -> pd.DataFrame:
    """Per-unit NDCG frame as jobs.train.train writes it (fold, user_id, ndcg)."""
    values = np.asarray(values, dtype=float)
    users = np.arange(len(values)) if users is None else np.asarray(users)
    folds = np.zeros(len(values), dtype=int) if folds is None else np.asarray(folds)
    return pd.DataFrame({"fold": folds, "user_id": users, "ndcg": values})


def noisy(n: int, mean: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(mean, 0.25, n), 0, 1)


def test_advantage_inside_the_noise_is_refused_on_a_tiny_test_set():
    # 8 users; the candidate's mean is higher, but one lucky user carries it.
    pop = scores([0.1, 0.0, 0.2, 0.1, 0.0, 0.1, 0.2, 0.0])
    cand = scores([0.1, 0.0, 0.2, 0.1, 0.0, 0.1, 0.2, 0.9])
    d = gate.decide("cand", cand, "pop", pop, production="prod", min_users=5)
    assert cand.ndcg.mean() > pop.ndcg.mean()
    assert not d.passed and d.publish is None
    assert d.vs_popularity.low <= 0 < d.vs_popularity.estimate
    assert "does not lie above 0" in d.reason and "8 users" in d.reason


def test_clearly_better_candidate_is_accepted_with_its_interval():
    base = noisy(600, 0.10, seed=1)
    pop, cand = scores(base), scores(np.clip(base + 0.08 + noisy(600, 0, 2) * 0.1, 0, 1))
    d = gate.decide("cand", cand, "pop", pop, min_users=100)
    assert d.passed and d.publish == "cand"
    assert 0 < d.vs_popularity.low < d.vs_popularity.estimate < d.vs_popularity.high
    assert d.users == 600 and "no production model" in d.reason


def test_too_few_users_keeps_production_but_a_first_run_publishes_popularity():
    pop, cand = scores([0.0] * 20), scores([1.0] * 20)
    kept = gate.decide("cand", cand, "pop", pop, production="prod", production_scores=pop)
    assert not kept.passed and kept.publish is None
    assert "only 20 test users (< 100)" in kept.reason
    first = gate.decide("cand", cand, "pop", pop, production=None)
    assert not first.passed and first.publish == "pop"
    assert "popularity list is published" in first.reason


def test_non_inferiority_to_production_is_judged_on_the_interval():
    base = noisy(800, 0.30, seed=3)
    pop = scores(base * 0.5)
    prod = scores(base)
    same = gate.decide("c", scores(base), "pop", pop, "prod", prod, tolerance=0.05)
    assert same.passed and same.vs_production.estimate == 0.0
    worse = gate.decide("c", scores(base * 0.8), "pop", pop, "prod", prod, tolerance=0.05)
    assert not worse.passed and worse.publish is None
    assert worse.vs_production.low < -0.05 * prod.ndcg.mean()
    assert "lower bound below" in worse.reason
    lenient = gate.decide("c", scores(base * 0.8), "pop", pop, "prod", prod, tolerance=0.5)
    assert lenient.passed


def test_users_are_resampled_as_clusters_across_folds():
    # Two folds of the same 150 users: 150 users, 300 units; the interval resamples users.
    users = np.tile(np.arange(150), 2)
    folds = np.repeat([0, 1], 150)
    base = noisy(300, 0.2, seed=4)
    d = gate.decide(
        "c", scores(base + 0.05, users, folds), "pop", scores(base, users, folds), min_users=100
    )
    assert d.users == 150 and d.test_units == 300 and d.passed
    assert d.vs_popularity.low == pytest.approx(0.05) and d.vs_popularity.high == pytest.approx(
        0.05
    )


def test_bootstrap_interval_narrows_with_more_users():
    def width(n: int) -> float:
        a = noisy(n, 0.2, seed=5)
        frame = scores(a).rename(columns={"ndcg": "a"}).assign(b=noisy(n, 0.2, seed=6))
        interval = gate.bootstrap_difference(frame)
        assert interval.low <= interval.estimate <= interval.high
        return interval.high - interval.low

    assert width(1600) < 0.6 * width(100)


def test_models_scored_on_different_units_are_refused():
    with pytest.raises(ValueError, match="different test units"):
        gate.decide("c", scores([0.5] * 120), "pop", scores([0.1] * 110), min_users=10)


def test_no_scores_reject_and_bad_settings_raise(monkeypatch):
    d = gate.decide("c", None, "pop", scores([0.1] * 200))
    assert not d.passed and "no per-user" in d.reason
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        gate.decide("c", scores([0.3]), "pop", scores([0.1]), tolerance=1.5)
    monkeypatch.setenv("GATE_MIN_USERS", "0")
    with pytest.raises(ValueError, match="positive"):
        gate.min_users_from_env()
    monkeypatch.setenv("GATE_NDCG_TOLERANCE", "0.1")
    assert gate.tolerance_from_env() == 0.1


def test_cli_reads_per_user_files_and_exits_1_on_reject(tmp_path, capsys):
    cand, pop = tmp_path / "cand.parquet", tmp_path / "pop.parquet"
    scores([0.05] * 150).to_parquet(cand)
    scores([0.08] * 150).to_parquet(pop)
    code = gate.main(["--candidate", str(cand), "--popularity", str(pop)])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["passed"] is False and out["users"] == 150
    assert out["vs_popularity"]["high"] < 0
