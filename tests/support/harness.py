"""Test and benchmark harness: private Postgres clusters that may be stopped, a real gunicorn
serving process on a free port, and `wait_for`, the one poller the tests use.

The shared platform Postgres is never stopped; anything that needs an outage, or its own
serving_pointer, gets a throwaway cluster here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from contracts import settings as settings_mod

OWNER = ("recs", "recs")
READER = ("recs_reader", "recs_reader")
DATABASE = "recs"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, deadline_s: float, what: str, interval: float = 0.05):
    """Poll `check()` until truthy (return it) or raise naming `what` (ops' poller, finer)."""
    from ops.services import wait_until

    return wait_until(check, deadline_s, what, None, interval)


@dataclass
class PrivateDatabase:
    """A throwaway Postgres cluster with the platform's roles, database and schema."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="recs-pg-")))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        from ops.services import PostgresCluster

        self.cluster = PostgresCluster(
            data_dir=self.base / "data", port=self.port, log=self.base / "postgres.log"
        )

    @property
    def owner_url(self) -> str:
        return self.cluster.url(*OWNER, DATABASE)

    @property
    def reader_url(self) -> str:
        return self.cluster.url(*READER, DATABASE)

    def create(self) -> PrivateDatabase:
        """initdb, start, create roles and database, apply sql/schema."""
        from contracts import db

        self.cluster.start()
        psql = self.cluster.psql
        for user, password in (OWNER, READER):
            psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        psql(f"CREATE DATABASE {DATABASE} OWNER {OWNER[0]}")
        psql(
            f"GRANT CONNECT ON DATABASE {DATABASE} TO {READER[0]};"
            f"GRANT USAGE ON SCHEMA public TO {READER[0]};"
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER[0]} IN SCHEMA public "
            f"GRANT SELECT ON TABLES TO {READER[0]};",
            database=DATABASE,
        )
        db.apply_schema(self.owner_url)
        return self

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()

    def destroy(self) -> None:
        """Stop the cluster and delete its files."""
        try:
            self.cluster.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class ServingProcess:
    """`python -m serving` (gunicorn with the committed config) on a free port."""

    reader_url: str
    workers: int = 2
    port: int = field(default_factory=free_port)
    var_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="recs-serve-")))
    extra_env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    def start(self, deadline_s: float = 30) -> ServingProcess:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(settings_mod.REPO_ROOT),
            SERVING_PORT=str(self.port),
            SERVING_DATABASE_URL=self.reader_url,
            SERVING_WORKERS=str(self.workers),
            RECS_VAR_DIR=str(self.var_dir),
            PROMETHEUS_MULTIPROC_DIR=str(self.var_dir / "metrics"),
            **self.extra_env,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "gunicorn.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serving"],
                cwd=settings_mod.REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._healthy, deadline_s, f"gunicorn on :{self.port}", interval=0.1)
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.log_dir / "gunicorn.log").read_text()[-2000:]
            raise RuntimeError(f"gunicorn exited with {self.proc.returncode}: {log}")
        with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as resp:
            return resp.status == 200

    def stop(self) -> None:
        """SIGTERM the gunicorn master's process group; SIGKILL it if it lingers."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None
        shutil.rmtree(self.var_dir, ignore_errors=True)


def items_for(user_id: int, salt: str, k: int = 20, n_movies: int = 500) -> list[str]:
    """A deterministic list of k distinct movie ids for one user of a seeded version."""
    start = (user_id * 7 + sum(map(ord, salt))) % n_movies
    return [f"{salt}-m{(start + j) % n_movies}" for j in range(k)]


def seed_version(
    owner_url: str, reco_version: str, model_version: str, users, publish_it: bool = True
) -> dict[int, str]:
    """Load, audit (and publish) a small version; return the served text per user."""
    from jobs.publish import publish

    users = list(users)
    rows = [(u, items_for(u, reco_version)) for u in users]
    publish.load_recommendations(rows, reco_version, model_version, owner_url)
    publish.audit(reco_version, expected_users=len(users), url=owner_url)
    if publish_it:
        publish.publish(reco_version, owner_url)
    return {u: ",".join(items) for u, items in rows}


class Client:
    """One keep-alive HTTP/1.1 connection (a thread's own): get(path) → (status, headers, body)."""

    def __init__(self, base_url: str, timeout: float = 5) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self._factory = lambda: http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=timeout
        )
        self._conn = self._factory()
        self.reconnects = 0  # requests re-sent because the server had closed the connection

    def get(self, path: str, method: str = "GET") -> tuple[int, dict, str]:
        for attempt in (1, 2):
            try:
                self._conn.request(method, path)
                resp = self._conn.getresponse()
                body = resp.read().decode("utf-8", "replace")
                return resp.status, dict(resp.getheaders()), body
            except (ConnectionError, OSError) as exc:
                # A server may close an idle keep-alive connection; retry once on a new one.
                self._conn.close()
                self._conn = self._factory()
                if attempt == 2:
                    raise exc
                self.reconnects += 1

    def close(self) -> None:
        self._conn.close()
