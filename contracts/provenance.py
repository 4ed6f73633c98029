"""Where code and results come from: the git commit and the library versions, asked once here."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from contracts import settings

LIBRARIES = ("numpy", "pandas", "scipy", "pyarrow", "pyspark", "scikit-surprise", "scikit-learn")


def _git(*args: str) -> str:
    return subprocess.run(  # noqa: S603 - a fixed git argv, no shell
        ["git", *args],  # noqa: S607 - git from PATH, as every developer runs it
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()


def git_commit() -> str:
    """The code's commit: GIT_COMMIT when set (a deployed image has no .git), else HEAD with
    '+dirty' when tracked files have uncommitted changes, else 'unknown'."""
    override = settings.git_commit_override()
    if override:
        return override
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on, plus Python."""
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
