"""The monitoring stack as `make services-up` runs it: Prometheus, the Pushgateway,
Alertmanager and the alert receiver, started by `ops.monitoring.start` under their own
supervisord in a private RECS_VAR_DIR on free loopback ports, with 1 s scrapes, evaluations
and Alertmanager waits (the time-compressed knobs).

Prometheus scrapes a real gunicorn serving tier (2 workers, over a throwaway Postgres) and the
Pushgateway; an alert from a test-only rule (PROMETHEUS_EXTRA_RULES, `for: 0s`) on a pushed
metric travels Prometheus → Alertmanager → receiver into alerts.jsonl, and its resolution
follows when the metric is deleted. The shared platform's services are not touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from contracts import settings as settings_mod
from ops import alert_receiver, monitoring, services, supervise
from tests.support.harness import PrivateDatabase, ServingProcess, free_port, seed_version, wait_for

pytestmark = pytest.mark.integration

TEST_RULES = """\
groups:
  - name: monitoring-stack-test
    rules:
      - alert: MonitoringStackTestAlarm
        expr: recs_monitoring_test_alarm > 0
        for: 0s
        labels:
          severity: ticket
        annotations:
          summary: "test alarm {{ $labels.case }} at {{ $value }}"
"""
FAST = {
    "PROMETHEUS_SCRAPE_INTERVAL_S": "1",
    "PROMETHEUS_EVALUATION_INTERVAL_S": "1",
    "ALERTMANAGER_GROUP_WAIT_S": "1",
    "ALERTMANAGER_GROUP_INTERVAL_S": "1",
}
# URL overrides would point the stack's clients elsewhere
UNSET = ("PROMETHEUS_URL", "PUSHGATEWAY_URL", "ALERTMANAGER_URL")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def query(expr: str) -> list[dict]:
    """An instant PromQL query against the stack's Prometheus; the result vector."""
    base = settings_mod.load().prometheus_url
    doc = get_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def push(job: str, text: str) -> None:
    """PUT a group of metrics on the Pushgateway (what a DAG task does)."""
    url = f"{settings_mod.load().pushgateway_url}/metrics/job/{job}"
    request = urllib.request.Request(url, data=text.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def delete(job: str) -> None:
    url = f"{settings_mod.load().pushgateway_url}/metrics/job/{job}"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5):
        pass


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def records(**match) -> list[dict]:
    """alerts.jsonl records whose fields (or labels, for `case`) match."""
    found = alert_receiver.read_records(settings_mod.load().alerts_log)
    return [
        r
        for r in found
        if all((r["labels"].get(k) if k == "case" else r.get(k)) == v for k, v in match.items())
    ]


@pytest.fixture(scope="module")
def serving():
    """A real gunicorn serving tier with a published version, over a throwaway Postgres."""
    db = PrivateDatabase().create()
    seed_version(db.owner_url, "mon-v1", "model-mon", range(1, 51))
    server = ServingProcess(db.reader_url, extra_env={"SERVING_STATEMENT_TIMEOUT_MS": "2000"})
    server.start()
    yield server
    server.stop()
    db.destroy()


@pytest.fixture(scope="module")
def stack(serving):
    """The four programs, started by ops.monitoring.start in a private var dir."""
    var = Path(tempfile.mkdtemp(prefix="recs-monitoring-"))
    rules = var / "test-rules"
    rules.mkdir()
    (rules / "stack-test.yml").write_text(TEST_RULES)
    knobs = {
        "RECS_VAR_DIR": str(var),
        "SERVING_PORT": str(serving.port),
        "PROMETHEUS_PORT": str(free_port()),
        "PUSHGATEWAY_PORT": str(free_port()),
        "ALERTMANAGER_PORT": str(free_port()),
        "ALERT_RECEIVER_PORT": str(free_port()),
        "PROMETHEUS_EXTRA_RULES": str(rules),
        **FAST,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in UNSET:
            patch.delenv(name, raising=False)
        for name, value in knobs.items():
            patch.setenv(name, value)
        ports = [int(knobs[k]) for k in knobs if k.endswith("_PORT") and k != "SERVING_PORT"]
        try:
            began = time.monotonic()
            assert monitoring.start(quiet=True) is True
            print(f"\nmonitoring stack ready in {time.monotonic() - began:.1f} s")
            yield var
        finally:
            stopped = monitoring.stop(quiet=True)
            running = supervise.programs_running()
            supervise.shutdown()
            shutil.rmtree(var, ignore_errors=True)
        # stop leaves nothing running (asserted after the cleanup above has happened)
        assert stopped and not set(running) & set(monitoring.PROGRAMS)
        assert not any(services.port_open("127.0.0.1", port) for port in ports)


def test_starting_again_is_a_no_op_and_every_program_is_healthy(stack):
    assert monitoring.start(quiet=True) is False
    verdicts = {v.service: v for v in services.health()}
    assert [
        f"{n}: {verdicts[n].detail}" for n in monitoring.PROGRAMS if not verdicts[n].healthy
    ] == []
    row = services.status(list(verdicts.values()))["monitoring"]
    assert row["running"] and row["address"] == settings_mod.load().prometheus_url
    assert (stack / "monitoring" / "prometheus.yml").exists()


def test_prometheus_scrapes_every_serving_worker_and_the_pushgateway(stack, serving):
    def targets_up() -> dict[str, str]:
        active = get_json(f"{settings_mod.load().prometheus_url}/api/v1/targets")["data"]
        health = {t["labels"]["job"]: t["health"] for t in active["activeTargets"]}
        return health if health == {"serving": "up", "pushgateway": "up"} else {}

    wait_for(targets_up, 30, "serving and pushgateway targets up", interval=0.5)
    sent = 30
    for user in range(1, sent + 1):  # a new connection each: the two workers share them
        with urllib.request.urlopen(f"{serving.base_url}/recommend/{user}", timeout=5) as resp:
            assert resp.status == 200
    total = 'sum(recs_requests_total{job="serving",route="recommend"})'

    def counted() -> float:
        result = query(total)
        return float(result[0]["value"][1]) if result else 0.0

    # Every request counted once, whichever worker served it: the scrape merges the workers.
    wait_for(lambda: counted() == sent, 30, f"{total} == {sent}", interval=0.5)
    published = query('recs_published_info{job="serving"}')
    assert {r["metric"]["model_version"] for r in published} == {"model-mon"}


def test_a_pushed_value_is_queryable_in_prometheus(stack):
    case = uuid.uuid4().hex[:8]
    push("monitoring_stack_test", f'recs_monitoring_test_value{{case="{case}"}} 42.5\n')
    expr = f'recs_monitoring_test_value{{case="{case}"}}'
    [sample] = wait_for(lambda: query(expr), 30, expr, interval=0.5)
    # honor_labels: the series carries the pushing job's name, not the gateway's
    assert sample["metric"]["job"] == "monitoring_stack_test"
    assert float(sample["value"][1]) == 42.5
    delete("monitoring_stack_test")


def test_service_health_reaches_prometheus_through_the_pushgateway(stack):
    """The health exporter (`status --prom --every S`) pushes the verdicts it writes."""
    exporter = subprocess.Popen(
        [sys.executable, "-m", "ops.services", "status", "--prom", "--every", "1"],
        cwd=settings_mod.REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        up = 'recs_service_up{job="recs_services"}'
        wanted = {*monitoring.PROGRAMS, "postgres"}

        def exported() -> dict[str, float]:
            values = {r["metric"]["service"]: float(r["value"][1]) for r in query(up)}
            return values if wanted <= set(values) else {}

        values = wait_for(exported, 30, up, interval=0.5)
    finally:
        exporter.terminate()
        output = exporter.communicate(timeout=10)[0]
    assert all(values[name] == 1 for name in monitoring.PROGRAMS), values
    assert values["postgres"] == 0  # not supervised in this private var dir: unhealthy
    assert (stack / "metrics" / "services.prom").exists()
    assert "push to" in output and "ok" in output, output


def test_an_alert_reaches_alerts_jsonl_and_its_resolution_follows(stack):
    case = uuid.uuid4().hex[:8]
    job = f"alarm_{case}"
    pushed_at = time.monotonic()
    push(job, f'recs_monitoring_test_alarm{{case="{case}"}} 3\n')
    [fired] = wait_for(lambda: records(case=case, status="firing"), 60, "firing record", 0.2)
    fired_s = time.monotonic() - pushed_at
    assert fired["alertname"] == "MonitoringStackTestAlarm"
    assert fired["severity"] == "ticket"
    assert fired["annotations"]["summary"] == f"test alarm {case} at 3"
    assert fired["labels"]["job"] == job
    assert list(fired) == list(alert_receiver.RECORD_FIELDS)
    receiver = f"http://127.0.0.1:{settings_mod.load().alert_receiver_port}"
    active = get_json(f"{receiver}/alerts/active")
    assert fired["fingerprint"] in {a["fingerprint"] for a in active}

    deleted_at = time.monotonic()
    delete(job)
    [resolved] = wait_for(lambda: records(case=case, status="resolved"), 60, "resolved record", 0.2)
    resolved_s = time.monotonic() - deleted_at
    assert resolved["fingerprint"] == fired["fingerprint"]
    assert resolved["endsAt"] > resolved["startsAt"] == fired["startsAt"]
    active = get_json(f"{receiver}/alerts/active")
    assert fired["fingerprint"] not in {a["fingerprint"] for a in active}
    assert len(records(case=case)) == 2  # one line per change, no duplicates
    print(
        f"\nalert in alerts.jsonl {fired_s:.1f} s after the push, "
        f"resolved {resolved_s:.1f} s after the delete"
    )


def test_the_receiver_refuses_a_malformed_payload_and_keeps_running(stack):
    cfg = settings_mod.load()
    url = f"http://127.0.0.1:{cfg.alert_receiver_port}"
    pid = supervise.pid("alert-receiver")
    before = cfg.alerts_log.read_bytes() if cfg.alerts_log.exists() else b""
    status, doc = post(f"{url}/alerts", b'{"version": "4", "alerts": [{"status": "firing"}]}')
    assert status == 400 and doc["error"] == "alerts[0].labels must be an object of strings"
    assert post(f"{url}/alerts", b"\x00not json")[0] == 400
    assert get_json(f"{url}/healthz") == {"status": "ok"}
    assert supervise.pid("alert-receiver") == pid  # the same process: it did not crash
    assert supervise.restarts().get("alert-receiver", 0) == 0
    assert (cfg.alerts_log.read_bytes() if cfg.alerts_log.exists() else b"") == before
    log = (cfg.log_dir / "alert-receiver.log").read_text()
    assert "rejected POST /alerts" in log and "labels must be an object of strings" in log


def test_pushed_figures_survive_a_pushgateway_restart(stack):
    push("monitoring_restart_test", "recs_monitoring_test_kept 7\n")
    assert supervise.stop("pushgateway")
    assert not services.port_open("127.0.0.1", settings_mod.load().pushgateway_port)
    assert monitoring.start(quiet=True) is True  # starts the one program that is down
    with urllib.request.urlopen(f"{settings_mod.load().pushgateway_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'recs_monitoring_test_kept{instance="",job="monitoring_restart_test"} 7' in text
    delete("monitoring_restart_test")
