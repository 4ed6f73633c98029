"""The platform alert rules (ops/prometheus/alerts-platform.yml): `promtool test rules` passes,
every rule is tested both firing and quiet, and every rule reads only metrics the code exports
or pushes."""

from __future__ import annotations

import re

import pytest

from contracts import settings
from contracts.settings import REPO_ROOT
from tests.support import alert_rules, metric_names

pytestmark = pytest.mark.unit

RULES = REPO_ROOT / "ops" / "prometheus" / "alerts-platform.yml"
RULE_TESTS = REPO_ROOT / "ops" / "prometheus" / "tests" / "alerts-platform-test.yml"
# The issue's list, each by the rule(s) that cover it.
REQUIRED = {
    "availability below 99% over 15 minutes": {"AvailabilityLow", "OnlineAvailabilityLow"},
    "p99 above 200 ms": {"LatencyP99High", "OnlineLatencyP99High"},
    "no accepted snapshot for 2 hours": {"NoAcceptedSnapshot"},
    "a snapshot quarantined": {"SnapshotQuarantined"},
    "online accuracy below its 7-day baseline": {"OnlineAccuracyDrop"},
    "production model older than 4 days": {"ProductionModelStale"},
    "a training run rejected": {"TrainingRunRejected"},
    "prediction log dropping records": {"PredictionLogDropped", "PredictionLogDiscarded"},
}


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


def test_the_issues_alerts_all_exist_with_a_severity_and_a_text():
    for what, names in REQUIRED.items():
        assert names <= set(rules()), what
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_rules_read_only_metrics_the_code_exports_or_pushes():
    exported = metric_names.exported()
    for name, rule in rules().items():
        used = metric_names.used(rule["expr"])
        assert used, f"{name} reads no metric of ours: {rule['expr']}"
        assert used <= exported, f"{name} reads unknown metrics {used - exported}"


def test_the_checker_sees_a_misspelt_metric():
    assert metric_names.used('recs_online_acuracy_ratio{variant="all"} < 1') - (
        metric_names.exported()
    ) == {"recs_online_acuracy_ratio"}


def test_the_accuracy_alert_uses_the_retraining_triggers_level(monkeypatch):
    monkeypatch.delenv("RETRAIN_ACCURACY_DROP", raising=False)  # the committed default
    expr = rules()["OnlineAccuracyDrop"]["expr"]
    factor = float(re.search(r"group_left\s+([0-9.]+)\s*\*", expr).group(1))
    assert factor == pytest.approx(1 - settings.retrain_accuracy_drop())
