"""Metadata client: retries 5xx and connection errors, honours 429 Retry-After, 404 = unknown."""

from __future__ import annotations

import json

import pytest

from jobs.ingest import catalog as catalog_sync
from tests.support.json_api import JsonHandler, json_api

pytestmark = pytest.mark.unit


class Stub(JsonHandler):
    """/movie/flaky+2000 answers 429, then 500, then 200; /movie/gone+1999 answers 404."""

    calls: list[str] = []
    script = {"/movie/flaky+2000": [429, 500, 200], "/user/7": [200]}

    def do_GET(self):
        self.calls.append(self.path)
        answers = self.script.get(self.path, [404])
        n = sum(1 for c in self.calls if c == self.path) - 1
        code = answers[min(n, len(answers) - 1)]
        doc = {"id": self.path.rsplit("/", 1)[1], "runtime": 90}
        self.send_json(code, doc, {"Retry-After": "0"} if code == 429 else None)


@pytest.fixture
def stub_url():
    Stub.calls = []
    with json_api(Stub) as url:
        yield url


def test_retries_until_success(stub_url):
    client = catalog_sync.MetadataClient(stub_url, base_delay=0.001)
    status, doc = client.get("movie", "flaky+2000")
    assert status == "known" and doc["runtime"] == 90
    assert Stub.calls.count("/movie/flaky+2000") == 3


def test_not_found_is_unknown_without_retry(stub_url):
    client = catalog_sync.MetadataClient(stub_url, base_delay=0.001)
    assert client.get("movie", "gone+1999") == ("unknown", None)
    assert Stub.calls == ["/movie/gone+1999"]


def test_gives_up_after_max_attempts():
    client = catalog_sync.MetadataClient("http://127.0.0.1:9", max_attempts=2, base_delay=0.001)
    assert client.get("user", 1) == ("failed", None)


def test_rows_from_documents():
    doc = {"id": "a+1999", "genres": [{"id": 1, "name": "Drama"}], "runtime": 101}
    row = catalog_sync._movie_row("a+1999", "known", doc)
    assert row["genres"] == ["Drama"] and row["runtime"] == 101 and json.loads(row["raw"]) == doc
    unknown = catalog_sync._movie_row("b+2000", "unknown", None)
    assert unknown["status"] == "unknown" and unknown["title"] is None


def test_breaker_stops_asking_a_dead_api():
    client = catalog_sync.MetadataClient("http://127.0.0.1:9", max_attempts=1, base_delay=0.001)
    for i in range(catalog_sync.BREAKER_FAILURES):
        assert client.get("user", i) == ("failed", None)
    assert client.broken
    assert client.get("user", 99) == ("failed", None)  # answered without a request
    assert client.failures_in_a_row == catalog_sync.BREAKER_FAILURES
