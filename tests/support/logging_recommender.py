"""A closed-loop recommender for tests that logs every answer through the real PredictionLog.

Answers GET /recommend/<uid> like the serving tier would, and writes the same record shape
(serving/app.py `respond`): users with id % 5 == 0 get the popularity list (source `popular`,
model version POPULAR), the others their true favourites (source `model`, model version
MODEL); odd ids are variant A, even ones B; ids divisible by `fail_every` get a 500 and no
record (a crash before the answer).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from serving.telemetry import PredictionLog
from simulator.stub_recommender import reply_text
from simulator.world import World

MODEL, POPULAR = "m-taste", "popular-v1"


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the simulator's workers connect at once


class LoggingRecommender:
    """Context manager: a loopback HTTP recommender whose answers land in `log_dir`."""

    def __init__(self, world: World, log_dir: Path, fail_every: int = 23):
        n_users = world.population.n_active
        self.taste = world.top_true(np.arange(n_users), 20)
        self.popular = np.argsort(-world.catalog.popularity[: world.catalog.n_initial])[:20]
        self.slugs = world.catalog.slugs
        self.fail_every = fail_every
        self.log = PredictionLog(log_dir, max_bytes=200_000, max_sealed=10_000)
        self.server = _Server(("127.0.0.1", 0), self._handler(n_users))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.answered = 0
        self._count = threading.Lock()

    def answer(self, uid: int) -> tuple[int, str]:
        """(status, body) for one user; a 200 is logged as serving logs it."""
        started = time.perf_counter()
        if self.fail_every and uid % self.fail_every == 0:
            return 500, "boom"
        popular = uid % 5 == 0
        ids = self.popular if popular else self.taste[uid - 1]
        items = ",".join(self.slugs[m] for m in ids)
        self.log.write(
            {
                "request_id": f"t-{uid}-{time.monotonic_ns()}",
                "user_id": uid,
                "variant": "A" if uid % 2 else "B",
                "model_version": POPULAR if popular else MODEL,
                "reco_version": None if popular else f"reco-{MODEL}",
                "source": "popular" if popular else "model",
                "items": items,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "fallback_reason": None,
            }
        )
        with self._count:
            self.answered += 1
        return 200, items

    def _handler(self, n_users: int):
        recommender = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                uid = self.path.rsplit("/", 1)[-1]
                if not uid.isdigit() or not 1 <= int(uid) <= n_users:
                    code, body = 400, "invalid user"
                else:
                    code, body = recommender.answer(int(uid))
                reply_text(self, code, body)

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self) -> LoggingRecommender:
        self.log.start()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.log.stop()
