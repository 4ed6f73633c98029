"""The service-health alert rules: valid, tested with `promtool test rules` on synthetic series
(ops/prometheus/tests/), and written against the metric names ops.services exports."""

from __future__ import annotations

import json

import pytest

from contracts.settings import REPO_ROOT
from ops import supervision_health
from ops.supervision_health import Health
from tests.support import alert_rules

pytestmark = pytest.mark.unit

RULES = REPO_ROOT / "ops" / "prometheus" / "alerts-services.yml"
RULE_TESTS = REPO_ROOT / "ops" / "prometheus" / "tests" / "alerts-services-test.yml"


def rules() -> dict:
    return alert_rules.rules(RULES)


def test_service_down_fires_after_two_minutes_of_recs_service_up_zero():
    down = rules()["ServiceDown"]
    assert down["expr"].replace(" ", "") == "recs_service_up==0"
    assert down["for"] == "2m"
    assert "{{ $labels.service }}" in down["annotations"]["summary"]


def test_rules_use_only_metrics_the_exporter_writes():
    text = supervision_health.prometheus_text([Health("kafka", True)], now=0.0)
    exported = {line.split("{")[0].split()[0] for line in text.splitlines() if line[:1] != "#"}
    for rule in rules().values():
        used = {word for word in exported if word in rule["expr"]}
        assert used, f"{rule['alert']} uses no exported metric: {rule['expr']}"


def test_promtool_passes_the_rule_unit_tests():
    result = alert_rules.promtool_test(RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_coverage_check_names_a_rule_never_shown_quiet(tmp_path):
    rules_file, tests_file = tmp_path / "rules.yml", tmp_path / "tests.yml"
    rule = {"alert": "A", "expr": "up == 0"}
    rules_file.write_text(f"groups: [{{name: g, rules: [{json.dumps(rule)}]}}]")
    case = {"alertname": "A", "eval_time": "1m", "exp_alerts": [{"exp_labels": {}}]}
    tests_file.write_text(f"tests: [{{alert_rule_test: [{json.dumps(case)}]}}]")
    assert alert_rules.untested(rules_file, tests_file) == (set(), {"A"})
