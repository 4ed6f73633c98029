"""Batch figures for the Pushgateway (jobs/monitoring.py): what each step pushes, the wire
request it makes, and that a Pushgateway that is down, slow or failing never fails the step."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from contracts import metrics as m
from jobs import monitoring
from jobs.monitoring import Sample
from jobs.train.gate import GateDecision
from tests.support.harness import free_port

pytestmark = pytest.mark.unit


class Gateway(ThreadingHTTPServer):
    """A loopback HTTP server that records each request and answers with `status`."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.status, self.delay_s = status, delay_s
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.server.requests.append((self.command, self.path, body))
        time.sleep(self.server.delay_s)  # a slow gateway, not synchronisation
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def gateway():
    server = Gateway()
    yield server
    server.shutdown()
    server.server_close()


def test_push_replaces_the_steps_group_with_its_gauges(gateway):
    samples = [
        Sample(m.GATE_PASSED, 0.0),
        Sample(m.GATE_SCORE, 0.25, {"model": "candidate"}),
        Sample(m.GATE_SCORE, None, {"model": "production"}),  # not measured: left out
        Sample(m.DRIFT, float("nan"), {"statistic": "rating_kl"}),  # NaN: left out too
    ]
    assert monitoring.push(m.GROUP_GATE, samples, gateway.url)
    [(method, path, body)] = gateway.requests
    assert (method, path) == ("PUT", "/metrics/job/train_gate")
    assert "recs_gate_passed 0.0" in body
    assert 'recs_gate_score{model="candidate"} 0.25' in body
    assert 'model="production"' not in body and "recs_snapshot_drift" not in body


def test_an_unreachable_pushgateway_is_a_warning_not_an_error(caplog):
    closed = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="jobs.monitoring"):
        assert monitoring.push(m.GROUP_GATE, [Sample(m.GATE_PASSED, 1.0)], closed) is False
    assert "could not push train_gate" in caplog.text


def test_a_failing_or_slow_pushgateway_is_a_warning_within_the_timeout(caplog, monkeypatch):
    failing, slow = Gateway(status=500), Gateway(delay_s=5)
    monkeypatch.setattr(monitoring, "PUSH_TIMEOUT_S", 0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="jobs.monitoring"):
            assert not monitoring.push(m.GROUP_GATE, [Sample(m.GATE_PASSED, 1.0)], failing.url)
            started = time.monotonic()
            assert not monitoring.push(m.GROUP_GATE, [Sample(m.GATE_PASSED, 1.0)], slow.url)
            assert time.monotonic() - started < 3
    finally:
        for server in (failing, slow):
            server.shutdown()
            server.server_close()
    assert caplog.text.count("could not push train_gate") == 2


def test_a_figure_that_cannot_be_read_is_a_warning_and_nothing_is_pushed(gateway, caplog):
    def broken():
        raise ConnectionError("database down")

    with caplog.at_level(logging.WARNING, logger="jobs.monitoring"):
        assert monitoring.report(m.GROUP_MARK, broken) is False
    assert "could not collect ingest_mark: database down" in caplog.text
    assert gateway.requests == []


def test_the_pipeline_step_carries_on_when_the_pushgateway_is_down(monkeypatch):
    monkeypatch.setenv("PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    decision = gate_decision(passed=False)
    assert monitoring.report_gate(decision, decided_at=1.0) is False


def gate_decision(passed: bool) -> GateDecision:
    return GateDecision(
        candidate="item_knn-1",
        passed=passed,
        reason="worse than production",
        publish=None,
        metric="ndcg@20",
        users=300,
        test_units=300,
        candidate_score=0.21,
        popularity="popularity-1",
        popularity_score=0.1,
        vs_popularity=None,
        production="item_knn-0",
        production_score=0.3,
        vs_production=None,
        tolerance=0.05,
        min_users=100,
    )


def values(samples: list[Sample]) -> dict[tuple, float | None]:
    return {(s.metric.name, *sorted(s.labels.items())): s.value for s in samples}


def test_gate_figures_say_rejected_when_and_how_it_scored():
    got = values(monitoring.gate_samples(gate_decision(passed=False), decided_at=1700000000.0))
    assert got[("recs_gate_passed",)] == 0.0
    assert got[("recs_training_last_run_timestamp_seconds",)] == 1700000000.0
    assert got[("recs_gate_score", ("model", "candidate"))] == 0.21
    assert got[("recs_gate_score", ("model", "production"))] == 0.3


def test_validation_figures_carry_drift_and_its_limits():
    facts = {"reject_rate": 0.01, "rating_kl": 0.7, "new_user_share": None, "volume_ratio": 2.0}
    limits = {
        "max_rating_kl": 0.5,
        "max_new_user_share": 0.9,
        "max_new_movie_share": 0.5,
        "min_volume_ratio": 0.05,
        "max_volume_ratio": 20.0,
    }
    got = values(monitoring.validation_samples(facts, False, limits))
    assert got[("recs_snapshot_validation_success",)] == 0.0
    assert got[("recs_snapshot_drift", ("statistic", "rating_kl"))] == 0.7
    assert got[("recs_snapshot_drift", ("statistic", "new_user_share"))] is None
    assert got[("recs_snapshot_drift_limit", ("bound", "max"), ("statistic", "rating_kl"))] == 0.5
    assert got[("recs_snapshot_drift_limit", ("bound", "min"), ("statistic", "volume_ratio"))] == (
        0.05
    )


def test_snapshot_figures_are_timestamps_and_the_latest_verdict():
    row = {
        "last_accepted": datetime(2025, 1, 1, 10, tzinfo=UTC),
        "newest_event": datetime(2025, 1, 1, 9, 30),  # naive: the stream clock, UTC
        "quarantined": 2,
        "latest_status": "quarantined",
        "latest_judged": datetime(2025, 1, 1, 11, tzinfo=UTC),
    }
    got = values(monitoring.snapshot_samples(row))
    assert got[("recs_snapshot_last_accepted_timestamp_seconds",)] == 1735725600.0
    assert got[("recs_snapshot_newest_event_timestamp_seconds",)] == 1735723800.0
    assert got[("recs_snapshot_quarantined",)] == 1.0
    assert got[("recs_snapshots_quarantined",)] == 2.0
    none_judged = dict(row, latest_status=None, latest_judged=None, last_accepted=None)
    assert values(monitoring.snapshot_samples(none_judged))[("recs_snapshot_quarantined",)] is None


def test_online_figures_label_roll_ups_and_convert_latency_to_seconds():
    hour = datetime(2025, 1, 1, 10)
    row = {
        "hour": hour,
        "availability": 0.99,
        "latency_p99_ms": 120.0,
        "personalised_share": 0.8,
        "online_accuracy": 0.3,
        "lists": 500,
    }
    rows = [
        dict(row, model_version="*", variant="*"),
        dict(row, model_version="knn-1", variant=""),
    ]
    got = values(monitoring.online_samples(rows, baseline=0.4))
    overall = (("model_version", "all"), ("variant", "all"))
    assert got[("recs_online_latency_p99_seconds", *overall)] == 0.12
    assert got[("recs_online_accuracy_ratio", ("model_version", "knn-1"), ("variant", "none"))]
    assert got[("recs_online_accuracy_baseline_ratio",)] == 0.4
    assert got[("recs_online_hour_timestamp_seconds",)] == 1735725600.0
    assert monitoring.online_samples([], baseline=None) == []


def test_model_figures_name_what_the_pointer_serves():
    published = datetime(2025, 1, 1, 10, tzinfo=UTC)
    pointer = {"reco_version": "reco-m1", "model_version": "m1", "published_at": published}
    got = values(monitoring.model_samples(pointer))
    assert got[("recs_model_published_timestamp_seconds",)] == 1735725600.0
    labels = (("model_version", "m1"), ("reco_version", "reco-m1"))
    assert got[("recs_model_production_info", *labels)] == 1.0
    assert monitoring.model_samples({"reco_version": None}) == []


def test_every_pushed_metric_is_declared_once():
    names = [metric.name for metric in m.PUSHED]
    assert len(names) == len(set(names))
    declared = {v for v in vars(m).values() if isinstance(v, m.Metric)}
    assert declared == set(m.PUSHED)
