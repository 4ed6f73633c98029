"""The fairness alert rules (ops/prometheus/alerts-responsible.yml): `promtool test rules` passes,
every rule is tested firing and quiet, reads only pushed metrics, and the requirement names it
documents are the ones jobs/online/fairness.py pushes."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime

import pandas as pd
import pytest
import yaml

from contracts.settings import REPO_ROOT
from jobs.online import fairness
from tests.support import metric_names

pytestmark = pytest.mark.unit

RULES = REPO_ROOT / "ops" / "prometheus" / "alerts-responsible.yml"
RULE_TESTS = REPO_ROOT / "ops" / "prometheus" / "tests" / "alerts-responsible-test.yml"


def rules() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def rule_tests() -> list[dict]:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [case for test in tests for case in test["alert_rule_test"]]


def test_promtool_passes_the_rule_unit_tests():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make setup` installs it (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_tested_firing_and_quiet():
    fired = {case["alertname"] for case in rule_tests() if case["exp_alerts"]}
    quiet = {case["alertname"] for case in rule_tests() if not case["exp_alerts"]}
    assert set(rules()) <= fired and set(rules()) <= quiet


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
