"""The gate's rules on hand-picked numbers, including the edges of the tolerance."""

from __future__ import annotations

import json
import math

import pytest

from jobs import gate

pytestmark = pytest.mark.unit


def test_must_beat_popularity():
    d = gate.decide("cand", 0.10, 0.10)
    assert not d.passed
    assert "does not beat popularity 0.1000" in d.reason
    assert gate.decide("cand", 0.1001, 0.10).passed


def test_first_model_only_needs_to_beat_popularity():
    d = gate.decide("cand", 0.2, 0.1, production=None)
    assert d.passed and "no production model" in d.reason


def test_tolerance_is_relative_to_production():
    # production 0.30, tolerance 5 %: the floor is 0.285.
    assert gate.decide("c", 0.2851, 0.1, "prod", 0.30, tolerance=0.05).passed
    low = gate.decide("c", 0.2849, 0.1, "prod", 0.30, tolerance=0.05)
    assert not low.passed
    assert "more than 5% below production prod (0.3000; floor 0.2850)" in low.reason
    assert not gate.decide("c", 0.2999, 0.1, "prod", 0.30, tolerance=0.0).passed


def test_missing_or_nan_scores_reject():
    assert not gate.decide("c", math.nan, 0.1).passed
    d = gate.decide("c", 0.3, 0.1, "prod", None)
    assert not d.passed and "was not measured" in d.reason


def test_candidate_equal_to_production_passes_against_itself():
    assert gate.decide("v1", 0.3, 0.1, "v1", 0.3).passed


def test_bad_tolerance_and_missing_scores_raise():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        gate.decide("c", 0.3, 0.1, tolerance=1.5)
    with pytest.raises(ValueError, match="popularity baseline"):
        gate.decide_from_scores("c", {"c": 0.3}, "pop", None)


def test_tolerance_from_env(monkeypatch):
    monkeypatch.setenv(gate.TOLERANCE_ENV, "0.1")
    assert gate.tolerance_from_env() == 0.1
    monkeypatch.delenv(gate.TOLERANCE_ENV)
    assert gate.tolerance_from_env() == gate.DEFAULT_TOLERANCE


def test_cli_exit_code_and_json(tmp_path, capsys):
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"cand": 0.05, "pop": 0.08, "prod": 0.2}))
    code = gate.main(
        [
            "--scores",
            str(scores),
            "--candidate",
            "cand",
            "--popularity",
            "pop",
            "--production",
            "prod",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["passed"] is False and out["production_score"] == 0.2
