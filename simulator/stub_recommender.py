"""A stub recommender (tests, demos of the closed loop): http.server on a free loopback port."""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from simulator.world import World


def reply_text(handler: BaseHTTPRequestHandler, code: int, body: str) -> None:
    """Answer a recommender request with a text body; a client that gave up is fine."""
    data = body.encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(data)  # the client gave up (timeout): fine


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connections when eight simulator workers connect at
    # once; a dropped SYN is retried after 1 s, past the client's timeout.
    request_queue_size = 128


class StubRecommender:
    """Answers GET /recommend/<uid> by `mode`: 'taste' (true favourites) or 'random'.

    Users whose id is divisible by `fail_every` get a 500, by `slow_every` a reply after 1.2 s.
    """

    def __init__(self, world: World, mode: str, fail_every: int = 0, slow_every: int = 0):
        self.world, self.mode = world, mode
        self.fail_every, self.slow_every = fail_every, slow_every
        rng = np.random.default_rng(7)
        n_users, n_movies = world.population.n_active, world.catalog.n_initial
        if mode == "taste":
            self.lists = world.top_true(np.arange(n_users), 20)
        else:
            self.lists = np.stack([rng.choice(n_movies, 20, replace=False) for _ in range(n_users)])
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                uid = self.path.rsplit("/", 1)[-1]
                if not uid.isdigit() or not 1 <= int(uid) <= n_users:
                    return self._reply(400, "invalid user")
                uid = int(uid)
                if stub.fail_every and uid % stub.fail_every == 0:
                    return self._reply(500, "boom")
                if stub.slow_every and uid % stub.slow_every == 0:
                    time.sleep(1.2)  # slower than the 800 ms client timeout, on purpose
                slugs = [stub.world.catalog.slugs[m] for m in stub.lists[uid - 1]]
                return self._reply(200, ",".join(slugs))

            def _reply(self, code: int, body: str):
                reply_text(self, code, body)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubRecommender:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
