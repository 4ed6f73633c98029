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


PRODUCTION = ("jobs", "serving", "simulator", "ops", "dags", "contracts")
# Reads of the environment that are not platform knobs: a crash-injection hook of the ingest
# tests, and the environment ops passes through to the processes it starts.
ENV_READS_ALLOWED = {
    "contracts/settings.py": None,
    "jobs/ingest/snapshot.py": {"CRASH_ENV"},
    "ops/services.py": {"PATH", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"},
}


def production_files():
    for package in PRODUCTION:
        yield from sorted((REPO / package).rglob("*.py"))


def env_reads(path: Path) -> set[str]:
    """Names read from os.environ / os.getenv in a file (the expression text when not literal)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv") and node.args:
                key = node.args[0]
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        ):
            key = node.slice
        if key is not None:
            found.add(key.value if isinstance(key, ast.Constant) else ast.unparse(key))
    return found


def test_the_environment_is_read_in_contracts_settings_only():
    offenders = []
    for path in production_files():
        rel = str(path.relative_to(REPO))
        allowed_names = ENV_READS_ALLOWED.get(rel, set())
        if allowed_names is None:
            continue
        offenders += [f"{rel} reads {name}" for name in env_reads(path) - allowed_names]
    assert offenders == []


def test_shared_names_are_defined_once():
    from contracts import names

    shared = {n for n in vars(names) if n.isupper()}
    redefined = []
    for path in production_files():
        if path == REPO / "contracts" / "names.py":
            continue
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in shared:
                    redefined.append(f"{path.relative_to(REPO)}:{node.lineno} {target.id}")
    assert redefined == []


LONGEST_FUNCTION = 65  # "about 60 lines": a function that needs more is doing several things


def test_no_production_function_is_long():
    long = []
    for path in production_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert long == []


def test_the_environment_checker_sees_reads(tmp_path):
    code = tmp_path / "x.py"
    code.write_text(
        'import os\na = os.environ.get("A")\nb = os.environ["B"]\nc = os.getenv(NAME)\n'
    )
    assert env_reads(code) == {"A", "B", "NAME"}


# Helpers the review found written two to four times; each now has one home.
ONE_HOME = {
    "psycopg2.connect(": "contracts/db.py",
    '"rev-parse"': "contracts/provenance.py",
    "def parse_hyperparameters": "jobs/train/train.py",
    "def to_stars": "simulator/importers.py",
    "def wait_until": "ops/services.py",
    "MAX_USER_ID =": "contracts/grammar.py",
}


def test_shared_helpers_have_one_home():
    files = [*production_files(), *sorted((REPO / "tests" / "support").rglob("*.py"))]
    texts = {str(path.relative_to(REPO)): path.read_text() for path in files}
    homes = {
        needle: {name for name, text in texts.items() if needle in text} for needle in ONE_HOME
    }
    assert homes == {needle: {home} for needle, home in ONE_HOME.items()}
