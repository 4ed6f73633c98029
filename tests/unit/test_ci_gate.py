"""Under CI=true a skipped test fails the run; elsewhere a skip stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.settings import REPO_ROOT

pytestmark = pytest.mark.unit

SKIPPING = """
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_needs_something_missing():
    pytest.skip("the thing is missing")
"""


def run_pytest(tmp_path: Path, ci: str, body: str = SKIPPING) -> subprocess.CompletedProcess:
    (tmp_path / "test_x.py").write_text(body)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.ci_gate", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_the_run_under_ci(tmp_path):
    result = run_pytest(tmp_path, "true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "1 skipped test(s) count as failures" in result.stdout
    assert "the thing is missing" in result.stdout


def test_a_module_skipped_at_collection_fails_the_run_under_ci(tmp_path):
    body = 'import pytest\npytest.skip("no binary", allow_module_level=True)\n'
    result = run_pytest(tmp_path, "true", body)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "count as failures" in result.stdout


def test_a_skip_is_only_a_skip_outside_ci(tmp_path):
    result = run_pytest(tmp_path, "")
    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert "count as failures" not in result.stdout
