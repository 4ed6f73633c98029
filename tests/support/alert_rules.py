"""Reading Prometheus alert rules and their promtool unit tests, for the rule-file tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml


def rules(path: Path) -> dict[str, dict]:
    """Alert name -> rule, over every group of a rule file."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def rule_tests(path: Path) -> list[dict]:
    """Every `alert_rule_test` case of a promtool test file."""
    tests = yaml.safe_load(path.read_text())["tests"]
    return [case for test in tests for case in test["alert_rule_test"]]


def untested(rules_path: Path, tests_path: Path) -> tuple[set[str], set[str]]:
    """(rules never shown firing, rules never shown quiet) by the test file."""
    cases = rule_tests(tests_path)
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    names = set(rules(rules_path))
    return names - fired, names - quiet


def promtool_test(tests_path: Path) -> subprocess.CompletedProcess:
    """`promtool test rules` on the file (promtool must be installed)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make setup` installs it (Debian package prometheus)"
    return subprocess.run(
        [promtool, "test", "rules", str(tests_path)], capture_output=True, text=True, check=False
    )
