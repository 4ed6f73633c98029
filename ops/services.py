"""Start, stop and inspect the embedded local services: PostgreSQL 15, Kafka (KRaft), Airflow 3.

`python -m ops.services up|down|status|reset [names…]`. Each long-running process runs under
supervisord (ops/supervise.py), which restarts it with back-off when it exits and counts the
restarts. Every start waits for readiness with a deadline and fails naming the service and
its log file (a failed external tool: its own last lines of output); starting twice is a
no-op; stopping leaves nothing running. `status` reads each service's own health signal
(ops/supervision_health.py) and exits non-zero when anything is unhealthy. State lives under
.var/, downloads under .cache/. Spark needs no daemon: jobs run in `local[2]` unless
SPARK_MASTER_URL names a cluster (ops/spark_cluster.py starts a standalone one).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from contracts import settings as settings_mod
from contracts.kafka import create_topic
from ops import supervise, supervision_health

ALL = ("postgres", "kafka", "airflow", "monitoring")
APPS = ("metadata-api", "serving", "traffic", "reports")  # what `make run` adds (ops/run.py)
AIRFLOW_PROGRAMS = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
# ops/monitoring.py: Prometheus, the Pushgateway, Alertmanager and the webhook receiver
MONITORING_PROGRAMS = ("prometheus", "pushgateway", "alertmanager", "alert-receiver")
# status rows: a service and the supervised programs it is made of
PROGRAMS = {
    "postgres": ("postgres",),
    "kafka": ("kafka",),
    "airflow": AIRFLOW_PROGRAMS,
    "monitoring": MONITORING_PROGRAMS,
    "serving": ("serving",),
    "metadata": ("metadata-api",),
    "traffic": ("traffic",),
    "reports": ("reports",),
}
PG_BIN = settings_mod.pg_bin()
REPO = settings_mod.REPO_ROOT


class ServiceError(RuntimeError):
    """A service failed to start or stop; the message names it and its log file."""


class ToolError(ServiceError):
    """An external tool (initdb, pg_ctl, StorageTool, airflow db migrate…) exited non-zero;
    the message holds the command and the tool's own last lines of output."""

    def __init__(self, argv: list[str], returncode: int, output: str, tail: int = 20):
        self.argv, self.returncode, self.output = argv, returncode, output
        # Java stack frames say where, not what: the exception's own line is kept instead.
        lines = [ln for ln in output.strip().splitlines() if not ln.startswith(("\tat ", "\t..."))]
        last = "\n".join(f"  | {line}" for line in lines[-tail:])
        command = " ".join(argv)
        super().__init__(f"{Path(argv[0]).name} exited {returncode}: {command}\n{last or '  | -'}")


def run_tool(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run an external tool, capturing its output; a non-zero exit raises ToolError with the
    tool's last lines (never a bare CalledProcessError)."""
    result = subprocess.run(argv, check=False, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise ToolError(argv, result.returncode, (result.stdout or "") + (result.stderr or ""))
    return result


# ---------------------------------------------------------------------------- helpers
def _cfg() -> settings_mod.Settings:
    return settings_mod.load()


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check, deadline_s: float, what: str, log: Path | None, interval: float = 0.5):
    """Poll `check()` until it is truthy or the deadline passes (then raise naming the log)."""
    end = time.monotonic() + deadline_s
    last_exc: Exception | None = None
    while time.monotonic() < end:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - readiness probes fail in many ways while starting
            last_exc = exc
        time.sleep(interval)
    hint = f"; see its log: {log}" if log else ""
    detail = f" (last error: {last_exc})" if last_exc else ""
    raise ServiceError(f"{what} not ready after {deadline_s:.0f} s{detail}{hint}")


def _pid_file(name: str) -> Path:
    return _cfg().var_dir / "run" / f"{name}.pid"


def read_pid(name: str) -> int | None:
    path = _pid_file(name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def write_pid(name: str, pid: int) -> None:
    """Record a detached process's pid where read_pid and stop_group look for it."""
    path = _pid_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def stop_group(name: str, pid: int, grace_s: float = 30) -> None:
    """SIGTERM the process group, then SIGKILL what is left after the grace period (for
    processes an older version started detached with a pid file, before supervision)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        # A child of ours that has exited stays a zombie, still in its group, until reaped.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # Reap if it is our child (a detached daemon started by this process, ops/spark_cluster.py).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    _pid_file(name).unlink(missing_ok=True)


def _url_parts(url: str) -> tuple[str, str, str, int, str]:
    """(user, password, host, port, database) of a postgresql:// URL."""
    parts = urlsplit(url.replace("postgresql+psycopg2://", "postgresql://"))
    return (
        parts.username or "",
        parts.password or "",
        parts.hostname or "127.0.0.1",
        parts.port or 5432,
        parts.path.lstrip("/"),
    )


# ---------------------------------------------------------------------------- Postgres
def ensure_postgres_binaries() -> None:
    """Install the PostgreSQL 15 server from Debian where its binaries (PG_BIN) are missing."""
    if (PG_BIN / "initdb").exists():
        return
    if os.geteuid() != 0:
        raise ServiceError(f"{PG_BIN}/initdb is missing; install postgresql-15 (needs root)")
    print("installing PostgreSQL 15 from Debian (apt-get) …", flush=True)
    conf = Path("/etc/postgresql-common/createcluster.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.exists():
        conf.write_text("create_main_cluster = false\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_tool(["apt-get", "update", "-q"], env=env)
    run_tool(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql-15"], env=env
    )


@dataclass
class PostgresCluster:
    """One PostgreSQL cluster in its own data directory, on loopback at `port`.

    As root, initdb/pg_ctl run as the `postgres` OS user (initdb refuses root). Used for the
    platform's database and, in tests, for private throwaway clusters that may be stopped.
    """

    data_dir: Path
    port: int
    log: Path

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "run"

    @property
    def os_user(self) -> str:
        return "postgres" if os.geteuid() == 0 else getpass.getuser()

    def _as_owner(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # cwd "/": the caller's directory may be one the server's OS user cannot enter.
        return run_tool(argv, cwd="/", **kw)

    def _prepare_dirs(self) -> None:
        for path in (self.data_dir.parent, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if os.geteuid() == 0:
            for path in (self.data_dir.parent, self.socket_dir, self.log):
                shutil.chown(path, "postgres", "postgres")
            probe = subprocess.run(
                ["runuser", "-u", "postgres", "--", "test", "-w", str(self.data_dir.parent)],
                check=False,
            )
            if probe.returncode != 0:
                raise ServiceError(
                    f"postgres: the OS user `postgres` cannot write {self.data_dir.parent}; "
                    "put the repository (or RECS_VAR_DIR) on a path it can traverse"
                )

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb with loopback password auth for TCP and peer/trust for the socket."""
        ensure_postgres_binaries()
        self._prepare_dirs()
        if self.initialised():
            return
        self._as_owner(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.os_user,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )

    def running(self) -> bool:
        if not self.initialised():
            return False
        try:
            self._as_owner([str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data_dir)])
        except ToolError:
            return False
        return True

    def start(self, deadline_s: float = 60) -> bool:
        """Start (initdb first if needed); False when it was already running."""
        self.init()
        if self.running():
            return False
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"postgres: port {self.port} is taken by another process")
        try:
            self._as_owner(
                [
                    str(PG_BIN / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log),
                    "-o",
                    " ".join(self.server_options()),
                    "-w",
                    "-t",
                    str(int(deadline_s)),
                ]
            )
        except ToolError as exc:
            raise ServiceError(
                f"postgres failed to start ({exc}); see its log: {self.log}"
            ) from exc
        wait_until(lambda: port_open("127.0.0.1", self.port), deadline_s, "postgres", self.log)
        return True

    def server_options(self) -> list[str]:
        """Options of the server process (pg_ctl -o, or `postgres` in the foreground)."""
        return [
            *("-p", str(self.port), "-k", str(self.socket_dir)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"),
            *("-c", "shared_buffers=512MB", "-c", "synchronous_commit=off"),
            *("-c", "max_wal_size=4GB", "-c", "checkpoint_timeout=15min"),
        ]

    def foreground_argv(self) -> list[str]:
        """`postgres -D …` in the foreground, for a supervisor (run as `os_user`)."""
        return [str(PG_BIN / "postgres"), "-D", str(self.data_dir), *self.server_options()]

    def stop(self) -> bool:
        if not self.running():
            return False
        self._as_owner(
            [str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        )
        return True

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the cluster's superuser over the Unix socket; return stdout."""
        result = self._as_owner(
            [
                str(PG_BIN / "psql"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                self.os_user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ]
        )
        return result.stdout.strip()

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ensure_role(cluster: PostgresCluster, user: str, password: str) -> None:
    # psql over the superuser's socket takes no bind parameters: names come from settings,
    # quoted as literals.
    exists = cluster.psql(f"SELECT 1 FROM pg_roles WHERE rolname = {_quote_literal(user)}")  # noqa: S608
    verb = "ALTER" if exists == "1" else "CREATE"
    cluster.psql(f'{verb} ROLE "{user}" LOGIN PASSWORD {_quote_literal(password)}')


def _ensure_database(cluster: PostgresCluster, name: str, owner: str) -> None:
    exists = cluster.psql(f"SELECT 1 FROM pg_database WHERE datname = {_quote_literal(name)}")  # noqa: S608
    if exists != "1":
        cluster.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"')


def _postgres_record() -> Path:
    """The file naming where this checkout's cluster lives when it is outside .var/."""
    return _cfg().var_dir / "postgres.home"


def _server_user_reaches(path: Path) -> bool:
    """True when the server's OS user can traverse to `path` (its nearest existing ancestor)."""
    if os.geteuid() != 0:
        return True  # the server runs as the invoking user
    while not path.exists():
        path = path.parent
    probe = ["runuser", "-u", "postgres", "--", "test", "-x", str(path)]
    return subprocess.run(probe, check=False, cwd="/").returncode == 0


def postgres_home() -> Path:
    """Directory of the platform cluster (data, socket, log).

    `.var/postgres` when the server's OS user can reach it; otherwise (a checkout under a
    0700 home, say) a directory of its own under RECS_POSTGRES_HOMES, named by a hash of this
    checkout's .var/ and recorded in .var/postgres.home so status, stop and reset find it.
    """
    cfg = _cfg()
    record = _postgres_record()
    if record.exists():
        return Path(record.read_text().strip())
    local = cfg.var_dir / "postgres"
    if (local / "data" / "PG_VERSION").exists() or _server_user_reaches(cfg.var_dir):
        return local
    digest = hashlib.sha256(str(cfg.var_dir.resolve()).encode()).hexdigest()[:16]
    return settings_mod.postgres_homes_dir() / digest


def platform_postgres() -> PostgresCluster:
    """The embedded platform cluster, on the port of DATABASE_URL."""
    cfg = _cfg()
    _, _, _, port, _ = _url_parts(cfg.database_url)
    home = postgres_home()
    inside = home == cfg.var_dir / "postgres"
    log = cfg.log_dir / "postgres.log" if inside else home / "postgres.log"
    return PostgresCluster(data_dir=home / "data", port=port, log=log)


def _record_postgres_home(cluster: PostgresCluster) -> None:
    """Remember an outside cluster in .var/postgres.home, its log linked from .var/log."""
    cfg = _cfg()
    home = cluster.data_dir.parent
    if home == cfg.var_dir / "postgres":
        return
    record = _postgres_record()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{home}\n")
    link = cfg.log_dir / "postgres.log"
    if not link.exists() and not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(cluster.log)


def _bootstrap_postgres(cluster: PostgresCluster) -> None:
    """Roles and databases named by DATABASE_URL / SERVING_DATABASE_URL, plus `airflow`."""
    cfg = _cfg()
    owner, owner_pw, _, _, database = _url_parts(cfg.database_url)
    reader, reader_pw, _, _, _ = _url_parts(cfg.serving_database_url)
    _ensure_role(cluster, owner, owner_pw)
    _ensure_role(cluster, reader, reader_pw)
    _ensure_database(cluster, database, owner)
    _ensure_database(cluster, "airflow", owner)
    # The server's role reads whatever the owner creates, now and later; it can write nothing.
    cluster.psql(
        f'GRANT CONNECT ON DATABASE "{database}" TO "{reader}";'
        f'GRANT USAGE ON SCHEMA public TO "{reader}";'
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public '
        f'GRANT SELECT ON TABLES TO "{reader}";'
        f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{reader}";',
        database=database,
    )


# ---------------------------------------------------------------------------- supervision
def supervisor_env() -> dict[str, str]:
    """Environment of supervisord and so of every program it starts: the caller's, plus the
    runtime environment (AIRFLOW_HOME, PYTHONPATH, the venv first on PATH…)."""
    return {**settings_mod.passthrough_env(), **runtime_env()}


def supervised(programs: list[supervise.Program]) -> None:
    """Write the programs' configuration and make supervisord run with it (started if
    needed; new or changed programs that are stopped are (re)loaded)."""
    if not supervise.alive():
        supervise.clear_programs()
    supervise.write_config(programs)
    try:
        if not supervise.ensure_running(supervisor_env()):
            supervise.update()
    except supervise.SupervisorError as exc:
        raise ServiceError(str(exc)) from exc


def start_program(name: str, wait: bool = True) -> bool:
    """Start one supervised program; a start that fails names the program and its log tail."""
    try:
        return supervise.start(name, wait)
    except supervise.SupervisorError as exc:
        raise ServiceError(str(exc)) from exc


def _retire_unsupervised(name: str) -> None:
    """Stop a process an older version started with a pid file (before supervision)."""
    pid = read_pid(name)
    if pid is not None:
        stop_group(name, pid, grace_s=30)


# ---------------------------------------------------------------------------- Postgres (supervised)
def postgres_program(cluster: PostgresCluster) -> supervise.Program:
    """The platform Postgres in the foreground as the server's OS user; SIGINT = fast stop."""
    root = os.geteuid() == 0
    return supervise.Program(
        name="postgres",
        argv=cluster.foreground_argv(),
        log=cluster.log,
        user="postgres" if root else None,
        directory=Path("/"),
        startsecs=3,
        stopsignal="INT",
        stopwaitsecs=60,
        priority=10,
    )


def postgres_answers(cluster: PostgresCluster) -> bool:
    """`SELECT 1` over the server's unix socket as its superuser."""
    try:
        return cluster.psql("SELECT 1") == "1"
    except ToolError:
        return False


def start_postgres(quiet: bool = False) -> bool:
    ensure_postgres_binaries()
    cluster = platform_postgres()
    _record_postgres_home(cluster)
    cluster.init()
    if cluster.running() and not supervise.running("postgres"):
        cluster.stop()  # started by pg_ctl (before supervision): hand it to supervisord
    supervised([postgres_program(cluster)])
    if not supervise.running("postgres") and port_open("127.0.0.1", cluster.port):
        raise ServiceError(f"postgres: port {cluster.port} is taken by another process")
    started = start_program("postgres")
    wait_until(lambda: postgres_answers(cluster), 60, "postgres", cluster.log)
    _bootstrap_postgres(cluster)
    from contracts import db

    db.apply_schema()
    _say(f"postgres   ready on 127.0.0.1:{cluster.port} (log: {cluster.log})", quiet)
    return started


def stop_postgres(quiet: bool = False) -> bool:
    stopped = supervise.stop("postgres")
    cluster = platform_postgres()
    if cluster.initialised() and cluster.running():
        stopped = cluster.stop() or stopped  # one started by pg_ctl, outside supervision
    _say("postgres   stopped" if stopped else "postgres   not running", quiet)
    return stopped


# ---------------------------------------------------------------------------- Kafka
def kafka_libs() -> Path:
    return _cfg().cache_dir / "kafka" / "libs"


def fetch_kafka_jars() -> Path:
    """Download the broker jars with Maven from ops/kafka/pom.xml into .cache/kafka/libs."""
    libs = kafka_libs()
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    cache = _cfg().cache_dir
    tmp = libs.with_name("libs.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run_tool(
        [
            "mvn",
            "-q",
            "-B",
            f"-Dmaven.repo.local={cache / 'm2'}",
            "-f",
            str(REPO / "ops" / "kafka" / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
    )
    tmp.rename(libs)
    return libs


def _kafka_host_port() -> tuple[str, int]:
    first = _cfg().kafka_bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def _kafka_properties(data_dir: Path, port: int) -> str:
    controller_port = settings_mod.kafka_controller_port()
    return "\n".join(
        [
            "# Generated by ops/services.py: single-node KRaft broker+controller on loopback.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data_dir}",
            "num.partitions=3",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "share.coordinator.state.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # The lake is built from offsets: keep every event (a replayed 1998 log included).
            "log.retention.ms=-1",
            "log.retention.bytes=-1",
            "message.max.bytes=10485760",
            "",
        ]
    )


def kafka_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not port_open(host or "127.0.0.1", int(port)):
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    md = admin.list_topics(timeout=timeout)
    return bool(md.brokers)


def kafka_cluster_id() -> str:
    """A random KRaft cluster id, never starting with "-" (the storage tool would read it as
    an option; Kafka's own Uuid.randomUuid() skips those ids for the same reason)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def format_kafka_storage(props: Path, cluster_id: str) -> None:
    """`kafka-storage format` for a new log dir. `--cluster-id=<id>` keeps an id that starts
    with "-" from being read as an option; a failure shows the tool's own output."""
    java = ["java", "-cp", f"{kafka_libs()}/*", "kafka.tools.StorageTool"]
    run_tool([*java, "format", f"--cluster-id={cluster_id}", "-c", str(props)])


def kafka_program(props: Path, log: Path) -> supervise.Program:
    """The broker's JVM in the foreground."""
    argv = [
        "java",
        *settings_mod.kafka_heap_opts().split(),
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={REPO / 'ops' / 'kafka' / 'log4j2.properties'}",
        "-cp",
        f"{kafka_libs()}/*",
        "kafka.Kafka",
        str(props),
    ]
    return supervise.Program(name="kafka", argv=argv, log=log, startsecs=5, priority=20)


def _kafka_layout() -> tuple[Path, Path]:
    """(data dir, server.properties), the properties written from settings."""
    home = _cfg().var_dir / "kafka"
    data, props = home / "data", home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    props.write_text(_kafka_properties(data, _kafka_host_port()[1]))
    return data, props


def start_kafka(quiet: bool = False) -> bool:
    cfg = _cfg()
    log = cfg.log_dir / "kafka.log"
    host, port = _kafka_host_port()
    _retire_unsupervised("kafka")
    if not supervise.running("kafka") and port_open(host, port):
        raise ServiceError(f"kafka: port {port} is taken by a process we did not start")
    fetch_kafka_jars()
    data, props = _kafka_layout()
    if not (data / "meta.properties").exists():
        format_kafka_storage(props, kafka_cluster_id())
    supervised([kafka_program(props, log)])
    started = start_program("kafka")
    wait_until(lambda: kafka_ready(cfg.kafka_bootstrap_servers), 90, "kafka", log)
    create_topic(cfg.kafka_bootstrap_servers, cfg.kafka_topic, cfg.kafka_partitions)
    state = "ready" if started else "already running"
    _say(
        f"kafka      {state} on {host}:{port}, topic {cfg.kafka_topic} "
        f"({cfg.kafka_partitions} partitions) (log: {log})",
        quiet,
    )
    return started


def stop_kafka(quiet: bool = False) -> bool:
    stopped = supervise.stop("kafka")
    pid = read_pid("kafka")
    if pid:
        stop_group("kafka", pid, grace_s=30)
        stopped = True
    _say("kafka      stopped" if stopped else "kafka      not running", quiet)
    return stopped


# ---------------------------------------------------------------------------- Airflow
def _secret(name: str) -> str:
    """A random local secret kept under .var/secrets (never in the repository)."""
    path = _cfg().var_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def runtime_env() -> dict[str, str]:
    """Environment shared by Airflow, its tasks and the tests (Makefile exports the same)."""
    cfg = _cfg()
    owner, owner_pw, host, port, _ = _url_parts(cfg.database_url)
    airflow_db = f"postgresql+psycopg2://{owner}:{owner_pw}@{host}:{port}/airflow"
    env = {
        "AIRFLOW_HOME": str(cfg.var_dir / "airflow"),
        "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        "AIRFLOW__API__PORT": str(cfg.airflow_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
            f"http://127.0.0.1:{cfg.airflow_port}/execution/"
        ),
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The embedded stack's own Pushgateway, whatever PUSHGATEWAY_URL the caller has (the
        # test session points its own process's pushes at nothing, not the services').
        "PUSHGATEWAY_URL": f"http://127.0.0.1:{cfg.pushgateway_port}",
        "PYTHONPATH": str(REPO),
        # Airflow components spawn `airflow …` by name: the venv's bin must come first.
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    if os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET") is None:
        env["AIRFLOW__API_AUTH__JWT_SECRET"] = _secret("airflow_jwt")
    if os.environ.get("AIRFLOW__API__SECRET_KEY") is None:
        env["AIRFLOW__API__SECRET_KEY"] = _secret("airflow_api")
    return env


def _airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow_health(port: int) -> dict:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3
    ) as resp:
        return json.loads(resp.read())


def _airflow_healthy(port: int) -> bool:
    health = airflow_health(port)
    parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all(health.get(p, {}).get("status") == "healthy" for p in parts)


def airflow_login() -> tuple[str, str]:
    """(user, password) of the Airflow UI (simple auth manager's generated password)."""
    path = _cfg().var_dir / "airflow" / "simple_auth_manager_passwords.json.generated"
    try:
        users = json.loads(path.read_text())
    except (OSError, ValueError):
        return "admin", f"(see {path})"
    user, password = next(iter(users.items()))
    return user, password


def migrate_airflow_db(env: dict[str, str]) -> None:
    """`airflow db migrate` (idempotent); its output is kept in airflow-migrate.log and its
    last lines are shown when it fails."""
    log = _cfg().log_dir / "airflow-migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = run_tool([_airflow_bin(), "db", "migrate"], env=env)
    except ToolError as exc:
        log.write_text(exc.output)
        raise ServiceError(f"airflow db migrate failed; see its log: {log}\n{exc}") from exc
    log.write_text(result.stdout + result.stderr)


def ensure_airflow_login(airflow_home: Path) -> None:
    """The simple auth manager's passwords file with a random admin password, written before
    the API server starts (what `airflow standalone` did on its first run)."""
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    if path.exists():
        return
    path.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}) + "\n")
    path.chmod(0o600)


def airflow_programs(env: dict[str, str]) -> list[supervise.Program]:
    """API server, scheduler, DAG processor and triggerer: four supervised processes."""
    log_dir = _cfg().log_dir
    commands = {
        "airflow-apiserver": [
            "api-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(_cfg().airflow_port),
        ],
        "airflow-scheduler": ["scheduler"],
        "airflow-dag-processor": ["dag-processor"],
        "airflow-triggerer": ["triggerer"],
    }
    # The scheduler runs every task (LocalExecutor children: Spark, scoring, training) and the
    # DAG processor parses: batch work, niced so that on a shared machine the serving tier
    # keeps its latency while a model trains (docs/operations.md).
    batch = {"airflow-scheduler", "airflow-dag-processor"}
    nice = ["nice", "-n", str(settings_mod.batch_niceness())]
    return [
        supervise.Program(
            name=name,
            argv=[*(nice if name in batch else []), _airflow_bin(), *command],
            log=log_dir / f"{name}.log",
            env=env,
            startsecs=10,
            priority=30,
        )
        for name, command in commands.items()
    ]


def airflow_env() -> dict[str, str]:
    """What every Airflow component runs with (two task slots on this machine)."""
    knobs = {
        key: value
        for key, value in settings_mod.passthrough_env().items()
        if key.startswith("AIRFLOW__") or key in settings_mod.DEFAULTS
    }
    return {**knobs, **runtime_env(), "AIRFLOW__CORE__PARALLELISM": "2"}


def _all_running() -> bool:
    """Every Airflow program has stayed up its startsecs (RUNNING, not STARTING)."""
    return all(supervise.info(name)["statename"] == "RUNNING" for name in AIRFLOW_PROGRAMS)


def start_airflow(quiet: bool = False) -> bool:
    port = _cfg().airflow_port
    log = _cfg().log_dir / "airflow-scheduler.log"
    env = airflow_env()
    _retire_unsupervised("airflow")
    up_now = [name for name in AIRFLOW_PROGRAMS if supervise.running(name)]
    if not up_now and port_open("127.0.0.1", port):
        raise ServiceError(f"airflow: port {port} is taken by a process we did not start")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if len(up_now) < len(AIRFLOW_PROGRAMS):
        migrate_airflow_db({**os.environ, **env})
        ensure_airflow_login(Path(env["AIRFLOW_HOME"]))
    supervised(airflow_programs(env))
    started = [name for name in AIRFLOW_PROGRAMS if start_program(name, wait=False)]
    wait_until(lambda: _airflow_healthy(port) and _all_running(), 240, "airflow", log, interval=2)
    user, password = airflow_login()
    state = "ready" if started else "already running"
    _say(
        f"airflow    {state}: UI http://127.0.0.1:{port} login {user} / {password} "
        f"(logs: {_cfg().log_dir}/airflow-*.log)",
        quiet,
    )
    return bool(started)


def stop_airflow(quiet: bool = False) -> bool:
    stopped = [name for name in AIRFLOW_PROGRAMS if supervise.stop(name)]
    pid = read_pid("airflow")
    if pid:
        stop_group("airflow", pid, grace_s=30)
        stopped.append("airflow")
    _say("airflow    stopped" if stopped else "airflow    not running", quiet)
    return bool(stopped)


# ---------------------------------------------------------------------------- monitoring
def start_monitoring(quiet: bool = False) -> bool:
    from ops import monitoring  # it builds on this module's helpers: imported when used

    return monitoring.start(quiet=quiet)


def stop_monitoring(quiet: bool = False) -> bool:
    from ops import monitoring

    return monitoring.stop(quiet=quiet)


# ---------------------------------------------------------------------------- commands
STARTERS = {
    "postgres": start_postgres,
    "kafka": start_kafka,
    "airflow": start_airflow,
    "monitoring": start_monitoring,
}
STOPPERS = {
    "postgres": stop_postgres,
    "kafka": stop_kafka,
    "airflow": stop_airflow,
    "monitoring": stop_monitoring,
}


RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def fixed_ports() -> list[int]:
    """The loopback ports DESIGN.md fixes for our services."""
    cfg = _cfg()
    postgres_port = _url_parts(cfg.database_url)[3]
    kafka_port = _kafka_host_port()[1]
    metadata_port = urlsplit(cfg.metadata_api_url).port
    controller_port = settings_mod.kafka_controller_port()
    return sorted(
        {postgres_port, kafka_port, controller_port, cfg.airflow_port, cfg.serving_port}
        | {metadata_port, cfg.reports_port, cfg.prometheus_port, cfg.pushgateway_port}
        | {cfg.alertmanager_port, cfg.alert_receiver_port}
        | {cfg.spark_master_port, cfg.spark_master_ui_port}
    )


def reserve_ports() -> bool:
    """Keep our fixed ports out of the kernel's ephemeral range (55432 is inside it), so an
    outgoing connection of any process can never hold one when a service binds it. Needs
    root; elsewhere it does nothing (the collision is rare, and the start error names it)."""
    try:
        current = RESERVED_PORTS.read_text().strip()
        have = {p for p in current.split(",") if p}
        wanted = {str(p) for p in fixed_ports()}
        if wanted <= have:
            return True
        ranges = sorted(have | wanted, key=lambda p: int(p.split("-")[0]))  # "a" or "a-b"
        RESERVED_PORTS.write_text(",".join(ranges))
        return True
    except (OSError, ValueError):
        return False


def up(names=ALL, quiet: bool = False) -> list[str]:
    """Start `names` in dependency order; return the ones started now (not already up)."""
    reserve_ports()
    started = []
    for name in ALL:
        if name in names and STARTERS[name](quiet=quiet):
            started.append(name)
    supervised([exporter_program()])
    start_program(EXPORTER, wait=False)
    return started


EXPORTER = "health-exporter"
EXPORT_EVERY_S = 30


def metrics_file() -> Path:
    """The Prometheus textfile of service health (.var/metrics/services.prom)."""
    return _cfg().var_dir / "metrics" / "services.prom"


def exporter_program() -> supervise.Program:
    """`status --prom --every 30`, supervised: keeps the health textfile (and the
    unhealthy-since record) fresh while anything runs."""
    argv = [sys.executable, "-m", "ops.services", "status", "--prom", "--every"]
    log = _cfg().log_dir / f"{EXPORTER}.log"
    return supervise.Program(EXPORTER, [*argv, str(EXPORT_EVERY_S)], log, env=runtime_env())


def down(names=ALL, quiet: bool = False) -> list[str]:
    """Stop `names` in reverse dependency order; return the ones that were running. When no
    supervised program is left running, supervisord itself exits too."""
    stopped = []
    for name in reversed(ALL):
        if name in names and STOPPERS[name](quiet=quiet):
            stopped.append(name)
    if supervise.alive() and set(supervise.programs_running()) <= {EXPORTER}:
        supervise.shutdown()
    return stopped


def _addresses() -> dict[str, str]:
    cfg = _cfg()
    host, kport = _kafka_host_port()
    return {
        "postgres": f"127.0.0.1:{_url_parts(cfg.database_url)[3]}",
        "kafka": f"{host}:{kport}",
        "airflow": f"http://127.0.0.1:{cfg.airflow_port}",
        "monitoring": cfg.prometheus_url,
        "serving": f"http://127.0.0.1:{cfg.serving_port}",
        "metadata": cfg.metadata_api_url,
        "traffic": "simulator live loop",
    }


def status_programs() -> list[str]:
    """The programs `status` judges: the services', plus any app `make run` added."""
    extra = [name for name in APPS if supervise.alive() and supervise.known(name)]
    return [*(name for service in ALL for name in PROGRAMS[service]), *extra]


def health() -> list[supervision_health.Health]:
    """A verdict per supervised program (see ops/supervision_health.py): healthy or not, why,
    since when, and how many times supervisord restarted it."""
    return supervision_health.check(status_programs())


def status(verdicts: list[supervision_health.Health] | None = None) -> dict[str, dict]:
    """Per service: running (healthy), address, log, restarts, and the unhealthy programs."""
    cfg = _cfg()
    verdicts = {v.service: v for v in (health() if verdicts is None else verdicts)}
    logs = {"postgres": str(platform_postgres().log), "airflow": f"{cfg.log_dir}/airflow-*.log"}
    report = {}
    for service, address in _addresses().items():
        rows = [verdicts[m] for m in PROGRAMS[service] if m in verdicts]
        if not rows:
            continue
        report[service] = {
            "running": all(v.healthy for v in rows),
            "address": address,
            "log": logs.get(service, str(cfg.log_dir / f"{PROGRAMS[service][0]}.log")),
            "restarts": sum(v.restarts for v in rows),
            "unhealthy": [v for v in rows if not v.healthy],
        }
    report["spark"] = spark_row(cfg)
    return report


def spark_row(cfg: settings_mod.Settings) -> dict:
    """Spark runs inside each job, unless `make spark-cluster` started a standalone cluster:
    then its row is the master's, down while fewer workers than configured are alive."""
    from ops import spark_cluster

    master = spark_cluster.master()
    if not _pid_file(master.name).exists():  # never started, or stopped
        return {"running": True, "address": cfg.spark_master_url, "log": "(in-process)"}
    cluster = spark_cluster.status()
    row = {"running": cluster["running"], "address": cluster["master_url"], "log": str(master.log)}
    if not cluster["running"]:
        alive = len(spark_cluster.alive_workers(cluster))
        detail = cluster.get("error") or f"{alive} workers alive"
        row["unhealthy"] = [supervision_health.Health("spark", False, detail)]
    return row


def _ago(since: float | None, now: float) -> str:
    if since is None:
        return ""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    return f" since {stamp} ({now - since:.0f} s)"


def print_status(rows: dict[str, dict]) -> int:
    """The status table, then one line per unhealthy program; 0 when all is healthy, else 3."""
    now = time.time()
    for name, row in rows.items():
        state = "up  " if row["running"] else "down"
        restarts = f"restarts {row['restarts']:<3}" if "restarts" in row else " " * 12
        print(f"{name:<10} {state} {row['address']:<28} {restarts} log: {row['log']}")
    bad = [v for row in rows.values() for v in row.get("unhealthy", [])]
    for verdict in bad:
        print(f"unhealthy: {verdict.service}{_ago(verdict.since, now)}: {verdict.detail}")
    return 3 if bad else 0


def status_command(prom: str | None, every: float | None = None) -> int:
    """`status [--prom [FILE]] [--every S]`: print the table and exit 0 (healthy) or 3; with
    --prom also write the Prometheus textfile; with --every keep exporting, logging changes."""
    path = Path(prom) if prom else metrics_file()
    last: set[str] | None = None
    pushed: bool | None = None
    while True:
        verdicts = health()
        if prom is not None:
            supervision_health.write_prometheus(verdicts, path, time.time())
        if every is None:
            return print_status(status(verdicts))
        if prom is not None:  # the exporter: Prometheus reads the verdicts on the Pushgateway
            pushed = _push_health(verdicts, pushed)
        bad = {f"{v.service}: {v.detail}" for v in verdicts if not v.healthy}
        if bad != last:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            print(f"{stamp} unhealthy: {sorted(bad) or 'none'}", flush=True)
            last = bad
        time.sleep(every)


def _push_health(verdicts: list[supervision_health.Health], pushed_before: bool | None) -> bool:
    """Push the verdicts to the Pushgateway; log when pushing starts or stops working."""
    url = _cfg().pushgateway_url
    try:
        supervision_health.push_prometheus(verdicts, url, time.time())
        ok, why = True, ""
    except OSError as exc:  # the Pushgateway is down or starting: the textfile still has them
        ok, why = False, f": {exc}"
    if ok != pushed_before:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(f"{stamp} push to {url} {'ok' if ok else 'failed'}{why}", flush=True)
    return ok


def reset(quiet: bool = False) -> None:
    """Stop everything and delete local state under .var/ (downloads in .cache/ stay)."""
    down(ALL, quiet=quiet)
    supervise.shutdown()
    var = _cfg().var_dir
    home = postgres_home()
    if home.exists() and home.is_relative_to(settings_mod.postgres_homes_dir()):
        shutil.rmtree(home)
        _say(f"removed {home}", quiet)
    if var.exists():
        shutil.rmtree(var)
    _say(f"removed {var}", quiet)


# Debian package of each executable the monitoring stack and the rule tests run
MONITORING_TOOLS = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}


def ensure_monitoring_tools() -> None:
    """Prometheus (with promtool), the Pushgateway and Alertmanager (with amtool) from Debian,
    as root, where any of them is missing."""
    missing = sorted({pkg for exe, pkg in MONITORING_TOOLS.items() if not shutil.which(exe)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"monitoring tools missing; install Debian's {' '.join(missing)}")
    print(f"installing {' '.join(missing)} (Debian, apt-get) …", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_tool(["apt-get", "update", "-q"], env=env)
    run_tool(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def ensure_chromium() -> None:
    """Headless `chromium` (Debian package, as root) for the reports site's browser test."""
    if shutil.which("chromium"):
        return
    if os.geteuid() != 0:
        raise ServiceError("chromium is missing; install the Debian package chromium")
    print("installing chromium (Debian package, apt-get) …", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_tool(["apt-get", "update", "-q"], env=env)
    run_tool(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], env=env)


def fetch_web_assets() -> None:
    """The Data Docs' CSS/JS from the npm registry into .cache/web-assets (ops/web_assets.py)."""
    from ops import web_assets

    try:
        web_assets.fetch()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ServiceError(f"npm could not fetch the Data Docs assets: {exc}") from exc


def fetch_downloads() -> None:
    """What `make setup` installs besides the venv: the Kafka jars, the PostgreSQL server and
    the monitoring tools (as root; elsewhere a missing one is named, and the services or tests
    that need it fail with the same message)."""
    fetch_kafka_jars()
    for ensure in (
        ensure_postgres_binaries,
        ensure_monitoring_tools,
        ensure_chromium,
        fetch_web_assets,
    ):
        try:
            ensure()
        except ServiceError as exc:
            print(f"warning: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.services", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "reset", "env", "fetch"])
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(ALL)} (default: all)")
    parser.add_argument(
        "--prom",
        nargs="?",
        const="",
        metavar="FILE",
        help="status: also write Prometheus text (default .var/metrics/services.prom)",
    )
    parser.add_argument("--every", type=float, help="status: repeat every S seconds (exporter)")
    args = parser.parse_args(argv)
    names = tuple(args.names) or ALL
    unknown = set(names) - set(ALL)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    try:
        if args.command == "up":
            up(names)
        elif args.command == "down":
            down(names)
        elif args.command == "reset":
            reset()
        elif args.command == "fetch":
            fetch_downloads()
        elif args.command == "env":
            for key, value in runtime_env().items():
                print(f"export {key}={value}")
        else:
            return status_command(args.prom, args.every)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
