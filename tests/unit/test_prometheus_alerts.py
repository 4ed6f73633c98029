"""The service-health alert rules: valid, tested with `promtool test rules` on synthetic series
(ops/prometheus/tests/), and written against the metric names ops.services exports."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from contracts.settings import REPO_ROOT
from ops import supervision_health
from ops.supervision_health import Health

pytestmark = pytest.mark.unit

RULES = REPO_ROOT / "ops" / "prometheus" / "alerts-services.yml"
RULE_TESTS = REPO_ROOT / "ops" / "prometheus" / "tests" / "alerts-services-test.yml"


def rules() -> dict:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


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
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make setup` installs it (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
