"""Health that tells the truth: each service judged by its own signal and its supervisor.

A service is healthy when supervisord has its process RUNNING *and* its own signal answers:
Postgres a `SELECT 1`, Kafka a metadata request that lists a broker, the Airflow API server
`/api/v2/monitor/health` (metadatabase), the scheduler, DAG processor and triggerer their
heartbeats in that same document, the serving tier `/readyz`, the metadata API `/healthz`;
the simulator's live loop has no endpoint and is judged by its process. Unhealthy rows say
why and since when (the process's exit time, the last heartbeat, or the first `status` that
saw the failure, remembered in .var/run/health.json). `prometheus_text` exports the same rows
for a textfile collector and `push_prometheus` to the Pushgateway, where the local Prometheus
scrapes them (ops/prometheus/alerts-services.yml alerts on them). The monitoring programs are
judged by `/-/ready` (Prometheus, Pushgateway, Alertmanager) and `/healthz` (alert receiver).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from contracts import settings as settings_mod
from ops import supervise

AIRFLOW_COMPONENTS = {
    "airflow-scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "airflow-dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
    "airflow-triggerer": ("triggerer", "latest_triggerer_heartbeat"),
}


@dataclass
class Health:
    """One service's verdict: healthy or not, why, since when (unix time), restarts."""

    service: str
    healthy: bool
    detail: str = ""
    since: float | None = None
    restarts: int = 0


# ---------------------------------------------------------------------------- pure parsing
def _timestamp(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def parse_airflow_health(doc: dict) -> dict[str, Health]:
    """Airflow's /api/v2/monitor/health document → a verdict per component program.

    The API server is healthy when it answered and its metadatabase is healthy; each other
    component when Airflow calls its last heartbeat recent (status "healthy").
    """
    db_ok = doc.get("metadatabase", {}).get("status") == "healthy"
    verdicts = {
        "airflow-apiserver": Health(
            "airflow-apiserver", db_ok, "" if db_ok else "metadatabase unhealthy"
        )
    }
    for program, (key, beat_key) in AIRFLOW_COMPONENTS.items():
        part = doc.get(key) or {}
        beat = part.get(beat_key)
        ok = part.get("status") == "healthy"
        detail = "" if ok else f"{key} {part.get('status') or 'never seen'}, last heartbeat {beat}"
        verdicts[program] = Health(program, ok, detail, None if ok else _timestamp(beat))
    return verdicts


def process_verdict(name: str, process: dict | None) -> Health | None:
    """A verdict from supervisord's getProcessInfo alone: None when the process is RUNNING."""
    if process is None:
        return Health(name, False, "not supervised (supervisord or the program is not running)")
    state = process["statename"]
    if state == "RUNNING":
        return None
    error = process.get("spawnerr") or ""
    details = {
        "STOPPED": "stopped by an operator (supervisord does not restart it)",
        "STARTING": "starting (not yet up for its startsecs)",
        "STOPPING": "stopping",
        "BACKOFF": f"failed to start, retrying with back-off: {error}",
        "FATAL": f"gave up after repeated failed starts: {error}",
        "EXITED": f"exited with status {process.get('exitstatus')}",
    }
    # `stop` is supervisord's time of the last exit (0: never exited); a stop in progress or a
    # program never started is unhealthy from now on.
    exited = state in ("STOPPED", "EXITED", "FATAL", "STARTING", "BACKOFF")
    since = process.get("stop") if exited and process.get("stop") else process.get("now")
    return Health(name, False, details.get(state, state.lower()).rstrip(": "), since)


# ---------------------------------------------------------------------------- probes
def _http_ok(url: str) -> bool:
    # Loopback URLs built from settings.
    with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - http://127.0.0.1 only
        return resp.status == 200


def _probe(check: Callable[[], bool], name: str, what: str) -> Health:
    try:
        ok = bool(check())
        error = ""
    except Exception as exc:  # noqa: BLE001 - a probe fails in many ways; the text is the finding
        ok, error = False, f": {exc}"
    return Health(name, ok, "" if ok else f"{what} failed{error}")


def _airflow_verdicts(port: int) -> dict[str, Health]:
    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return parse_airflow_health(json.loads(resp.read()))
    except Exception as exc:  # noqa: BLE001 - an unreachable API is the finding, whatever raised
        down = Health("airflow-apiserver", False, f"{url} did not answer: {exc}")
        others = {
            p: Health(p, False, "health unknown: the API server did not answer")
            for p in AIRFLOW_COMPONENTS
        }
        return {"airflow-apiserver": down, **others}


def signals() -> dict[str, Callable[[], Health]]:
    """Each supervised program's own health probe (Airflow's are fetched once, lazily)."""
    from ops import monitoring, services

    cfg = settings_mod.load()
    cluster = services.platform_postgres()
    airflow: dict[str, dict[str, Health]] = {}

    def component(name: str) -> Callable[[], Health]:
        def check() -> Health:
            if "doc" not in airflow:
                airflow["doc"] = _airflow_verdicts(cfg.airflow_port)
            return airflow["doc"][name]

        return check

    serving = f"http://127.0.0.1:{cfg.serving_port}/readyz"
    return {
        "postgres": lambda: _probe(
            lambda: services.postgres_answers(cluster), "postgres", "SELECT 1"
        ),
        "kafka": lambda: _probe(
            lambda: services.kafka_ready(cfg.kafka_bootstrap_servers), "kafka", "metadata request"
        ),
        **{name: component(name) for name in services.AIRFLOW_PROGRAMS},
        "serving": lambda: _probe(lambda: _http_ok(serving), "serving", f"GET {serving}"),
        "metadata-api": lambda: _probe(
            lambda: _http_ok(f"{cfg.metadata_api_url}/healthz"), "metadata-api", "GET /healthz"
        ),
        "traffic": lambda: Health("traffic", True),
        **{
            name: _url_probe(name, url)  # /-/ready of the three tools, the receiver's /healthz
            for name, url in monitoring.ready_urls().items()
        },
    }


def _url_probe(name: str, url: str) -> Callable[[], Health]:
    return lambda: _probe(lambda: _http_ok(url), name, f"GET {url}")


# ---------------------------------------------------------------------------- verdicts
def _state_file() -> Path:
    return settings_mod.load().var_dir / "run" / "health.json"


def remember(verdicts: list[Health], now: float) -> None:
    """Fill in `since` from the first status that saw each failure, and forget recoveries."""
    path = _state_file()
    try:
        seen = json.loads(path.read_text())
    except (OSError, ValueError):
        seen = {}
    checked = {v.service for v in verdicts}
    seen = {name: since for name, since in seen.items() if name in checked}
    for verdict in verdicts:
        if verdict.healthy:
            seen.pop(verdict.service, None)
            continue
        first = min(seen.get(verdict.service, now), verdict.since or now)
        seen[verdict.service] = verdict.since = first
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seen, sort_keys=True))


def check(programs: list[str]) -> list[Health]:
    """A verdict per program, in order: supervisor state first, then the service's signal."""
    probes = signals()
    alive = supervise.alive()
    counts = supervise.restarts() if alive else {}
    verdicts = []
    for name in programs:
        process = supervise.info(name) if alive and supervise.known(name) else None
        verdict = process_verdict(name, process)
        if verdict is None and name in probes:
            verdict = probes[name]()
        verdict = verdict or Health(name, True)
        verdict.restarts = counts.get(name, 0)
        verdicts.append(verdict)
    remember(verdicts, time.time())
    return verdicts


def prometheus_text(verdicts: list[Health], now: float) -> str:
    """The verdicts in Prometheus text exposition format (for a textfile collector)."""
    lines = [
        "# HELP recs_service_up 1 when its process runs and its own health signal answers.",
        "# TYPE recs_service_up gauge",
        *(f'recs_service_up{{service="{v.service}"}} {int(v.healthy)}' for v in verdicts),
        "# HELP recs_service_restarts_total Automatic restarts by supervisord since it started.",
        "# TYPE recs_service_restarts_total counter",
        *(f'recs_service_restarts_total{{service="{v.service}"}} {v.restarts}' for v in verdicts),
        "# HELP recs_service_unhealthy_since_seconds Unix time it became unhealthy (0: healthy).",
        "# TYPE recs_service_unhealthy_since_seconds gauge",
        *(
            f'recs_service_unhealthy_since_seconds{{service="{v.service}"}} '
            f"{0 if v.healthy else round(v.since or now, 3)}"
            for v in verdicts
        ),
        "# HELP recs_service_health_checked_seconds Unix time of this check.",
        "# TYPE recs_service_health_checked_seconds gauge",
        f"recs_service_health_checked_seconds {round(now, 3)}",
    ]
    return "\n".join(lines) + "\n"


def push_prometheus(verdicts: list[Health], pushgateway_url: str, now: float) -> None:
    """Replace the health group (job `recs_services`) on the Pushgateway with these verdicts,
    so Prometheus scrapes them there (raises OSError when the Pushgateway does not answer)."""
    request = urllib.request.Request(  # noqa: S310 - the Pushgateway URL from settings
        f"{pushgateway_url}/metrics/job/recs_services",
        data=prometheus_text(verdicts, now).encode(),
        method="PUT",
        headers={"Content-Type": "text/plain; version=0.0.4"},
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310
        pass


def write_prometheus(verdicts: list[Health], path: Path, now: float) -> None:
    """Write the textfile atomically (a collector never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(prometheus_text(verdicts, now))
    tmp.replace(path)
