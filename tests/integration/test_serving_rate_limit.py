"""The per-client rate limit on real gunicorn (2 workers, a private Postgres): the simulator's
closed-loop load (tiny world, live, every session asking) never gets a 429, while one client
flooding /recommend does, with the reason in the body and Retry-After."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from jobs.publish import publish
from ops import services
from tests.support.harness import Client, PrivateDatabase, ServingProcess, seed_version, wait_for

pytestmark = [pytest.mark.integration]

RPS, BURST = 50, 100  # per client address and worker: the setting docs/responsible-ml.md gives
LIMIT = {"SERVING_RATE_LIMIT_RPS": str(RPS), "SERVING_RATE_LIMIT_BURST": str(BURST)}
LIVE_RATE = 500  # simulator lines/s: about 8 recommendation requests/s on the tiny world
NORMAL_REQUESTS = 150
FLOOD_CONNECTIONS, FLOOD_REQUESTS = 4, 2000
STATUS = re.compile(r",recommendation request [^,]+, status (\d+),")


@pytest.fixture(scope="module")
def server():
    db = PrivateDatabase().create()
    try:
        seed_version(db.owner_url, "rl-v1", "model-rl", range(1, 201))
        publish.publish_popular(["p1", "p2"], datetime(2025, 1, 2, tzinfo=UTC), db.owner_url)
        serving = ServingProcess(db.reader_url, extra_env=LIMIT).start()
        yield serving
        serving.stop()
    finally:
        db.destroy()


def statuses(path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return STATUS.findall(text)


def test_simulator_load_is_never_limited(server, tmp_path):
    out = tmp_path / "live.log"
    cmd = [
        sys.executable, "-m", "simulator", "live", "--scale", "tiny", "--rate", str(LIVE_RATE),
        "--recommender", server.base_url, "--out", str(out),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=services.REPO, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(statuses(out)) >= NORMAL_REQUESTS, 120, "simulator requests")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    seen = statuses(out)
    rate = len(seen) / (time.monotonic() - started)
    print(f"simulator load: {len(seen)} requests at {rate:.1f}/s, statuses {set(seen)}")
    assert set(seen) == {"200"}


def flood(base_url: str, requests: int) -> list[tuple[int, dict, str]]:
    """`requests` GETs from one address as fast as FLOOD_CONNECTIONS connections go."""
    per = requests // FLOOD_CONNECTIONS

    def one_connection(_: int) -> list:
        client = Client(base_url)
        try:
            return [client.get(f"/recommend/{1 + i % 200}") for i in range(per)]
        finally:
            client.close()

    with ThreadPoolExecutor(FLOOD_CONNECTIONS) as pool:
        return [
            answer for part in pool.map(one_connection, range(FLOOD_CONNECTIONS)) for answer in part
        ]


def test_a_flood_from_one_client_gets_429_with_the_reason(server):
    started = time.monotonic()
    answers = flood(server.base_url, FLOOD_REQUESTS)
    seconds = time.monotonic() - started
    codes = [status for status, _, _ in answers]
    refused = [(headers, body) for status, headers, body in answers if status == 429]
    print(
        f"flood: {len(codes) / seconds:.0f}/s, {codes.count(200)} answered, {len(refused)} refused"
    )
    assert codes.count(200) >= BURST  # at least one worker's burst is served
    assert refused, f"a flood of {FLOOD_REQUESTS} requests was never limited"
    headers, body = refused[0]
    assert body.startswith(f"429 Too Many Requests: client 127.0.0.1 is over {RPS} requests/s")
    assert int(headers["Retry-After"]) >= 1
    assert set(codes) <= {200, 429}
