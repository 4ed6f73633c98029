"""The fairness alert rules (ops/prometheus/alerts-responsible.yml): `promtool test rules` passes,
every rule is tested firing and quiet, reads only pushed metrics, and the requirement names it
documents are the ones jobs/online/fairness.py pushes."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from contracts.settings import REPO_ROOT
from jobs.online import fairness
from tests.support import alert_rules, metric_names

pytestmark = pytest.mark.unit

RULES = REPO_ROOT / "ops" / "prometheus" / "alerts-responsible.yml"
RULE_TESTS = REPO_ROOT / "ops" / "prometheus" / "tests" / "alerts-responsible-test.yml"


def rules() -> dict[str, dict]:
    return alert_rules.rules(RULES)


def test_promtool_passes_the_rule_unit_tests():
    result = alert_rules.promtool_test(RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_tested_firing_and_quiet():
    never_fired, never_quiet = alert_rules.untested(RULES, RULE_TESTS)
    assert not never_fired, f"never shown firing: {never_fired}"
    assert not never_quiet, f"never shown quiet: {never_quiet}"


def test_rules_read_only_pushed_metrics():
    exported = metric_names.exported()
    for name, rule in rules().items():
        used = metric_names.used(rule["expr"])
        assert used and used <= exported, f"{name}: {used - exported}"
        assert rule["labels"]["severity"] in ("page", "ticket")


def test_the_requirement_labels_in_the_tests_are_the_pushed_ones():
    per_user = pd.DataFrame(
        {"user_id": [1, 2], "ndcg": [0.1, 0.2], "age": "25-34", "gender": ["F", "M"]}
    )
    interactions = pd.DataFrame(
        {
            "user_id": [1],
            "movie_id": ["a"],
            "first_time": [datetime(2025, 1, 1)],
            "event_time": [datetime(2025, 1, 1)],
        }
    )
    lists = pd.DataFrame({"user_id": [1], "items": [["a", "b"]]})
    limits = fairness.Limits(0.8, 0.6, 1, 0.1, 0.01, 7)
    result = fairness.offline_result("m2", per_user, lists, interactions, limits)
    pushed = {
        s.labels["requirement"]
        for s in fairness.samples([result])
        if s.metric.name == "recs_fairness_requirement_met"
    }
    assert pushed == {"quality_age", "quality_gender", "exposure_long_tail", "exposure_new_movie"}
    documented = RULES.read_text()
    assert all(name in documented for name in pushed | {"quality_history"})
    in_tests = RULE_TESTS.read_text()
    assert 'requirement="exposure_long_tail"' in in_tests and "quality_age" in in_tests
