"""Pytest plugin: under CI (CI=true) a skipped test fails the run, so CI cannot go green
with whole modules skipped because a service, a binary or a data file was missing."""

from __future__ import annotations

import pytest

from contracts import settings


def _skipped(session_or_config) -> list:
    config = getattr(session_or_config, "config", session_or_config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return list(reporter.stats.get("skipped", [])) if reporter else []


PASSING = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if settings.running_in_ci() and _skipped(session) and exitstatus in PASSING:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = _skipped(config)
    if settings.running_in_ci() and skipped:
        terminalreporter.write_line(
            f"CI=true: {len(skipped)} skipped test(s) count as failures (reasons above, -ra)",
            red=True,
            bold=True,
        )
