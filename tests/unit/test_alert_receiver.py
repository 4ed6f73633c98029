"""The alert receiver without Alertmanager: parsing the webhook document, the JSON-lines log
(whole lines under concurrent appends), which alerts are active, and the HTTP answers of the
server run in this process on a free loopback port."""

from __future__ import annotations

import http.client
import json
import threading
from datetime import UTC, datetime

import pytest

from ops import alert_receiver
from ops.alert_receiver import AlertLog, BadPayload, active, parse_webhook, read_records

pytestmark = pytest.mark.unit

RECEIVED = datetime(2026, 12, 5, 2, 27, 16, 295000, tzinfo=UTC)


def alert(status: str = "firing", fingerprint: str = "3b9765874809eede", **labels) -> dict:
    """One alert as Alertmanager 0.25 sends it (webhook version 4)."""
    return {
        "status": status,
        "labels": {"alertname": "ServingDown", "severity": "page", **labels},
        "annotations": {"summary": "serving is down"},
        "startsAt": "2026-12-05T02:27:15.292Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-05T02:30:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="ServingDown"}',
            "truncatedAlerts": 0,
            "status": alerts[0]["status"] if alerts else "firing",
            "receiver": "alert-receiver",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": list(alerts),
        }
    ).encode()


def test_one_record_per_alert_with_the_documented_fields_in_order():
    no_severity = alert(fingerprint="f2")
    del no_severity["labels"]["severity"]
    del no_severity["annotations"]
    records = parse_webhook(webhook(alert(), no_severity), RECEIVED)
    assert [list(r) for r in records] == [list(alert_receiver.RECORD_FIELDS)] * 2
    first, second = records
    assert first == {
        "received_at": "2026-12-05T02:27:16.295Z",
        "status": "firing",
        "alertname": "ServingDown",
        "severity": "page",
        "labels": {"alertname": "ServingDown", "severity": "page"},
        "annotations": {"summary": "serving is down"},
        "startsAt": "2026-12-05T02:27:15.292Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "3b9765874809eede",
    }
    assert second["severity"] is None and second["annotations"] == {}


def test_an_empty_alert_list_records_nothing():
    assert parse_webhook(webhook(), RECEIVED) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"version": "3", "alerts": []}).encode(), 'version must be "4"'),
        (json.dumps({"version": "4"}).encode(), "alerts must be a list"),
        (webhook({**alert(), "status": "pending"}), "alerts[0].status must be firing or resolved"),
        (webhook(alert(), "oops"), "alerts[1] is not an object"),
        (webhook({**alert(), "labels": {"severity": "page"}}), "alerts[0].labels has no alertname"),
        (webhook({**alert(), "labels": {"alertname": 3}}), "alerts[0].labels must be"),
        (webhook({**alert(), "annotations": []}), "alerts[0].annotations must be"),
        (webhook({k: v for k, v in alert().items() if k != "fingerprint"}), "fingerprint"),
        (webhook({**alert(), "startsAt": None}), "alerts[0].startsAt must be a string"),
    ],
)
def test_a_bad_document_is_refused_with_its_reason(body, reason):
    with pytest.raises(BadPayload, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_webhook(body, RECEIVED)


def test_concurrent_appends_leave_whole_lines(tmp_path):
    log = AlertLog(tmp_path / "log" / "alerts.jsonl")  # the directory is created on demand
    batch = parse_webhook(webhook(*(alert(fingerprint=f"f{i}") for i in range(5))), RECEIVED)

    def writer() -> None:
        for _ in range(40):
            log.append(batch)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = log.path.read_text().splitlines()
    assert len(lines) == 8 * 40 * 5
    assert all(json.loads(line)["alertname"] == "ServingDown" for line in lines)


def test_active_alerts_are_those_whose_last_record_fires(tmp_path):
    path = tmp_path / "alerts.jsonl"
    log = AlertLog(path)
    log.append(parse_webhook(webhook(alert(fingerprint="a"), alert(fingerprint="b")), RECEIVED))
    log.append(parse_webhook(webhook(alert("resolved", fingerprint="a")), RECEIVED))
    log.append(parse_webhook(webhook(alert(fingerprint="c")), RECEIVED))
    with path.open("a") as out:
        out.write('{"status": "firing", "finger')  # a line cut short by a crash
    records = read_records(path)
    assert [r["fingerprint"] for r in records] == ["a", "b", "a", "c"]
    assert [r["fingerprint"] for r in active(records)] == ["b", "c"]
    log.append(parse_webhook(webhook(alert(fingerprint="a")), RECEIVED))  # fires again
    assert [r["fingerprint"] for r in active(read_records(path))] == ["b", "c", "a"]
    assert read_records(tmp_path / "none.jsonl") == []


@pytest.fixture
def server(tmp_path):
    srv = alert_receiver.make_server(0, tmp_path / "alerts.jsonl")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(server, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    answer = resp.status, json.loads(resp.read())
    conn.close()
    return answer


def test_the_server_records_refuses_and_answers(server, tmp_path):
    assert request(server, "GET", "/healthz") == (200, {"status": "ok"})
    assert request(server, "POST", "/alerts", webhook(alert())) == (200, {"recorded": 1})
    status, doc = request(server, "POST", "/alerts", b'{"version": "4", "alerts": {}}')
    assert (status, doc) == (400, {"error": "alerts must be a list"})
    assert request(server, "POST", "/elsewhere", webhook(alert()))[0] == 404
    assert request(server, "GET", "/nothing")[0] == 404
    status, active_now = request(server, "GET", "/alerts/active")
    assert status == 200 and [a["alertname"] for a in active_now] == ["ServingDown"]
    # Only the accepted document was written.
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1


def test_a_post_without_a_length_or_too_long_is_refused(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    conn.putrequest("POST", "/alerts")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 411 and "Content-Length" in json.loads(resp.read())["error"]
    conn.close()
    big = {"Content-Length": str(alert_receiver.MAX_BODY + 1)}
    assert request(server, "POST", "/alerts", b"", headers=big)[0] == 413
