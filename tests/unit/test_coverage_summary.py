"""The per-package coverage table `make test` prints, on a hand-made JSON report."""

from __future__ import annotations

import pytest

from tests.support.coverage_summary import per_package, table

pytestmark = pytest.mark.unit


def entry(statements: int, covered: int) -> dict:
    return {"summary": {"num_statements": statements, "covered_lines": covered}}


def test_files_add_up_per_package_and_in_the_total():
    files = {
        "jobs/a.py": entry(10, 5),
        "jobs/ingest/b.py": entry(30, 30),
        "serving/app.py": entry(20, 0),
        "ops/services.py": entry(40, 30),
    }
    rows = per_package(files)
    assert rows == {"jobs": (40, 35), "serving": (20, 0), "ops": (40, 30)}
    lines = table(rows)
    assert lines[1].split() == ["jobs", "40", "35", "87.5%"]
    assert lines[2].split() == ["serving", "20", "0", "0.0%"]
    assert lines[-1].split() == ["total", "100", "65", "65.0%"]
