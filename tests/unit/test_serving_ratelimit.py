"""Token buckets of serving/ratelimit.py on a hand-driven clock, and the Flask hook's 429."""

from __future__ import annotations

import pytest
from flask import Flask

from serving import ratelimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate():
    clock = Clock()
    buckets = ratelimit.TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: one token comes in 1/rate s
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    clock.now += 10  # refill is capped at the burst
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]


def test_least_recently_seen_clients_are_dropped(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_CLIENTS", 2)
    buckets = ratelimit.TokenBuckets(rate=1.0, burst=1, clock=Clock())
    for key in ("a", "b", "a", "c"):
        buckets.take(key)
    assert list(buckets.buckets) == ["a", "c"]


def test_invalid_limits_are_refused():
    with pytest.raises(ValueError):
        ratelimit.TokenBuckets(rate=0, burst=1)


def app_with_limit(monkeypatch, rps: str | None) -> Flask:
    if rps is None:
        monkeypatch.delenv("SERVING_RATE_LIMIT_RPS", raising=False)
    else:
        monkeypatch.setenv("SERVING_RATE_LIMIT_RPS", rps)
    monkeypatch.setenv("SERVING_RATE_LIMIT_BURST", "2")
    app = Flask(__name__)
    app.add_url_rule("/recommend/<uid>", "recommend", lambda uid: uid)
    app.add_url_rule("/healthz", "healthz", lambda: "ok")
    ratelimit.install(app)
    return app


def test_off_by_default(monkeypatch):
    client = app_with_limit(monkeypatch, None).test_client()
    assert {client.get("/recommend/1").status_code for _ in range(50)} == {200}


def test_hook_answers_429_with_the_reason_and_leaves_health_alone(monkeypatch):
    client = app_with_limit(monkeypatch, "0.001").test_client()
    assert [client.get("/recommend/1").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/recommend/1")
    assert refused.status_code == 429
    assert refused.text.startswith("429 Too Many Requests: client 127.0.0.1 is over 0.001")
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200
