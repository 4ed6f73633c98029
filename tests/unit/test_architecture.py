"""The import rules of docs/architecture.md, read from the code itself (ast, no imports run).

dags -> jobs.pipeline · jobs -> contracts, jobs · serving -> contracts, serving ·
simulator -> contracts, simulator · ops -> contracts, ops, jobs.pipeline · contracts ->
contracts. Tests and benchmarks may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contracts import settings

pytestmark = pytest.mark.unit

REPO = settings.REPO_ROOT
PROJECT = ("contracts", "jobs", "serving", "simulator", "ops", "dags", "tests", "benchmarks")
ALLOWED = {
    "dags": ("jobs.pipeline",),
    "jobs": ("contracts", "jobs"),
    "serving": ("contracts", "serving"),
    "simulator": ("contracts", "simulator"),
    "ops": ("contracts", "ops", "jobs.pipeline"),
    "contracts": ("contracts",),
}


def project_imports(path: Path) -> set[str]:
    """Dotted names of the project modules a file imports (`from a import b` gives a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT}


def allowed(name: str, rules: tuple[str, ...]) -> bool:
    return any(name == rule or name.startswith(rule + ".") for rule in rules)


def violations(package: str) -> list[str]:
    rules = ALLOWED[package]
    return [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in sorted(project_imports(path))
        if not allowed(name, rules)
    ]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layout(package):
    assert violations(package) == []


def test_the_checker_sees_a_wrong_way_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from jobs.train import dataset\nimport serving.store\nimport numpy\n")
    names = project_imports(bad)
    assert names == {"jobs.train.dataset", "serving.store"}
    assert not allowed("jobs.train.dataset", ALLOWED["serving"])
    assert allowed("jobs.pipeline", ALLOWED["dags"]) and not allowed("jobs.train", ALLOWED["dags"])
