"""Start, stop and inspect the embedded local services: PostgreSQL 15, Kafka (KRaft), Airflow 3.

`python -m ops.services up|down|status|reset [names…]`. Every start waits for readiness with a
deadline and fails naming the service and its log file; starting twice is a no-op; stopping
leaves nothing running. State lives under .var/, downloads under .cache/. Spark needs no
daemon: jobs run in `local[2]` unless SPARK_MASTER_URL names a cluster.
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

ALL = ("postgres", "kafka", "airflow")
PG_BIN = settings_mod.pg_bin()
REPO = settings_mod.REPO_ROOT


class ServiceError(RuntimeError):
    """A service failed to start or stop; the message names it and its log file."""


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


def spawn(name: str, argv: list[str], log: Path, env: dict[str, str]) -> int:
    """Start argv in its own session (so a stop reaches every child), log to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=REPO,
        )
    _pid_file(name).write_text(str(proc.pid))
    return proc.pid


def stop_group(name: str, pid: int, grace_s: float = 30) -> None:
    """SIGTERM the process group, then SIGKILL what is left after the grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # Reap if it is our child (it is not, normally: we start detached sessions).
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
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql-15"],
        check=True,
        env=env,
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
        return subprocess.run(argv, check=True, capture_output=True, text=True, cwd="/", **kw)

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
        except subprocess.CalledProcessError:
            return False
        return True

    def start(self, deadline_s: float = 60) -> bool:
        """Start (initdb first if needed); False when it was already running."""
        self.init()
        if self.running():
            return False
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"postgres: port {self.port} is taken by another process")
        opts = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=512MB -c synchronous_commit=off "
            "-c max_wal_size=4GB -c checkpoint_timeout=15min"
        )
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
                    opts,
                    "-w",
                    "-t",
                    str(int(deadline_s)),
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise ServiceError(
                f"postgres failed to start ({exc.stderr.strip()}); see its log: {self.log}"
            ) from exc
        wait_until(lambda: port_open("127.0.0.1", self.port), deadline_s, "postgres", self.log)
        return True

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


def start_postgres(quiet: bool = False) -> bool:
    ensure_postgres_binaries()
    cluster = platform_postgres()
    _record_postgres_home(cluster)
    started = cluster.start()
    _bootstrap_postgres(cluster)
    from contracts import db

    db.apply_schema()
    _say(f"postgres   ready on 127.0.0.1:{cluster.port} (log: {cluster.log})", quiet)
    return started


def stop_postgres(quiet: bool = False) -> bool:
    cluster = platform_postgres()
    stopped = cluster.stop() if cluster.initialised() else False
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
    subprocess.run(
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
        check=True,
    )
    tmp.rename(libs)
    return libs


def _kafka_host_port() -> tuple[str, int]:
    first = _cfg().kafka_bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def _kafka_properties(data_dir: Path, port: int) -> str:
    controller_port = port + 1
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


def start_kafka(quiet: bool = False) -> bool:
    cfg = _cfg()
    log = cfg.log_dir / "kafka.log"
    host, port = _kafka_host_port()
    if read_pid("kafka"):
        wait_until(lambda: kafka_ready(cfg.kafka_bootstrap_servers), 60, "kafka", log)
        create_topic(cfg.kafka_bootstrap_servers, cfg.kafka_topic, cfg.kafka_partitions)
        _say(f"kafka      already running on {host}:{port}", quiet)
        return False
    if port_open(host, port):
        raise ServiceError(f"kafka: port {port} is taken by a process we did not start")
    libs = fetch_kafka_jars()
    home = cfg.var_dir / "kafka"
    data = home / "data"
    props = home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    props.write_text(_kafka_properties(data, port))
    java = ["java", "-cp", f"{libs}/*"]
    if not (data / "meta.properties").exists():
        cluster_id = kafka_cluster_id()
        subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            check=True,
            capture_output=True,
        )
    heap = settings_mod.kafka_heap_opts()
    argv = [
        "java",
        *heap.split(),
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={REPO / 'ops' / 'kafka' / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(props),
    ]
    spawn("kafka", argv, log, dict(os.environ))
    wait_until(lambda: kafka_ready(cfg.kafka_bootstrap_servers), 90, "kafka", log)
    create_topic(cfg.kafka_bootstrap_servers, cfg.kafka_topic, cfg.kafka_partitions)
    _say(
        f"kafka      ready on {host}:{port}, topic {cfg.kafka_topic} "
        f"({cfg.kafka_partitions} partitions) (log: {log})",
        quiet,
    )
    return True


def stop_kafka(quiet: bool = False) -> bool:
    pid = read_pid("kafka")
    if not pid:
        _say("kafka      not running", quiet)
        return False
    stop_group("kafka", pid, grace_s=30)
    _say("kafka      stopped", quiet)
    return True


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
    parts = ("metadatabase", "scheduler", "dag_processor")
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
    log = _cfg().log_dir / "airflow-migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        result = subprocess.run(
            [_airflow_bin(), "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise ServiceError(f"airflow db migrate failed; see its log: {log}")


def start_airflow(quiet: bool = False) -> bool:
    cfg = _cfg()
    log = cfg.log_dir / "airflow.log"
    env = {**os.environ, **runtime_env(), "AIRFLOW__CORE__PARALLELISM": "2"}
    port = cfg.airflow_port
    if read_pid("airflow"):
        wait_until(lambda: _airflow_healthy(port), 240, "airflow", log, interval=2)
        _say(f"airflow    already running on http://127.0.0.1:{port}", quiet)
        return False
    if port_open("127.0.0.1", port):
        raise ServiceError(f"airflow: port {port} is taken by a process we did not start")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    migrate_airflow_db(env)
    spawn("airflow", [_airflow_bin(), "standalone"], log, env)
    wait_until(lambda: _airflow_healthy(port), 240, "airflow", log, interval=2)
    user, password = airflow_login()
    _say(
        f"airflow    ready: UI http://127.0.0.1:{port} login {user} / {password} (log: {log})",
        quiet,
    )
    return True


def stop_airflow(quiet: bool = False) -> bool:
    pid = read_pid("airflow")
    if not pid:
        _say("airflow    not running", quiet)
        return False
    stop_group("airflow", pid, grace_s=30)
    _say("airflow    stopped", quiet)
    return True


# ---------------------------------------------------------------------------- commands
STARTERS = {"postgres": start_postgres, "kafka": start_kafka, "airflow": start_airflow}
STOPPERS = {"postgres": stop_postgres, "kafka": stop_kafka, "airflow": stop_airflow}


RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def fixed_ports() -> list[int]:
    """The loopback ports DESIGN.md fixes for our services."""
    cfg = _cfg()
    postgres_port = _url_parts(cfg.database_url)[3]
    kafka_port = _kafka_host_port()[1]
    metadata_port = urlsplit(cfg.metadata_api_url).port
    return sorted({postgres_port, kafka_port, cfg.airflow_port, cfg.serving_port, metadata_port})


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
    return started


def down(names=ALL, quiet: bool = False) -> list[str]:
    """Stop `names` in reverse dependency order; return the ones that were running."""
    stopped = []
    for name in reversed(ALL):
        if name in names and STOPPERS[name](quiet=quiet):
            stopped.append(name)
    return stopped


def status() -> dict[str, dict]:
    """What is running, where, and where its log is."""
    cfg = _cfg()
    host, kport = _kafka_host_port()
    pg = platform_postgres()
    report = {
        "postgres": {
            "running": pg.running(),
            "address": f"127.0.0.1:{pg.port}",
            "log": str(pg.log),
        },
        "kafka": {
            "running": bool(read_pid("kafka")) and port_open(host, kport),
            "address": f"{host}:{kport}",
            "log": str(cfg.log_dir / "kafka.log"),
        },
        "airflow": {
            "running": bool(read_pid("airflow")) and port_open("127.0.0.1", cfg.airflow_port),
            "address": f"http://127.0.0.1:{cfg.airflow_port}",
            "log": str(cfg.log_dir / "airflow.log"),
        },
        "spark": {"running": True, "address": cfg.spark_master_url, "log": "(in-process)"},
    }
    return report


def reset(quiet: bool = False) -> None:
    """Stop everything and delete local state under .var/ (downloads in .cache/ stay)."""
    down(ALL, quiet=quiet)
    var = _cfg().var_dir
    home = postgres_home()
    if home.exists() and home.is_relative_to(settings_mod.postgres_homes_dir()):
        shutil.rmtree(home)
        _say(f"removed {home}", quiet)
    if var.exists():
        shutil.rmtree(var)
    _say(f"removed {var}", quiet)


def fetch_downloads() -> None:
    """What `make setup` installs besides the venv: the Kafka jars and the PostgreSQL server
    (as root; elsewhere a missing server is named, and the services or tests that need it
    fail with the same message)."""
    fetch_kafka_jars()
    try:
        ensure_postgres_binaries()
    except ServiceError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.services", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "reset", "env", "fetch"])
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(ALL)} (default: all)")
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
            rows = status()
            for name, row in rows.items():
                state = "up  " if row["running"] else "down"
                print(f"{name:<9} {state} {row['address']:<28} log: {row['log']}")
            return 0 if all(r["running"] for r in rows.values()) else 3
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
