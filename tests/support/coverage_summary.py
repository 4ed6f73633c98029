"""Line coverage per package (jobs, serving, simulator, ops) from the data `make test` left.

`python -m tests.support.coverage_summary [data file]`: one row per package and the total,
read through coverage's JSON report (files never imported count as 0 %). The floor is
`[tool.coverage.report] fail_under` in pyproject.toml, enforced by pytest-cov.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import coverage

PACKAGES = ("jobs", "serving", "simulator", "ops")


def per_package(files: dict) -> dict[str, tuple[int, int]]:
    """{package: (statements, covered)} from a coverage JSON report's `files` mapping."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, entry in files.items():
        package = Path(name).parts[0]
        summary = entry["summary"]
        totals[package][0] += summary["num_statements"]
        totals[package][1] += summary["covered_lines"]
    return {package: tuple(totals[package]) for package in PACKAGES if package in totals}


def table(rows: dict[str, tuple[int, int]]) -> list[str]:
    lines = [f"{'package':<10} {'statements':>10} {'covered':>8} {'line %':>7}"]
    all_statements = sum(s for s, _ in rows.values())
    all_covered = sum(c for _, c in rows.values())
    for package, (statements, covered) in [*rows.items(), ("total", (all_statements, all_covered))]:
        percent = 100.0 * covered / statements if statements else 100.0
        lines.append(f"{package:<10} {statements:>10} {covered:>8} {percent:>6.1f}%")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cov = coverage.Coverage(**({"data_file": args[0]} if args else {}))  # None: no file
    cov.load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        try:
            cov.json_report(outfile=str(out))
        except coverage.exceptions.NoDataError:
            print(f"no coverage data in {cov.config.data_file}")
            return 1
        files = json.loads(out.read_text())["files"]
    print("\n".join(["line coverage by package", *table(per_package(files))]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
