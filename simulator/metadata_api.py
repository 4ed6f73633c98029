"""Metadata API of the simulated world (JSON as the course's): /user/<id>, /movie/<id>.

Knows every movie of the catalog, including those that arrive later in a run (cold start),
and the spam-reserve accounts. Optional misbehaviour for robustness tests: a global rate
limit (429), injected latency, and an error rate (500).
"""

from __future__ import annotations

import random
import threading
import time

from flask import Flask, jsonify

from simulator.world import World


class TokenBucket:
    """At most `rate` requests per second on average, bursts up to `rate`."""

    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def create_app(
    world: World,
    rate_limit: float | None = None,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    seed: int = 0,
) -> Flask:
    """The Flask app serving `world`'s users and movies."""
    app = Flask("simulator.metadata_api")
    bucket = TokenBucket(rate_limit) if rate_limit else None
    chaos = random.Random(seed)  # noqa: S311 - simulated faults, reproducible by seed
    chaos_lock = threading.Lock()

    @app.before_request
    def misbehave():
        if bucket is not None and not bucket.take():
            return jsonify(error="rate limit exceeded", limit_per_s=rate_limit), 429
        if latency_ms > 0:
            time.sleep(latency_ms / 1000.0)  # injected latency is the feature here
        if error_rate > 0:
            with chaos_lock:
                fail = chaos.random() < error_rate
            if fail:
                return jsonify(error="injected server error"), 500
        return None

    @app.get("/user/<user_id>")
    def user(user_id: str):
        ok = user_id.isascii() and user_id.isdigit()
        record = world.user_json(int(user_id)) if ok else None
        if record is None:
            return jsonify(error=f"user {user_id} not found"), 404
        return jsonify(record)

    @app.get("/movie/<movie_id>")
    def movie(movie_id: str):
        record = world.movie_json(movie_id)
        if record is None:
            return jsonify(error=f"movie {movie_id} not found"), 404
        return jsonify(record)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", scale=world.scale_name, seed=world.seed)

    @app.errorhandler(404)
    def not_found(_err):
        return jsonify(error="not found"), 404

    return app
