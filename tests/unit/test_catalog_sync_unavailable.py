"""Catalogue sync without a metadata API: the probe, the breaker, the status and its records."""

from __future__ import annotations

import json
import logging
import math
import socket
import time

import pytest

from jobs.ingest import catalog as catalog_sync
from tests.support.json_api import JsonHandler, json_api

pytestmark = pytest.mark.unit


@pytest.fixture
def closed_port():
    """A loopback port bound by no listener: connecting is refused, and nobody can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


class Answer(JsonHandler):
    """GET /user/<code> answers with HTTP status <code>."""

    def do_GET(self):
        self.send_json(int(self.path.rsplit("/", 1)[1]), {})


@pytest.fixture
def answer_url():
    with json_api(Answer) as url:
        yield url


def test_probe_of_a_closed_port_is_refused_within_seconds(closed_port):
    client = catalog_sync.MetadataClient(f"http://127.0.0.1:{closed_port}")
    started = time.monotonic()
    reason = client.probe("user", 1)
    assert time.monotonic() - started < 10  # generous: the point is seconds, not minutes
    assert reason is not None and reason.startswith("GET /user/1: ")
    assert "Connection refused" in reason and "HTTPConnectionPool" not in reason


def test_probe_of_a_silent_api_times_out(silent_port):
    client = catalog_sync.MetadataClient(f"http://127.0.0.1:{silent_port}")
    started = time.monotonic()
    assert (
        client.probe("movie", "a+1999", timeout=0.3) == "GET /movie/a+1999: no answer within 0.3 s"
    )
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("code", [200, 404, 429])
def test_probe_contract_answers_mean_up(answer_url, code):
    assert catalog_sync.MetadataClient(answer_url).probe("user", code) is None


@pytest.mark.parametrize("code", [500, 503, 401])
def test_probe_other_answers_mean_unavailable(answer_url, code):
    reason = catalog_sync.MetadataClient(answer_url).probe("user", code)
    assert reason == f"GET /user/{code} answered {code}"


class FakeClient(catalog_sync.MetadataClient):
    """The real breaker over scripted answers: `answers(kind, id)` -> (status, doc)."""

    def __init__(self, answers, probe_reason: str | None = None):
        super().__init__("http://fake.invalid", max_attempts=1)
        self.answers = answers
        self.probe_reason = probe_reason
        self.asked: list[tuple[str, object]] = []
        self.probed: list[tuple[str, object]] = []

    def probe(self, kind, ident, timeout=catalog_sync.PROBE_TIMEOUT):
        self.probed.append((kind, ident))
        return self.probe_reason

    def _get(self, kind, ident):
        self.asked.append((kind, ident))
        status, doc = self.answers(kind, ident)
        if status == "failed":
            self.last_error = f"GET /{kind}/{ident} answered 503"
        return status, doc


def known(kind, ident):
    return "known", {"id": ident}


def test_probe_failing_fetches_nothing_and_marks_unavailable():
    client = FakeClient(known, probe_reason="GET /user/1: [Errno 111] Connection refused")
    got = catalog_sync.fetch(client, [1, 2, 3], ["a+1999", "b+2000"], workers=1)
    assert got.status == "unavailable" and got.reason == client.probe_reason
    assert client.probed == [("user", 1)] and client.asked == []
    assert got.users == [catalog_sync.FAILED] * 3 and got.movies == [catalog_sync.FAILED] * 2


def test_api_up_and_every_id_answered_is_complete():
    client = FakeClient(lambda k, i: ("unknown", None) if i == "gone+1999" else known(k, i))
    got = catalog_sync.fetch(client, [], ["a+1999", "gone+1999"], workers=1)
    assert (got.status, got.reason) == ("complete", "")
    assert client.probed == [("movie", "a+1999")]
    assert [s for s, _ in got.movies] == ["known", "unknown"]


def test_a_few_failed_ids_are_partial():
    client = FakeClient(lambda k, i: ("failed", None) if i in (2, 5) else known(k, i))
    got = catalog_sync.fetch(client, list(range(1, 11)), [], workers=1)
    assert got.status == "partial" and not client.broken
    assert got.reason == "2 ids failed, last GET /user/5 answered 503"


def test_breaker_tripping_mid_run_is_unavailable_not_an_error():
    dead_after = 3  # the API answers three users, then stops
    client = FakeClient(lambda k, i: known(k, i) if i <= dead_after else ("failed", None))
    got = catalog_sync.fetch(client, list(range(1, 31)), ["a+1999"], workers=1)
    assert client.broken and got.status == "unavailable"
    assert got.reason.startswith(f"{catalog_sync.BREAKER_FAILURES} ids in a row failed, last GET")
    # asked until the breaker tripped, then nothing more (the movie is not asked either)
    assert len(client.asked) == dead_after + catalog_sync.BREAKER_FAILURES
    assert [s for s, _ in got.users[:dead_after]] == ["known"] * dead_after
    assert got.movies == [catalog_sync.FAILED]


def test_nothing_to_fetch_does_not_ask_the_api():
    client = FakeClient(known, probe_reason="GET /user/1: [Errno 111] Connection refused")
    got = catalog_sync.fetch(client, [], [], workers=1)
    assert (got.status, got.reason) == ("complete", "") and client.probed == []


def result(tmp_path, **fields) -> catalog_sync.SyncResult:
    base = {
        "users_seen": 5, "movies_seen": 4, "users_fetched": 0, "movies_fetched": 0,
        "unknown": 0, "failed": 0, "dims_dir": str(tmp_path / "dims"), "status": "complete",
        "reason": "", "api_url": "http://127.0.0.1:1", "newest_snapshot": "s000002",
        "newest_event_time": "2025-03-01T23:59:58",
    }  # fmt: skip
    return catalog_sync.SyncResult(**{**base, **fields})


def metrics(path) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def test_unavailable_is_recorded_in_the_status_file_the_metrics_and_one_warning(tmp_path, caplog):
    reason = "GET /user/1: [Errno 111] Connection refused"
    res = result(tmp_path, status="unavailable", reason=reason, failed=9)
    with caplog.at_level(logging.INFO, logger="jobs.ingest.catalog"):
        path = catalog_sync.record(res)
    assert path == tmp_path / "dims" / catalog_sync.STATUS_FILE
    doc = json.loads(path.read_text())
    assert doc["status"] == "unavailable" and doc["reason"] == reason
    assert doc["api_url"] == "http://127.0.0.1:1" and doc["failed"] == 9
    assert doc["newest_snapshot"] == "s000002" and doc["checked_at"]
    got = metrics(tmp_path / "dims" / catalog_sync.METRICS_FILE)
    assert got[("catalog_api_up", ())] == 0 and got[("catalog_ids_failed", ())] == 9
    assert got[("catalog_ids_fetched", ())] == 0
    assert got[("catalog_status", (("catalog_status", "unavailable"),))] == 1
    assert got[("catalog_status", (("catalog_status", "complete"),))] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "http://127.0.0.1:1" in warnings[0] and reason in warnings[0]
    assert "max minute seen" in warnings[0]
    assert not list((tmp_path / "dims").glob("_tmp-*"))


def test_partial_warns_and_complete_is_quiet(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="jobs.ingest.catalog"):
        catalog_sync.record(
            result(tmp_path, status="partial", reason="2 ids failed", users_fetched=3, failed=2)
        )
    got = metrics(tmp_path / "dims" / catalog_sync.METRICS_FILE)
    assert got[("catalog_api_up", ())] == 1 and got[("catalog_ids_fetched", ())] == 3
    assert got[("catalog_status", (("catalog_status", "partial"),))] == 1
    assert [r.getMessage() for r in caplog.records] == [
        "catalog: 2 ids could not be fetched (2 ids failed); the next run retries them"
    ]
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="jobs.ingest.catalog"):
        catalog_sync.record(result(tmp_path))  # nothing was left to fetch
    got = metrics(tmp_path / "dims" / catalog_sync.METRICS_FILE)
    assert math.isnan(got[("catalog_api_up", ())])
    assert json.loads((tmp_path / "dims" / catalog_sync.STATUS_FILE).read_text())["status"] == (
        "complete"
    )
    assert caplog.records == []


def test_newest_snapshot_is_the_newest_event_time_not_the_clock(tmp_path):
    from jobs.ingest import lake

    for snapshot_id, newest in (
        ("s000001", "2025-03-02T10:00:00"),
        ("s000002", "1998-01-01T00:00:00"),
    ):
        (tmp_path / snapshot_id).mkdir()
        lake.write_manifest(
            tmp_path / snapshot_id, {"snapshot_id": snapshot_id, "max_event_time": newest}
        )
    (tmp_path / "no-manifest").mkdir()
    paths = [tmp_path / n for n in ("s000001", "s000002", "no-manifest")]
    assert catalog_sync.newest_snapshot(paths) == ("s000001", "2025-03-02T10:00:00")
    assert catalog_sync.newest_snapshot([]) == (None, None)
