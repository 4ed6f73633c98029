"""Any checkout path: a copy of the repository under a 0700 parent directory (as a clone in
root's home is) starts, reports and resets its own Postgres through `python -m ops.services`.

Only Postgres is started, on a port outside the kernel's ephemeral range (so the port
reservation `up` makes is a no-op there); the shared services are not touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import db
from contracts.settings import REPO_ROOT
from ops import services

pytestmark = pytest.mark.integration

# What `python -m ops.services up postgres` reads: settings, the lifecycle, the schema files.
PARTS = ("contracts", "ops", "sql")
KNOBS = ("RECS_VAR_DIR", "RECS_CACHE_DIR", "DATABASE_URL", "SERVING_DATABASE_URL")


def quiet_port() -> int:
    """A free loopback port below the ephemeral range (32768+)."""
    for port in range(25432, 25532):
        if not services.port_open("127.0.0.1", port):
            return port
    raise AssertionError("no free port in 25432..25531")


@pytest.fixture
def checkout(tmp_path):
    """The repository's code copied to <0700 dir>/movierecs, and the environment to run it."""
    parent = tmp_path / "home"
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)
    repo = parent / "movierecs"
    for part in PARTS:
        shutil.copytree(REPO_ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    port = quiet_port()
    env = {k: v for k, v in os.environ.items() if k not in KNOBS}
    env.update(
        PYTHONPATH=str(repo),
        DATABASE_URL=f"postgresql://recs:recs@127.0.0.1:{port}/recs",
        SERVING_DATABASE_URL=f"postgresql://recs_reader:recs_reader@127.0.0.1:{port}/recs",
    )
    yield repo, env, port
    run(repo, env, "reset")  # a failed test still leaves nothing running or behind


def run(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.services", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def recorded_home(repo: Path) -> Path | None:
    record = repo / ".var" / "postgres.home"
    return Path(record.read_text().strip()) if record.exists() else None


def test_postgres_starts_from_a_checkout_the_server_user_cannot_enter(checkout):
    repo, env, port = checkout
    up = run(repo, env, "up", "postgres")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"postgres   ready on 127.0.0.1:{port}" in up.stdout

    home = recorded_home(repo)
    if os.geteuid() == 0:  # as root the server runs as `postgres`, who cannot enter the copy
        assert home is not None and not home.is_relative_to(repo), home
        assert home.owner() == "postgres" and (home / "data" / "PG_VERSION").exists()
        assert (repo / ".var" / "log" / "postgres.log").resolve() == home / "postgres.log"
    with db.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM serving_pointer")
        assert cur.fetchone() == (1,)
    conn.close()

    status = run(repo, env, "status")
    assert re.search(rf"^postgres +up +127\.0\.0\.1:{port}\b", status.stdout, re.M), status.stdout

    reset = run(repo, env, "reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert not services.port_open("127.0.0.1", port)
    assert not (repo / ".var").exists()
    if home is not None:
        assert not home.exists(), f"reset left {home} behind"
