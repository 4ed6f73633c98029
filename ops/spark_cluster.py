"""A Spark standalone cluster on loopback: one master and SPARK_WORKER_INSTANCES workers.

`python -m ops.spark_cluster up|down|status`. The daemons are the pyspark distribution's own
(`bin/spark-class org.apache.spark.deploy.master.Master` / `...deploy.worker.Worker`), each a
detached process with a pid file under .var/run/ and a log in .var/log/ (spark-master.log,
spark-worker-<n>.log). The master listens on 127.0.0.1:SPARK_MASTER_PORT (7077), its web UI
and JSON state on SPARK_MASTER_UI_PORT (8070); each worker offers SPARK_WORKER_CORES (1) and
SPARK_WORKER_MEMORY (2g), keeping executor work dirs (logs, shipped code) and shuffle files
under .var/spark-cluster/worker-<n>/. Jobs use it with SPARK_MASTER_URL=spark://127.0.0.1:7077
(jobs/spark.py ships the project's code to the executors).

`up` waits, with a deadline, until the master's JSON shows every worker ALIVE, and starting
twice is a no-op; `down` stops the workers, then the master. The workers' environment has no
PYTHONPATH: executors import the project only from the code jobs/spark.py ships, as on a node
that has the venv but not the checkout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contracts import settings as settings_mod
from ops import services

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HOST = "127.0.0.1"
DAEMON_MEMORY = "512m"  # heap of the master and worker JVMs themselves (Spark's default: 1g)
APP_DATA_TTL_S = 7 * 24 * 3600  # a finished application's work dir (executor logs) is kept a week
START_DEADLINE_S = 90


class ClusterError(services.ServiceError):
    """The cluster could not be started or stopped; the message names the daemon and its log."""


@dataclass(frozen=True)
class Daemon:
    """One master or worker JVM: its pid-file name, main class, arguments and log."""

    name: str
    main_class: str
    args: tuple[str, ...]
    log: Path

    def argv(self) -> list[str]:
        return [str(spark_home() / "bin" / "spark-class"), self.main_class, *self.args]


def spark_home() -> Path:
    """The pyspark distribution of this venv (its bin/, jars/ and sbin/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ClusterError("pyspark is not installed in this Python")
    return Path(spec.origin).parent


def home() -> Path:
    """Where the workers keep their work and local dirs (.var/spark-cluster)."""
    return settings_mod.load().var_dir / "spark-cluster"


def master_url() -> str:
    """The URL jobs set as SPARK_MASTER_URL to run on this cluster."""
    return f"spark://{HOST}:{settings_mod.load().spark_master_port}"


def ui_url() -> str:
    """The master's web UI (its JSON state at /json/)."""
    return f"http://{HOST}:{settings_mod.load().spark_master_ui_port}"


def master() -> Daemon:
    cfg = settings_mod.load()
    args = ("--host", HOST, "--port", str(cfg.spark_master_port))
    return Daemon(
        "spark-master",
        MASTER_CLASS,
        (*args, "--webui-port", str(cfg.spark_master_ui_port)),
        cfg.log_dir / "spark-master.log",
    )


def worker_dir(n: int) -> Path:
    """Worker n's directory: work/ (one app-*/<executor>/ per application) and local/."""
    return home() / f"worker-{n}"


def worker(n: int) -> Daemon:
    """Worker n (from 1): its RPC and web UI ports are ephemeral, as it registers by address."""
    resources = ("--cores", str(settings_mod.spark_worker_cores()))
    resources += ("--memory", settings_mod.spark_worker_memory())
    where = ("--host", HOST, "--port", "0", "--webui-port", "0")
    work = ("--work-dir", str(worker_dir(n) / "work"))
    return Daemon(
        f"spark-worker-{n}",
        WORKER_CLASS,
        (*where, *resources, *work, master_url()),
        settings_mod.load().log_dir / f"spark-worker-{n}.log",
    )


def worker_numbers() -> range:
    return range(1, settings_mod.spark_worker_instances() + 1)


def workers() -> list[Daemon]:
    return [worker(n) for n in worker_numbers()]


def daemon_env(local_dir: Path | None = None) -> dict[str, str]:
    """The caller's environment without PYTHONPATH (see the module docstring), on loopback."""
    env = settings_mod.passthrough_env()
    env.pop("PYTHONPATH", None)
    env.update(SPARK_LOCAL_IP=HOST, SPARK_DAEMON_MEMORY=DAEMON_MEMORY)
    if local_dir is not None:
        env["SPARK_LOCAL_DIRS"] = str(local_dir)  # executors' shuffle and spill files
        cleanup = f"-Dspark.worker.cleanup.appDataTtl={APP_DATA_TTL_S}"
        env["SPARK_WORKER_OPTS"] = f"-Dspark.worker.cleanup.enabled=true {cleanup}"
    return env


# ---------------------------------------------------------------------------- processes
def running_pid(daemon: Daemon) -> int | None:
    """The daemon's pid when its pid file names a live process running its main class (a pid
    reused by some other program after a reboot is never ours to stop)."""
    pid = services.read_pid(daemon.name)
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if daemon.main_class.encode() in cmdline else None


def start(daemon: Daemon, env: dict[str, str]) -> None:
    """Start the daemon detached, in its own session (so its process group can be stopped)."""
    daemon.log.parent.mkdir(parents=True, exist_ok=True)
    with daemon.log.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - argv from settings, no shell
            daemon.argv(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home(),
            start_new_session=True,
        )
    services.write_pid(daemon.name, proc.pid)


def master_state(timeout: float = 2.0) -> dict:
    """The master's JSON state: workers, alive workers, active and completed applications."""
    with urllib.request.urlopen(f"{ui_url()}/json/", timeout=timeout) as resp:  # noqa: S310
        return json.loads(resp.read())


def alive_workers(state: dict) -> list[dict]:
    return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


def registered(expected: int) -> bool:
    """True when the master answers and at least `expected` workers are ALIVE."""
    return len(alive_workers(master_state())) >= expected


def check_ports_free() -> None:
    """Refuse to start a master where another process holds its ports."""
    cfg = settings_mod.load()
    for port in (cfg.spark_master_port, cfg.spark_master_ui_port):
        if services.port_open(HOST, port):
            raise ClusterError(f"spark-master: port {port} is taken by a process we did not start")


# ---------------------------------------------------------------------------- commands
def say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def up(quiet: bool = False) -> bool:
    """Start the master and the missing workers; wait until every worker is registered.
    Returns False when everything was already running."""
    home().mkdir(parents=True, exist_ok=True)
    started = False
    boss = master()
    if running_pid(boss) is None:
        check_ports_free()
        start(boss, daemon_env())
        started = True
    services.wait_until(master_state, START_DEADLINE_S, "spark-master", boss.log)
    for n in worker_numbers():
        if running_pid(worker(n)) is None:
            local = worker_dir(n) / "local"
            local.mkdir(parents=True, exist_ok=True)
            start(worker(n), daemon_env(local))
            started = True
    count = len(worker_numbers())
    logs = settings_mod.load().log_dir / "spark-worker-*.log"
    services.wait_until(lambda: registered(count), START_DEADLINE_S, "spark workers", logs)
    state = "ready" if started else "already running"
    say(f"spark      {state}: {master_url()} with {count} workers, UI {ui_url()}", quiet)
    return started


def down(quiet: bool = False) -> bool:
    """Stop the workers, then the master; returns whether anything was running."""
    stopped = False
    for daemon in [*workers(), master()]:
        pid = running_pid(daemon)
        if pid is not None:
            services.stop_group(daemon.name, pid, grace_s=30)
            stopped = True
    say("spark      stopped" if stopped else "spark      not running", quiet)
    return stopped


def status() -> dict:
    """Running daemons, the master's URL and UI, its alive workers and applications."""
    report = {
        "master_url": master_url(),
        "ui": ui_url(),
        "daemons": {d.name: running_pid(d) for d in [master(), *workers()]},
    }
    try:
        state = master_state()
    except OSError as exc:
        return {**report, "running": False, "error": str(exc)}
    return {
        **report,
        "running": len(alive_workers(state)) >= settings_mod.spark_worker_instances(),
        "workers": [
            {k: w.get(k) for k in ("id", "host", "port", "cores", "memory", "state")}
            for w in state.get("workers", [])
        ],
        "active_apps": [a["id"] for a in state.get("activeapps", [])],
        "completed_apps": [a["id"] for a in state.get("completedapps", [])],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.spark_cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        else:
            report = status()
            print(json.dumps(report, indent=2))
            return 0 if report["running"] else 3
    except services.ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
