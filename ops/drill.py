"""`make drill`: fault drills against the running platform, under serving load.

Each drill injects one real fault and measures the outcome (docs/operations.md, "Fault drills"):

  postgres-ingest  Postgres stopped for 15 s while movielog_ingest writes a snapshot: the run
                   completes after recovery (task retries), nothing lost or duplicated
  kafka-ingest     the Kafka broker SIGKILLed during a snapshot and restarted: the snapshot is
                   consistent, and the next one continues where it stopped
  scheduler        the Airflow scheduler SIGKILLed: back within 30 s, and a run triggered
                   before the kill finishes
  serving-worker   one gunicorn worker SIGKILLed under load: no failed requests beyond the ones
                   in flight on that worker
  postgres-retrain Postgres stopped 15 s and restarted; 45 s later a train_and_publish run is
                   triggered and completes; serving fails no request throughout

The drill functions take their targets as arguments, so tests/integration/test_drills.py runs
the same code on private instances. `python -m ops.drill [--only NAME …]` prints a table: fault,
time to recover, requests served, requests failed, events lost, outcome; exits 1 on a failed
drill.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from contracts import kafka
from contracts import settings as settings_mod
from ops import services, supervise

# ---------------------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/*/stat)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces, so split after its last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry.name))
    return sorted(kids)


def client_connections(pid: int, port: int) -> int:
    """TCP connections accepted on `port` that process `pid` holds open (not the listener)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local_port = int(cols[1].rsplit(":", 1)[1], 16)
                if local_port == port and cols[3] != "0A" and cols[9] in inodes:  # 0A: LISTEN
                    count += 1
    return count


def supervised_pid(name: str) -> int:
    """The pid of a program supervisord runs (docs/operations.md); fails naming it."""
    pid = supervise.pid(name)
    if pid is None:
        raise RuntimeError(f"{name} is not running under supervisord (`make run` first)")
    return pid


# ---------------------------------------------------------------------------- load


@dataclass
class Counts:
    """Requests answered 2xx (served) and the rest: non-2xx, reset, refused, timed out."""

    served: int = 0
    failed: int = 0


class HttpLoad:
    """GET /recommend/<random id> on `connections` threads, one request per connection (the
    serving tier's sync workers close after each answer), never retried: every failure counts."""

    def __init__(self, base_url: str, connections: int = 4, max_user: int = 100_000) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.connections, self.max_user = connections, max_user
        self.counts = Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _one(self, rng: random.Random) -> bool:
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", f"/recommend/{rng.randint(1, self.max_user)}")
            resp = conn.getresponse()
            resp.read()
            return 200 <= resp.status < 300
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _loop(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - load generation, not security
        while not self._stop.is_set():
            ok = self._one(rng)
            with self._lock:
                if ok:
                    self.counts.served += 1
                else:
                    self.counts.failed += 1

    def start(self) -> HttpLoad:
        for n in range(self.connections):
            thread = threading.Thread(target=self._loop, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> Counts:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        return self.counts


WRK_LUA = """
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", "/recommend/" .. math.random(1, %(max_user)d))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("DRILL %%d %%d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


class WrkLoad:
    """The serving bench's load generator (wrk, 2 threads, 16 connections) until stopped;
    wrk counts a non-2xx/3xx answer and every socket error or timeout as an error."""

    def __init__(self, base_url: str, connections: int = 16, max_user: int = 100_000) -> None:
        self.base_url, self.connections, self.max_user = base_url, connections, max_user
        self._dir = Path(tempfile.mkdtemp(prefix="recs-drill-"))
        self._proc: subprocess.Popen | None = None

    def start(self) -> WrkLoad:
        script = self._dir / "drill.lua"
        script.write_text(WRK_LUA % {"seed": os.getpid(), "max_user": self.max_user})
        argv = ["wrk", "-t2", f"-c{self.connections}", "-d3600s", "--timeout", "2s"]
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv: wrk, our script, our URL
            [*argv, "-s", str(script), self.base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return self

    def stop(self) -> Counts:
        """SIGINT: wrk stops, runs done() and prints its totals."""
        assert self._proc is not None  # noqa: S101 - start() comes first
        self._proc.send_signal(signal.SIGINT)
        out, _ = self._proc.communicate(timeout=30)
        shutil.rmtree(self._dir, ignore_errors=True)
        line = next((x for x in out.splitlines() if x.startswith("DRILL ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no totals: {out[-500:]}")
        requests, errors = map(int, line.split()[1:])
        return Counts(served=requests - errors, failed=errors)


def make_load(base_url: str):
    """wrk when installed (`make drill` installs it, as `make bench` does), else HttpLoad."""
    return WrkLoad(base_url) if shutil.which("wrk") else HttpLoad(base_url)


# ---------------------------------------------------------------------------- results


@dataclass
class DrillResult:
    """One drill's outcome as the table prints it; `ok` says whether every check held."""

    fault: str
    ok: bool = False
    recover_s: float | None = None
    served: int | None = None
    failed: int | None = None
    lost: int | None = None
    detail: list[str] = field(default_factory=list)

    def check(self, condition: bool, failure: str) -> bool:
        """Record a failed check (the drill goes on, to restore and measure the rest)."""
        if not condition:
            self.detail.append(f"FAILED: {failure}")
        return condition

    @property
    def failures(self) -> list[str]:
        return [d for d in self.detail if d.startswith("FAILED")]


def _cell(value, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def format_table(results: list[DrillResult]) -> str:
    head = (
        f"{'fault':<18} {'recover s':>9} {'served':>9} {'failed':>7} {'events lost':>11}  outcome"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        outcome = "ok" if r.ok else "FAILED"
        lines.append(
            f"{r.fault:<18} {_cell(r.recover_s, '{:.1f}'):>9} {_cell(r.served):>9} "
            f"{_cell(r.failed):>7} {_cell(r.lost):>11}  {outcome}"
        )
    for r in results:
        for item in r.detail:
            lines.append(f"  {r.fault}: {item}")
    return "\n".join(lines)


def _in_background(function: Callable[[], object]) -> Callable[[], object]:
    """Run `function` on a thread now; the returned join() gives its result (or raises)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> object:
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box.get("value")

    return join


# ---------------------------------------------------------------------------- ingest drills


@dataclass
class RunOutcome:
    """How a DAG run ended ("success", "failed", "timeout") and each task's number of tries."""

    state: str
    tries: dict[str, int] = field(default_factory=dict)

    @property
    def retried(self) -> list[str]:
        return [f"{task} x{n}" for task, n in sorted(self.tries.items()) if n > 1]


@dataclass
class IngestTarget:
    """Where an ingest drill acts: the topic, its lake, and one movielog_ingest run to its end
    (the real scheduler through the API for `make drill`, dag.test() in the tests)."""

    topic: str
    bootstrap: str
    lake_dir: Path
    run: Callable[[], RunOutcome]

    def ledger(self) -> list[dict]:
        from jobs import pipeline

        return pipeline.snapshot_ledger(self.topic)

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """(low, high) offsets per partition of the topic now."""
        return kafka.watermarks(self.bootstrap, self.topic)

    def writing(self) -> bool:
        """True while a snapshot is being written (its `_tmp-` directory exists)."""
        base = self.lake_dir / "snapshots"
        return base.is_dir() and any(p.name.startswith("_tmp-") for p in base.iterdir())


def ledger_losses(
    before: list[dict], after: list[dict], marks: dict[int, tuple[int, int]]
) -> tuple[int, int, list[str]]:
    """(events lost, events duplicated, problems) of the snapshots taken since `before`.

    Each new snapshot must read exactly what it writes (lines = rows + rejects) and be judged
    (accepted or quarantined: an `ingested` one is never trained on); per partition, its range
    must start where the previous snapshot ended (else the low-water mark) and the last one
    must reach `marks`' high-water mark (the topic's end when the drill began)."""
    known = {s["snapshot_id"] for s in before}
    ends = {p: low for p, (low, _high) in marks.items()}
    for snap in before:
        for part, (_start, end) in snap["offsets"].items():
            ends[part] = end
    lost = duplicated = 0
    problems: list[str] = []
    for snap in (s for s in after if s["snapshot_id"] not in known):
        sid = snap["snapshot_id"]
        if snap["lines_read"] != snap["written"]:
            lost += abs(snap["lines_read"] - snap["written"])
            problems.append(f"{sid}: {snap['lines_read']} lines read, {snap['written']} written")
        if snap["status"] not in ("accepted", "quarantined"):
            lost += snap["lines_read"]
            problems.append(f"{sid} is {snap['status'] or 'unregistered'}: never judged")
        for part, (start, end) in sorted(snap["offsets"].items()):
            expected = ends.get(part, start)
            if start != expected:
                kind = "gap" if start > expected else "overlap"
                problems.append(f"{sid}[{part}] starts at {start}, {kind} after {expected}")
                lost += max(0, start - expected)
                duplicated += max(0, expected - start)
            ends[part] = end
    for part, (_low, high) in sorted(marks.items()):
        if ends.get(part, 0) < high:
            lost += high - ends.get(part, 0)
            problems.append(f"partition {part}: offsets {ends.get(part, 0)}..{high} not taken")
    return lost, duplicated, problems


def _fault_during(target: IngestTarget, fault: Callable[[], None], deadline_s: float = 300):
    """Run `fault` on a thread as soon as a snapshot is being written (else, when none shows
    up, while the run goes on); run the ingest meanwhile. (outcome, fault started, run ended)."""
    finished = threading.Event()
    started: dict[str, float] = {}

    def inject() -> None:
        end = time.monotonic() + deadline_s
        while not target.writing() and not finished.is_set() and time.monotonic() < end:
            time.sleep(0.01)
        if finished.is_set():
            return  # the run ended first: no fault during it
        started["at"] = time.monotonic()
        fault()

    join = _in_background(inject)
    try:
        outcome = target.run()
    finally:
        ended = time.monotonic()
        finished.set()
        join()
    return outcome, started.get("at"), ended


def _check_ingest(result: DrillResult, target, before, marks, outcome: RunOutcome) -> None:
    after = target.ledger()
    lost, duplicated, problems = ledger_losses(before, after, marks)
    result.lost = lost
    result.check(outcome.state == "success", f"ingest run ended {outcome.state}")
    result.check(lost == 0 and duplicated == 0, f"{lost} lost, {duplicated} duplicated")
    result.detail += problems
    known = {s["snapshot_id"] for s in before}
    new = [s["snapshot_id"] for s in after if s["snapshot_id"] not in known]
    result.detail.append(f"run {outcome.state}; retried: {', '.join(outcome.retried) or 'none'}")
    result.detail.append(f"new snapshots {new}")


def drill_postgres_during_ingest(
    target: IngestTarget, postgres, outage_s: float = 15.0
) -> DrillResult:
    """Postgres (anything with stop()/start()) stopped for `outage_s` while a snapshot is
    written: the run completes after recovery with nothing lost or duplicated."""
    result = DrillResult("postgres-ingest")
    before, marks = target.ledger(), target.watermarks()
    times: dict[str, float] = {}

    def outage() -> None:
        postgres.stop()
        try:
            time.sleep(outage_s)  # the length of the fault, not a synchronisation
        finally:
            postgres.start()
            times["up"] = time.monotonic()

    outcome, fault_at, ended = _fault_during(target, outage)
    if result.check(fault_at is not None, "the run ended before the fault"):
        result.recover_s = times["up"] - fault_at
        result.check(ended > times["up"], "the run ended before Postgres was back")
    _check_ingest(result, target, before, marks, outcome)
    result.ok = not result.failures
    return result


def _wait(check: Callable[[], object], deadline_s: float, interval: float = 0.2) -> float | None:
    """Seconds until `check()` is truthy (exceptions count as not yet), None past the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - started
        time.sleep(interval)
    return None


@dataclass
class Broker:
    """A Kafka broker to SIGKILL: back by supervisord's restart, or, where nothing restarts it
    within 20 s, started again by `python -m ops.services up kafka` in the environment it was
    found in (a test may have pointed RECS_VAR_DIR elsewhere meanwhile)."""

    bootstrap: str
    pid: int
    env: dict[str, str]

    @classmethod
    def platform(cls) -> Broker:
        """The platform's broker (supervisord's `kafka`), found in the environment of now."""
        return cls(
            settings_mod.load().kafka_bootstrap_servers, supervised_pid("kafka"), dict(os.environ)
        )

    def ready(self) -> bool:
        return services.kafka_ready(self.bootstrap)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def restore(self, deadline_s: float = 120) -> None:
        if _wait(self.ready, 20, 0.5) is None:
            subprocess.run(
                [sys.executable, "-m", "ops.services", "up", "kafka"],
                env=self.env,
                cwd=settings_mod.REPO_ROOT,
                check=True,
                capture_output=True,
            )
        if _wait(self.ready, deadline_s, 0.5) is None:
            raise RuntimeError(f"kafka not back after {deadline_s:.0f} s")


def drill_kafka_during_ingest(
    target: IngestTarget, broker: Broker, more: Callable[[], None]
) -> DrillResult:
    """The broker SIGKILLed while a snapshot is read, then restored: the snapshot is consistent
    and, once `more()` has added events, the next one continues where it stopped."""
    result = DrillResult("kafka-ingest")
    before, marks = target.ledger(), target.watermarks()
    times: dict[str, float] = {}

    def crash() -> None:
        broker.kill()
        times["killed"] = time.monotonic()
        broker.restore()
        times["up"] = time.monotonic()

    outcome, fault_at, _ended = _fault_during(target, crash)
    if result.check(fault_at is not None, "the run ended before the fault"):
        result.recover_s = times["up"] - times["killed"]
    _check_ingest(result, target, before, marks, outcome)
    more()
    middle, marks = target.ledger(), target.watermarks()
    following = target.run()
    lost, duplicated, problems = ledger_losses(middle, target.ledger(), marks)
    result.lost = (result.lost or 0) + lost
    result.check(following.state == "success", f"the next ingest run ended {following.state}")
    result.check(lost == 0 and duplicated == 0, f"next snapshot: {lost} lost, {duplicated} dup")
    result.detail += problems
    result.ok = not result.failures
    return result


# ---------------------------------------------------------------------------- Airflow


def airflow_api(deadline_s: float = 120):
    """A logged-in Airflow API client (ops.airflow_api), waiting for an api-server that
    supervisord may still be restarting."""
    from ops.airflow_api import AirflowAPI

    return services.wait_until(AirflowAPI.login, deadline_s, "Airflow API login", None, 2)


def wait_run(api, dag_id: str, run_id: str, deadline_s: float = 900) -> RunOutcome:
    """Poll a run to its end; API errors (an api-server or database being restarted) only mean
    "not yet". A run still going at the deadline is a "timeout"."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            run = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                tis = api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
                tries = {ti["task_id"]: ti["try_number"] for ti in tis["task_instances"]}
                return RunOutcome(run["state"], tries)
        time.sleep(2)
    return RunOutcome("timeout")


@contextlib.contextmanager
def unpaused(api, dag_id: str):
    """The DAG parsed and unpaused for the block; paused again afterwards if it was before."""

    def parsed() -> dict | None:
        with contextlib.suppress(Exception):
            return api.call("GET", f"/dags/{dag_id}")
        return None

    was_paused = services.wait_until(parsed, 180, f"DAG {dag_id} parsed", None, 3)["is_paused"]
    if was_paused:
        api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    try:
        yield
    finally:
        if was_paused:
            with contextlib.suppress(Exception):
                api.call("PATCH", f"/dags/{dag_id}", {"is_paused": True})


def airflow_run(dag_id: str, conf: dict, deadline_s: float = 900) -> RunOutcome:
    """Trigger one run through the API and wait for its end."""
    api = airflow_api()
    with unpaused(api, dag_id):
        return wait_run(api, dag_id, api.trigger(dag_id, conf), deadline_s)


def scheduler_heartbeat(port: int) -> float | None:
    """Epoch seconds of the scheduler's last heartbeat as Airflow's health endpoint reports it."""
    from datetime import datetime

    beat = services.airflow_health(port).get("scheduler", {}).get("latest_scheduler_heartbeat")
    return datetime.fromisoformat(beat).timestamp() if beat else None


def drill_scheduler_kill(
    dag_id: str, conf: dict, port: int, back_within_s: float = 30, deadline_s: float = 600
) -> DrillResult:
    """A run triggered, then the scheduler SIGKILLed: a new scheduler heartbeats within
    `back_within_s`, and the run finishes."""
    result = DrillResult("scheduler")
    api = airflow_api()
    with unpaused(api, dag_id):
        run_id = api.trigger(dag_id, conf)
        killed_pid = supervise.kill("airflow-scheduler", signal.SIGKILL)
        killed_at = time.time()
        beat = lambda: (scheduler_heartbeat(port) or 0) > killed_at  # noqa: E731 - one probe
        result.recover_s = _wait(beat, max(back_within_s * 4, 120), 0.5)
        result.check(
            result.recover_s is not None and result.recover_s <= back_within_s,
            f"no scheduler heartbeat within {back_within_s:.0f} s of the kill",
        )
        outcome = wait_run(api, dag_id, run_id, deadline_s)
    result.check(outcome.state == "success", f"run {run_id} ended {outcome.state}")
    result.detail.append(f"killed pid {killed_pid}; run {run_id} {outcome.state}")
    result.ok = not result.failures
    return result


# ---------------------------------------------------------------------------- serving drills


def drill_serving_worker_kill(master_pid: int, port: int, load, settle_s: float = 3.0):
    """One gunicorn worker SIGKILLed under `load`: requests fail only where they were in flight
    on that worker. The worker is frozen (SIGSTOP) first so its open client connections can be
    counted exactly; then it is killed, and the master forks a replacement."""
    result = DrillResult("serving-worker")
    workers = children(master_pid)
    if not result.check(bool(workers), f"gunicorn master {master_pid} has no workers"):
        return result
    victim = workers[0]
    load.start()
    try:
        time.sleep(settle_s)  # load running before the fault: the thing being measured
        os.kill(victim, signal.SIGSTOP)
        in_flight = client_connections(victim, port)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            now = children(master_pid)
            return victim not in now and len(now) >= len(workers)

        result.recover_s = _wait(replaced, 60, 0.05)
        time.sleep(settle_s)  # and after it: the replacement worker answering
    finally:
        counts = load.stop()
    result.served, result.failed = counts.served, counts.failed
    result.check(result.recover_s is not None, "no replacement worker within 60 s")
    result.check(counts.served > 0, "no request was served")
    result.check(
        counts.failed <= in_flight,
        f"{counts.failed} failed requests, {in_flight} in flight on the killed worker",
    )
    result.detail.append(f"killed worker {victim} with {in_flight} request(s) in flight")
    result.ok = not result.failures
    return result


class PlatformPostgres:
    """The platform's Postgres, stopped and started through supervisord (a plain stop would
    only make supervisord start it again)."""

    def stop(self) -> None:
        supervise.stop("postgres")

    def start(self) -> None:
        supervise.start("postgres")
        services.wait_until(self.ready, 60, "postgres", None)

    def ready(self) -> bool:
        from contracts import db

        conn = db.connect(connect_timeout=2)
        conn.close()
        return True


def drill_postgres_then_retrain(
    postgres, load, retrain: Callable[[], RunOutcome], outage_s: float = 15, wait_s: float = 45
) -> DrillResult:
    """Under serving load: Postgres stopped `outage_s` and started; `wait_s` later a retrain
    (train_and_publish) is triggered and completes; serving fails no request throughout."""
    result = DrillResult("postgres-retrain")
    load.start()
    try:
        time.sleep(3)  # serving under load before the fault
        postgres.stop()
        stopped = time.monotonic()
        try:
            time.sleep(outage_s)  # the length of the fault
        finally:
            postgres.start()
        result.recover_s = time.monotonic() - stopped
        time.sleep(wait_s)  # the scenario: an operator retrains 45 s after the restart
        outcome = retrain()
    finally:
        counts = load.stop()
    result.served, result.failed = counts.served, counts.failed
    result.check(outcome.state == "success", f"the run triggered after it ended {outcome.state}")
    result.check(counts.failed == 0, f"{counts.failed} failed requests")
    retried = ", ".join(outcome.retried) or "none"
    result.detail.append(f"run {outcome.state}, triggered {wait_s:.0f} s after; retried: {retried}")
    result.ok = not result.failures
    return result


# ---------------------------------------------------------------------------- make drill


def _under_load(base_url: str, drill: Callable[[], DrillResult]) -> DrillResult:
    """Run a drill with serving load around it; its served/failed are the load's."""
    load = make_load(base_url).start()
    try:
        result = drill()
    finally:
        counts = load.stop()
    result.served, result.failed = counts.served, counts.failed
    return result


def _new_events(target: IngestTarget, deadline_s: float = 120) -> Callable[[], None]:
    """Wait until live traffic has added events past the last snapshot (the simulator's loop)."""

    def wait() -> None:
        taken = {p: e for s in target.ledger() for p, (_s, e) in s["offsets"].items()}
        moved = lambda: any(h > taken.get(p, 0) for p, (_l, h) in target.watermarks().items())  # noqa: E731
        if _wait(moved, deadline_s, 1.0) is None:
            raise RuntimeError(f"no new events on {target.topic} in {deadline_s:.0f} s")

    return wait


def platform_drills(names: list[str]) -> list[DrillResult]:
    """The drills `make drill` runs against the running platform, in a safe order."""
    cfg = settings_mod.load()
    base_url = f"http://127.0.0.1:{cfg.serving_port}"
    ingest = IngestTarget(
        topic=cfg.kafka_topic,
        bootstrap=cfg.kafka_bootstrap_servers,
        lake_dir=cfg.lake_dir,
        run=lambda: airflow_run("movielog_ingest", {"topic": "", "max_lines": None}),
    )
    postgres = PlatformPostgres()
    drills: dict[str, Callable[[], DrillResult]] = {
        "serving-worker": lambda: drill_serving_worker_kill(
            supervised_pid("serving"), cfg.serving_port, make_load(base_url)
        ),
        "kafka-ingest": lambda: drill_kafka_during_ingest(
            ingest, Broker.platform(), _new_events(ingest)
        ),
        "postgres-ingest": lambda: drill_postgres_during_ingest(ingest, postgres),
        "scheduler": lambda: drill_scheduler_kill(
            "movielog_ingest", {"topic": "", "max_lines": None}, cfg.airflow_port
        ),
        "postgres-retrain": lambda: drill_postgres_then_retrain(
            postgres, make_load(base_url), lambda: airflow_run("train_and_publish", {}, 3600)
        ),
    }
    own_load = ("serving-worker", "postgres-retrain")
    results = []
    for name in (n for n in DRILLS if n in names):
        print(f"drill {name} …", flush=True)
        drill = drills[name]
        before = supervise.restarts()
        try:
            result = drill() if name in own_load else _under_load(base_url, drill)
        except Exception as exc:  # noqa: BLE001 - a drill that breaks is a failed drill, reported
            result = DrillResult(name, detail=[f"FAILED: {type(exc).__name__}: {exc}"])
        after = supervise.restarts()
        counted = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
        result.detail.append(f"restarts counted by supervisord: {counted or 'none'}")
        results.append(result)
        print(format_table([result]).splitlines()[-1 - len(result.detail)], flush=True)
    return results


DRILLS = ("serving-worker", "kafka-ingest", "postgres-ingest", "scheduler", "postgres-retrain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.drill", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=DRILLS, help="run only these drills")
    args = parser.parse_args(argv)
    cfg = settings_mod.load()
    try:
        services.wait_until(
            lambda: services.port_open("127.0.0.1", cfg.serving_port), 5, "serving", None
        )
    except services.ServiceError:
        print(f"error: nothing serves on :{cfg.serving_port}; start the platform with `make run`")
        return 2
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results = platform_drills(list(args.only or DRILLS))
    load_kind = "wrk -t2 -c16" if shutil.which("wrk") else "HttpLoad x4"
    print(f"\nfault drills, {started}, serving load: {load_kind}")
    print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
