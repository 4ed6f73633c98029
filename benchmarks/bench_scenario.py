"""The scale run as a benchmark: `make scenario` on a private stack beside the platform.

Run: `python -m benchmarks.bench_scenario [--days 1] [--family item_knn]` (part of `make bench`;
about 40 minutes on 2 cores). Postgres, Kafka and Airflow start under their own state
directory (.var/bench-scenario) on ports shifted by PORT_SHIFT, so the platform's own topic,
lake and published tables are never touched; the stack is deleted afterwards. Prints the
per-stage table of ops/scenario.py (wall time, peak RSS, rows in and out) and the verdict
against the targets; docs/scale.md holds the measured table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

from contracts import settings as settings_mod

PORT_SHIFT = 1_000
STACK = ("postgres", "kafka", "airflow")


def shifted(url: str) -> str:
    """`url` with its port moved by PORT_SHIFT."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    moved = parts._replace(
        netloc=parts.netloc.replace(f":{parts.port}", f":{parts.port + PORT_SHIFT}")
    )
    return moved.geturl().removeprefix("//")


def private_env() -> dict[str, str]:
    """The platform's settings with another state directory and every port shifted."""
    cfg = settings_mod.load()
    return {
        **os.environ,
        "RECS_VAR_DIR": str(cfg.var_dir / "bench-scenario"),
        "KAFKA_BOOTSTRAP_SERVERS": shifted(cfg.kafka_bootstrap_servers),
        "KAFKA_CONTROLLER_PORT": str(settings_mod.kafka_controller_port() + PORT_SHIFT),
        "DATABASE_URL": shifted(cfg.database_url),
        "SERVING_DATABASE_URL": shifted(cfg.serving_database_url),
        "AIRFLOW_PORT": str(cfg.airflow_port + PORT_SHIFT),
        "PUSHGATEWAY_URL": "http://127.0.0.1:9",  # no monitoring on the private stack
    }


def run_module(env: dict[str, str], *argv: str) -> int:
    """`python -m ops.<argv>` in the private environment."""
    return subprocess.run([sys.executable, "-m", *argv], env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--family", default="item_knn")
    args = parser.parse_args(argv)
    env = private_env()
    shutil.rmtree(env["RECS_VAR_DIR"], ignore_errors=True)
    try:
        if run_module(env, "ops.services", "up", *STACK) != 0:
            return 1
        return run_module(env, "ops.scenario", "--days", str(args.days), "--family", args.family)
    finally:
        run_module(env, "ops.services", "down", *STACK)
        shutil.rmtree(env["RECS_VAR_DIR"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
