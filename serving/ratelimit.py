"""Per-client rate limit on GET /recommend: a token bucket keyed by the client's address.

Off unless SERVING_RATE_LIMIT_RPS > 0 (contracts.settings). Each client address gets a bucket
of SERVING_RATE_LIMIT_BURST tokens refilled at RPS tokens a second; a request takes one, and
with none left it gets `429` with a one-line reason and `Retry-After`. Buckets live in each
gunicorn worker (no shared state, no extra hop), so a client spread over W workers can get
up to W x RPS; the bound is for floods, not for billing. The key is the TCP peer address
(REMOTE_ADDR): behind a proxy every client would share one bucket, so the limit must then
move to the proxy. Only /recommend is limited: /healthz, /readyz, /metrics and /version are
cheap and used by the supervisor and Prometheus. docs/responsible-ml.md, "Threat model".
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, request

from contracts import settings
from serving import telemetry

LIMITED_PREFIX = "/recommend"
MAX_CLIENTS = 10_000  # buckets kept per worker; the least recently seen is dropped first


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key: `take(key)` -> seconds to wait (0.0 = allowed, token taken)."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one token from `key`'s bucket; 0.0 when allowed, else the wait until one is."""
        now = self.clock()
        bucket = self.buckets.pop(key, None) or Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self.buckets[key] = bucket  # most recently seen last
        if len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def too_many(client: str, buckets: TokenBuckets, wait_s: float) -> Response:
    """The 429 answer: one line saying which limit the client passed, and Retry-After."""
    telemetry.REQUESTS.labels("recommend", "429", "none").inc()
    body = (
        f"429 Too Many Requests: client {client} is over {buckets.rate:g} requests/s "
        f"(burst {buckets.burst:g}) on /recommend; retry in {wait_s:.3f} s"
    )
    return Response(
        body,
        status=429,
        headers=[("Retry-After", str(max(1, math.ceil(wait_s))))],
        content_type="text/plain; charset=utf-8",
    )


def install(app: Flask) -> TokenBuckets | None:
    """Limit /recommend per client address when SERVING_RATE_LIMIT_RPS > 0; the buckets."""
    rate, burst = settings.serving_rate_limit()
    if rate <= 0:
        return None
    buckets = TokenBuckets(rate, burst)

    def limit() -> Response | None:
        if not request.path.startswith(LIMITED_PREFIX):
            return None
        client = request.remote_addr or "unknown"
        wait_s = buckets.take(client)
        return too_many(client, buckets, wait_s) if wait_s > 0 else None

    app.before_request(limit)
    return buckets
