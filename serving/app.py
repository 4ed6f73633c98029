"""The serving tier: GET /recommend/<userid> answered by one indexed lookup, never a 5xx.

A known user gets the published list (X-Rec-Source: model), an unknown or cold user the
popularity list (popular), and when the database cannot answer, everybody gets the
in-process copy of the popularity list (cache). The server does no ML and imports no model
code; configuration comes from the environment (contracts.settings and the SERVING_* variables).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import time
import uuid

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from contracts import settings as settings_mod
from serving import ab, telemetry
from serving.ids import InvalidUserId, parse_user_id
from serving.state import ServingState
from serving.store import Unavailable

log = logging.getLogger("recs.serving")

TEXT = "text/plain; charset=utf-8"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
STATE_KEY = "recs_serving"


def _git_commit() -> str:
    """The commit this code runs from (GIT_COMMIT wins; `git` is asked once, at start-up)."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings_mod.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


class _RequestIds:
    """Cheap unique request ids: a random per-process prefix and a counter (no syscall each)."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def next(self) -> str:
        if self._pid != os.getpid():  # re-seed after a fork so workers never collide
            self._pid, self._prefix = os.getpid(), uuid.uuid4().hex[:12]
        return f"{self._prefix}-{next(self._counter):x}"


def _text(body: str, status: int, headers: list | None = None) -> Response:
    return Response(body, status=status, headers=headers, content_type=TEXT)


def create_app(state: ServingState | None = None) -> Flask:
    """The Flask app; its per-process state starts lazily (after gunicorn forks)."""
    cfg = settings_mod.load()
    if state is None:
        state = ServingState(
            url=cfg.serving_database_url,
            cache_file=cfg.var_dir / "serving" / "popular_cache.json",
            log_dir=cfg.log_dir,
            refresh_s=settings_mod.env_number("SERVING_REFRESH_S", 2.0),
            pool_size=int(settings_mod.env_number("SERVING_POOL_SIZE", 4)),
            statement_timeout_ms=int(settings_mod.env_number("SERVING_STATEMENT_TIMEOUT_MS", 50)),
        )
    commit = _git_commit()
    app = Flask(__name__)
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False, MAX_CONTENT_LENGTH=1024)
    app.extensions[STATE_KEY] = state
    # No redirects: '/recommend//7' is a 404, not a 308 to somewhere else.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    request_ids = _RequestIds()
    # The labelled metric children of a 200 answer, by source, looked up once.
    answered = {
        source: (
            telemetry.REQUESTS.labels("recommend", "200", source),
            telemetry.LATENCY.labels(source),
        )
        for source in ("model", "popular", "cache")
    }

    def fallback(user_id: int | None, request_id: str, started: float, why: str) -> Response:
        """The designed degraded path: the in-process popularity copy, source `cache`."""
        cache = state.cache
        return answer(
            user_id, request_id, started, "cache", cache.items, cache.version, None, "", why
        )

    def answer(
        user_id: int | None,
        request_id: str,
        started: float,
        source: str,
        items: str,
        model_version: str,
        variant: str | None,
        reco_version: str,
        fallback_reason: str = "",
    ) -> Response:
        headers = [
            ("X-Model-Version", model_version),
            ("X-Rec-Source", source),
            ("X-Request-Id", request_id),
        ]
        if variant is not None:
            headers.append(("X-Variant", variant))
        if reco_version:
            headers.append(("X-Reco-Version", reco_version))
        elapsed = time.perf_counter() - started
        served, latency = answered[source]
        served.inc()
        latency.observe(elapsed)
        if state.predictions is not None:
            state.predictions.write(
                {
                    "request_id": request_id,
                    "user_id": user_id,
                    "variant": variant,
                    "model_version": model_version,
                    "reco_version": reco_version or None,
                    "source": source,
                    "items": items,
                    "latency_ms": round(elapsed * 1000, 3),
                    "fallback_reason": fallback_reason or None,
                }
            )
        return _text(items, 200, headers)

    @app.get("/recommend/<path:userid>")
    def recommend(userid: str) -> Response:
        started = time.perf_counter()
        state.ensure_started()
        user_id = parse_user_id(userid)  # InvalidUserId -> 400 below
        supplied = request.environ.get("HTTP_X_REQUEST_ID", "")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else request_ids.next()
        pointer = state.pointer
        if pointer is None or not state.db_ok:
            return fallback(user_id, request_id, started, state.last_error)
        reco_version, model_version, variant = pointer.reco_version, pointer.model_version, None
        if pointer.experiment is not None:
            chosen = ab.assign(pointer.experiment.salt, user_id, pointer.experiment.variants)
            reco_version, model_version, variant = (
                chosen.reco_version,
                chosen.model_version,
                chosen.name,
            )
        items = None
        if reco_version is not None:
            try:
                items = state.store.lookup(reco_version, user_id)
            except Unavailable as exc:
                state.mark_unavailable(exc)
                return fallback(user_id, request_id, started, exc.reason)
            state.lookup_ok()
        if items is not None:
            return answer(
                user_id, request_id, started, "model", items, model_version, variant, reco_version
            )
        popular_version = pointer.popular_version or state.cache.version
        popular_items = pointer.popular_items if pointer.popular_version else state.cache.items
        return answer(
            user_id, request_id, started, "popular", popular_items, popular_version, variant, ""
        )

    @app.get("/recommend/")
    @app.get("/recommend")
    def recommend_empty() -> Response:
        raise InvalidUserId("user id is missing: use GET /recommend/<userid>")

    @app.get("/healthz")
    def healthz() -> Response:
        return _text("ok", 200)

    @app.get("/readyz")
    def readyz() -> Response:
        state.ensure_started()
        pointer = state.pointer
        if not state.db_ok:
            return _text(f"not ready: database unreachable ({state.last_error})", 503)
        if pointer is None or pointer.reco_version is None:
            return _text("not ready: no reco version is published", 503)
        if not pointer.popular_version:
            return _text("not ready: no popularity list is published", 503)
        return _text(f"ready: serving {pointer.reco_version}", 200)

    @app.get("/version")
    def version() -> Response:
        state.ensure_started()
        pointer = state.pointer
        lines = [f"commit={commit}"]
        if pointer is not None:
            published = pointer.published_at.isoformat() if pointer.published_at else "none"
            lines += [
                f"reco_version={pointer.reco_version or 'none'}",
                f"model_version={pointer.model_version or 'none'}",
                f"popular_version={pointer.popular_version or 'none'}",
                f"published_at={published}",
            ]
            if pointer.experiment is not None:
                shares = ",".join(
                    f"{v.name}={v.reco_version}:{v.share:g}" for v in pointer.experiment.variants
                )
                lines.append(f"experiment={pointer.experiment.experiment_id} {shares}")
        lines.append(f"database={'up' if state.db_ok else 'down'}")
        return _text("\n".join(lines) + "\n", 200)

    @app.get("/metrics")
    def metrics() -> Response:
        payload, content_type = telemetry.metrics_payload()
        return Response(payload, status=200, content_type=content_type)

    @app.errorhandler(InvalidUserId)
    def bad_user_id(exc: InvalidUserId) -> Response:
        telemetry.REQUESTS.labels("recommend", "400", "none").inc()
        return _text(f"400 Bad Request: {exc}", 400)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 400
        telemetry.REQUESTS.labels("other", str(code), "none").inc()
        reasons = {
            404: "no such route; use GET /recommend/<userid>",
            405: f"method {request.method} is not allowed here",
        }
        reason = reasons.get(code) or (exc.description or "").splitlines()[0][:200]
        response = exc.get_response()
        body = f"{code} {exc.name}: {reason}"
        new = _text(body, code)
        if "Allow" in response.headers:
            new.headers["Allow"] = response.headers["Allow"]
        return new

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.path)
        if request.path.startswith("/recommend/"):
            # A bug must not cost the user an answer: serve the popularity copy, say so.
            return fallback(None, request_ids.next(), time.perf_counter(), "internal error")
        telemetry.REQUESTS.labels("other", "500", "none").inc()
        return _text("500 Internal Server Error: see the server log", 500)

    return app
