"""The closed loop: simulated users ask our recommender at the start of a session."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from contracts.grammar import MOVIE_ID_RE

TIMEOUT_S = 0.8
_MOVIE = re.compile(MOVIE_ID_RE)


@dataclass(frozen=True)
class Answer:
    """What one `GET /recommend/<user>` returned: status (0 = timeout/no connection), ids, ms."""

    status: int
    ids: list[str]
    ms: int


class RecommenderClient:
    """Keep-alive HTTP client of the serving tier, a few requests in flight at once."""

    def __init__(self, url: str, timeout: float = TIMEOUT_S, workers: int = 4):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.netloc:
            raise ValueError(f"recommender URL {url!r} has no host:port")
        self.server = parts.netloc
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.timeout = timeout
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reco")

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def ask(self, user_id: int) -> Answer:
        """One request; errors become status codes (HTTP) or status 0 (timeout, refused)."""
        started = time.perf_counter()
        try:
            resp = self._session().get(f"{self.base}/recommend/{user_id}", timeout=self.timeout)
        except requests.RequestException:
            return Answer(0, [], round((time.perf_counter() - started) * 1000))
        ms = round((time.perf_counter() - started) * 1000)
        if resp.status_code != 200:
            return Answer(resp.status_code, [], ms)
        # Ids that are not movie slugs cannot be written in the grammar; they are dropped.
        ids = [s for s in (p.strip() for p in resp.text.split(",")) if _MOVIE.fullmatch(s)]
        return Answer(200, ids, ms)

    def ask_many(self, user_ids: list[int]) -> list[Answer]:
        """Answers in the order of `user_ids`."""
        return list(self._pool.map(self.ask, user_ids))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
