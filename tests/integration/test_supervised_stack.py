"""The supervised stack heals and tells the truth: a whole second platform (Postgres, Kafka,
the four Airflow processes) on spare ports with its own RECS_VAR_DIR, started and reset
through `python -m ops.services` exactly as `make services-up` / `make reset` do. The
scheduler is killed with SIGKILL and must be back, heartbeating, within 30 s with one restart
counted; a stopped component makes `status` exit non-zero and name it.

The shared services the rest of the suite uses are not touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from contracts.settings import REPO_ROOT
from ops import services, supervise

pytestmark = pytest.mark.integration

KNOBS = (
    "RECS_VAR_DIR",
    "DATABASE_URL",
    "SERVING_DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "AIRFLOW_PORT",
    "SERVING_PORT",
    "METADATA_API_URL",
    "PROMETHEUS_PORT",
    "PUSHGATEWAY_PORT",
    "ALERTMANAGER_PORT",
    "ALERT_RECEIVER_PORT",
)


def spare_port(start: int, span: int = 1) -> int:
    """The first port from `start` with `span` free neighbours, below the ephemeral range."""
    for port in range(start, start + 200, span + 1):
        if not any(services.port_open("127.0.0.1", p) for p in range(port, port + span + 1)):
            return port
    raise AssertionError(f"no free port near {start}")


def run(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.services", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def stack():
    """A second supervised platform; its settings also apply in this process meanwhile."""
    var = Path(tempfile.mkdtemp(prefix="recs-supervised-"))
    var.chmod(0o755)  # the postgres OS user keeps its cluster inside, as in a normal checkout
    pg, kafka, airflow = spare_port(25600), spare_port(29200, span=2), spare_port(28200)
    knobs = {
        "RECS_VAR_DIR": str(var),
        "DATABASE_URL": f"postgresql://recs:recs@127.0.0.1:{pg}/recs",
        "SERVING_DATABASE_URL": f"postgresql://recs_reader:recs_reader@127.0.0.1:{pg}/recs",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "AIRFLOW_PORT": str(airflow),
        "SERVING_PORT": str(spare_port(28300)),
        "METADATA_API_URL": f"http://127.0.0.1:{spare_port(28400)}",
        # the monitoring stack of the second platform (ops/monitoring.py)
        **{
            name: str(spare_port(start))
            for name, start in (
                ("PROMETHEUS_PORT", 28500),
                ("PUSHGATEWAY_PORT", 28600),
                ("ALERTMANAGER_PORT", 28700),
                ("ALERT_RECEIVER_PORT", 28800),
            )
        },
    }
    env = {k: v for k, v in os.environ.items() if k not in KNOBS} | knobs
    with pytest.MonkeyPatch.context() as patch:
        for key, value in knobs.items():
            patch.setenv(key, value)
        try:
            up = run(env, "up")
            assert up.returncode == 0, up.stdout + up.stderr
            yield env, airflow
        finally:
            reset = run(env, "reset", timeout=180)
            assert reset.returncode == 0, reset.stdout + reset.stderr
            assert not supervise.alive()
            assert not any(services.port_open("127.0.0.1", p) for p in (pg, kafka, airflow))


def scheduler_heartbeat(port: int) -> tuple[str | None, float]:
    part = services.airflow_health(port)["scheduler"]
    beat = part.get("latest_scheduler_heartbeat")
    return part["status"], datetime.fromisoformat(beat).timestamp() if beat else 0.0


def test_a_killed_scheduler_is_back_and_heartbeating_within_30_s(stack):
    env, port = stack
    status = run(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert supervise.restarts().get("airflow-scheduler", 0) == 0

    killed_at = time.time()
    old = supervise.kill("airflow-scheduler")

    def back() -> bool:
        new = supervise.pid("airflow-scheduler")
        state, beat = scheduler_heartbeat(port)
        return new not in (None, old) and state == "healthy" and beat > killed_at

    services.wait_until(back, 30, "scheduler restarted and heartbeating", None, interval=0.5)
    print(f"\nscheduler back and heartbeating {time.time() - killed_at:.1f} s after SIGKILL")
    assert supervise.restarts()["airflow-scheduler"] == 1
    restarts_log = Path(env["RECS_VAR_DIR"]) / "log" / "restarts.log"
    assert "restart airflow-scheduler (from EXITED" in restarts_log.read_text()
    # The killed scheduler's LocalExecutor workers do not outlive it (its group is reaped).
    services.wait_until(lambda: not group_members(old), 10, "the old group reaped", None)
    assert f"(pid {old}) left running" in restarts_log.read_text()


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid` (zombies awaiting their reaper excluded)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def test_status_names_a_stopped_component_and_exits_non_zero(stack):
    env, _ = stack
    prom = Path(env["RECS_VAR_DIR"]) / "metrics" / "check.prom"
    assert supervise.stop("airflow-triggerer")
    try:
        status = run(env, "status", "--prom", str(prom))
        assert status.returncode == 3, status.stdout + status.stderr
        assert "unhealthy: airflow-triggerer since " in status.stdout, status.stdout
        assert "stopped by an operator" in status.stdout
        assert re.search(r"^airflow +down", status.stdout, re.M), status.stdout
        assert re.search(r"^postgres +up", status.stdout, re.M), status.stdout
        text = prom.read_text()
        assert 'recs_service_up{service="airflow-triggerer"} 0' in text
        assert 'recs_service_up{service="postgres"} 1' in text
    finally:
        assert supervise.start("airflow-triggerer")
    assert supervise.restarts().get("airflow-triggerer", 0) == 0  # an operator's start
