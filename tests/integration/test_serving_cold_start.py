"""Cold start while the database is unreachable: gunicorn pointed at a closed port.

With no popularity cache file the server has no list to give: /recommend answers 503 with
the reason (never an empty 200), /readyz 503, /healthz 200. With the cache file a previous
run left, it answers that list (source `cache`). Once a database appears at that port and a
list is published, the same server answers from it with no restart.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.fallback import write_fallback
from jobs.publish import publish
from tests.support.harness import (
    Client,
    PrivateDatabase,
    ServingProcess,
    free_port,
    seed_version,
    wait_for,
)

pytestmark = pytest.mark.integration

POPULAR = [f"cold{i}" for i in range(20)]


def fresh_clients(server: ServingProcess, n: int = 8) -> list[tuple[int, dict, str]]:
    """One request per new connection, so both workers answer some of them."""
    answers = []
    for user in range(1, n + 1):
        c = Client(server.base_url)
        try:
            answers.append(c.get(f"/recommend/{user}"))
        finally:
            c.close()
    return answers


def test_no_cache_file_and_no_database_answers_503_with_a_reason_until_a_list_is_published():
    db = PrivateDatabase(port=free_port())  # not created yet: nothing listens on its port
    server = ServingProcess(db.reader_url).start()
    try:
        assert not (server.var_dir / "serving" / "popular_cache.json").exists()
        answers = fresh_clients(server)
        assert len(answers) == 8
        for status, headers, body in answers:
            assert status == 503, (status, body)
            assert body.startswith("503 Service Unavailable: no recommendation list is loaded")
            assert "refused" in body or "connect" in body, body
            assert headers["Retry-After"] == "1"
        c = Client(server.base_url)
        try:
            status, _, body = c.get("/readyz")
            assert (status, body.startswith("not ready: database unreachable")) == (503, True)
            assert c.get("/healthz")[0] == 200
            assert c.get("/recommend/abc")[0] == 400
            metrics = c.get("/metrics")[2]
            assert 'recs_requests_total{route="recommend",source="none",status="503"}' in metrics
        finally:
            c.close()

        db.create()
        lists = seed_version(db.owner_url, "cold-v1", "model-cold", range(1, 9))
        publish.publish_popular(POPULAR, datetime(2025, 6, 1, tzinfo=UTC), db.owner_url)
        wait_for(
            lambda: all(a[0] == 200 for a in fresh_clients(server)), 60, "answers after publish"
        )
        answers = fresh_clients(server)
        assert [(a[0], a[1]["X-Rec-Source"], a[2]) for a in answers] == [
            (200, "model", lists[u]) for u in range(1, 9)
        ]
        c = Client(server.base_url)
        try:
            status, headers, body = c.get("/recommend/999")
            assert (status, headers["X-Rec-Source"], body) == (200, "popular", ",".join(POPULAR))
        finally:
            c.close()
    finally:
        server.stop()
        db.destroy()


def test_the_fallback_file_from_the_pipeline_is_served_when_starting_during_an_outage():
    closed = f"postgresql://recs_reader:recs_reader@127.0.0.1:{free_port()}/recs"
    server = ServingProcess(closed)
    # What the pipeline's refresh_popularity leaves beside the server, in its own format.
    write_fallback(
        server.var_dir / "serving" / "popular_cache.json", "popular-earlier", ",".join(POPULAR)
    )
    server.start()
    try:
        answers = fresh_clients(server)
        assert [(a[0], a[1]["X-Rec-Source"], a[2]) for a in answers] == [
            (200, "cache", ",".join(POPULAR))
        ] * 8
        assert {a[1]["X-Model-Version"] for a in answers} == {"popular-earlier"}
    finally:
        server.stop()
