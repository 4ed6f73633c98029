"""The serving tier: GET /recommend/<userid> answered by one indexed lookup.

A known user gets the published list (X-Rec-Source: model), an unknown or cold user the
popularity list (popular), and when the database cannot answer, everybody gets the
in-process copy of the popularity list (cache), loaded at start from the fallback file the
pipeline leaves beside the server. Only when there is no list at all (a system that never
published, starting with the database down) is the answer a 503 with the reason. The
server does no ML and imports no model code; configuration comes from the environment,
through contracts.settings.

`create_app` only wires: the routes are methods of `Handlers`, which holds what they share
(the worker's `ServingState`, the commit, request ids and metric children).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from contracts import provenance
from contracts import settings as settings_mod
from serving import ab, ratelimit, telemetry
from serving.ids import InvalidUserId, parse_user_id
from serving.state import ServingState
from serving.store import Pointer, Unavailable

log = logging.getLogger("recs.serving")

TEXT = "text/plain; charset=utf-8"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
STATE_KEY = "recs_serving"
SOURCES = ("model", "popular", "cache")


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


def default_state() -> ServingState:
    """The worker state configured from the environment (SERVING_DATABASE_URL, SERVING_*)."""
    cfg = settings_mod.load()
    return ServingState(
        url=cfg.serving_database_url,
        cache_file=cfg.popular_fallback_file,
        log_dir=cfg.log_dir,
        refresh_s=settings_mod.serving_refresh_s(),
        pool_size=settings_mod.serving_pool_size(),
        statement_timeout_ms=settings_mod.serving_statement_timeout_ms(),
    )


@dataclass(slots=True, kw_only=True)
class Answer:
    """One 200 answer to GET /recommend: for whom, what is served, and where it came from."""

    user_id: int | None
    request_id: str
    started: float  # time.perf_counter() when the request arrived
    source: str  # model | popular | cache
    items: str  # 'id1,…,id20' exactly as served
    model_version: str
    variant: str | None = None
    reco_version: str = ""
    fallback_reason: str = ""
    shadow_version: str | None = None  # the shadow looked up for this answer (logged only)
    shadow_items: str | None = None  # its list; None when it has no row for the user


class Handlers:
    """The app's routes and error handlers, and the state they share."""

    def __init__(self, state: ServingState, commit: str) -> None:
        self.state = state
        self.commit = commit
        self.request_ids = _RequestIds()
        # The labelled metric children of a 200 answer, by source, looked up once.
        self.answered = {
            source: (
                telemetry.REQUESTS.labels("recommend", "200", source),
                telemetry.LATENCY.labels(source),
            )
            for source in SOURCES
        }
        self.shadow_outcomes = {
            outcome: telemetry.SHADOW_LOOKUPS.labels(outcome) for outcome in ("answered", "no_row")
        }

    # ------------------------------------------------------------------ answers
    def respond(self, answer: Answer) -> Response:
        """The 200 text answer with its headers, counted, timed and logged; a 503 with the
        reason when there is no list at all to give (never an empty 200)."""
        if not answer.items:
            return self.no_list(answer.fallback_reason or "no popularity list is published")
        headers = [
            ("X-Model-Version", answer.model_version),
            ("X-Rec-Source", answer.source),
            ("X-Request-Id", answer.request_id),
        ]
        if answer.variant is not None:
            headers.append(("X-Variant", answer.variant))
        if answer.reco_version:
            headers.append(("X-Reco-Version", answer.reco_version))
        elapsed = time.perf_counter() - answer.started
        served, latency = self.answered[answer.source]
        served.inc()
        latency.observe(elapsed)
        if self.state.predictions is not None:
            record = {
                "request_id": answer.request_id,
                "user_id": answer.user_id,
                "variant": answer.variant,
                "model_version": answer.model_version,
                "reco_version": answer.reco_version or None,
                "source": answer.source,
                "items": answer.items,
                "latency_ms": round(elapsed * 1000, 3),
                "fallback_reason": answer.fallback_reason or None,
            }
            if answer.shadow_version is not None:  # only while a shadow runs: lines stay short
                record["shadow_version"] = answer.shadow_version
                record["shadow_items"] = answer.shadow_items
            self.state.predictions.write(record)
        return _text(answer.items, 200, headers)

    def no_list(self, reason: str) -> Response:
        """503 when not even a popularity list is loaded (a cold start while the database is
        down, or nothing published yet): the client should retry, the balancer look elsewhere."""
        telemetry.REQUESTS.labels("recommend", "503", "none").inc()
        reason = " ".join(reason.split()) or "unknown reason"
        body = f"503 Service Unavailable: no recommendation list is loaded yet ({reason})"
        return _text(body, 503, [("Retry-After", "1")])

    def fallback(self, user_id: int | None, request_id: str, started: float, why: str) -> Response:
        """The designed degraded path: the in-process popularity copy, source `cache`."""
        cache = self.state.cache
        return self.respond(
            Answer(
                user_id=user_id,
                request_id=request_id,
                started=started,
                source="cache",
                items=cache.items,
                model_version=cache.version,
                fallback_reason=why,
            )
        )

    # ------------------------------------------------------------------ /recommend
    def recommend(self, userid: str) -> Response:
        """GET /recommend/<userid>: the published list, else popularity, else the cache."""
        started = time.perf_counter()
        state = self.state
        state.ensure_started()
        user_id = parse_user_id(userid)  # InvalidUserId -> 400 in bad_user_id
        supplied = request.environ.get("HTTP_X_REQUEST_ID", "")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else self.request_ids.next()
        pointer = state.pointer
        if pointer is None or not state.db_ok:
            return self.fallback(user_id, request_id, started, state.last_error)
        reco_version, model_version, variant = _route(pointer, user_id)
        try:
            items = self._lookup(reco_version, user_id)
        except Unavailable as exc:
            return self.fallback(user_id, request_id, started, exc.reason)
        source = "model"
        if items is None:  # no row for this user (or nothing to look in): the popularity list
            source, reco_version = "popular", ""
            model_version = pointer.popular_version or state.cache.version
            items = pointer.popular_items if pointer.popular_version else state.cache.items
        answer = Answer(
            user_id=user_id,
            request_id=request_id,
            started=started,
            source=source,
            items=items,
            model_version=model_version,
            variant=variant,
            reco_version=reco_version,
        )
        if pointer.shadow is not None:
            self._shadow(pointer.shadow.reco_version, answer)
        return self.respond(answer)

    def _shadow(self, shadow_version: str, answer: Answer) -> None:
        """Put what the shadow would have answered on `answer` (for the log only: the user gets
        `answer.items`). One lookup under the same statement timeout; when it fails nothing is
        recorded and the outcome is counted, and the breaker never hears of it."""
        try:
            items = self.state.store.lookup(shadow_version, answer.user_id)
        except Unavailable as exc:
            telemetry.SHADOW_LOOKUPS.labels(exc.reason.split(":")[0]).inc()
            return
        self.shadow_outcomes["answered" if items is not None else "no_row"].inc()
        answer.shadow_version, answer.shadow_items = shadow_version, items

    def _lookup(self, reco_version: str | None, user_id: int) -> str | None:
        """The user's list in `reco_version`, or None; Unavailable goes to the breaker first."""
        if reco_version is None:
            return None
        state = self.state
        try:
            items = state.store.lookup(reco_version, user_id)
        except Unavailable as exc:
            state.mark_unavailable(exc)
            raise
        state.lookup_ok()
        return items

    def recommend_empty(self) -> Response:
        raise InvalidUserId("user id is missing: use GET /recommend/<userid>")

    # ------------------------------------------------------------------ operations
    def healthz(self) -> Response:
        return _text("ok", 200)

    def readyz(self) -> Response:
        """GET /readyz: 200 once the database answers and a list and a popularity list are live."""
        state = self.state
        state.ensure_started()
        pointer = state.pointer
        if not state.db_ok:
            return _text(f"not ready: database unreachable ({state.last_error})", 503)
        if pointer is None or pointer.reco_version is None:
            return _text("not ready: no reco version is published", 503)
        if not pointer.popular_version:
            return _text("not ready: no popularity list is published", 503)
        return _text(f"ready: serving {pointer.reco_version}", 200)

    def version(self) -> Response:
        """GET /version: the code's commit, what is published, and whether the database is up."""
        state = self.state
        state.ensure_started()
        pointer = state.pointer
        lines = [f"commit={self.commit}"]
        if pointer is not None:
            lines += _pointer_lines(pointer)
        lines.append(f"database={'up' if state.db_ok else 'down'}")
        return _text("\n".join(lines) + "\n", 200)

    def metrics(self) -> Response:
        """GET /metrics: Prometheus exposition, merged over the workers."""
        payload, content_type = telemetry.metrics_payload()
        return Response(payload, status=200, content_type=content_type)

    # ------------------------------------------------------------------ errors
    def bad_user_id(self, exc: InvalidUserId) -> Response:
        telemetry.REQUESTS.labels("recommend", "400", "none").inc()
        return _text(f"400 Bad Request: {exc}", 400)

    def http_error(self, exc: HTTPException) -> Response:
        """Any HTTP error (404, 405, 413, …) as one text line, the Allow header kept."""
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

    def unexpected(self, exc: Exception) -> Response:
        """A bug: logged with its traceback; /recommend still answers (from the cache)."""
        log.exception("unexpected error on %s", request.path)
        if request.path.startswith("/recommend/"):
            # A bug must not cost the user an answer: serve the popularity copy, say so.
            return self.fallback(
                None, self.request_ids.next(), time.perf_counter(), "internal error"
            )
        telemetry.REQUESTS.labels("other", "500", "none").inc()
        return _text("500 Internal Server Error: see the server log", 500)


def _route(pointer: Pointer, user_id: int) -> tuple[str | None, str | None, str | None]:
    """(reco_version, model_version, variant) to serve: the published one, or the user's A/B
    variant while an experiment runs."""
    if pointer.experiment is None:
        return pointer.reco_version, pointer.model_version, None
    chosen = ab.assign(pointer.experiment.salt, user_id, pointer.experiment.variants)
    return chosen.reco_version, chosen.model_version, chosen.name


def _pointer_lines(pointer: Pointer) -> list[str]:
    """The /version lines that describe what is published (and the experiment, if any)."""
    published = pointer.published_at.isoformat() if pointer.published_at else "none"
    lines = [
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
    if pointer.shadow is not None:
        lines.append(f"shadow={pointer.shadow.reco_version}")
    return lines


class _AnyUserId(PathConverter):
    """Werkzeug's path converter, but matching newlines too: '/recommend/1%0A' is an invalid
    user id (400 with the reason), not an unknown route (404)."""

    regex = r"[^/](?s:.)*?"


def create_app(state: ServingState | None = None) -> Flask:
    """The Flask app; its per-process state starts lazily (after gunicorn forks)."""
    handlers = Handlers(state if state is not None else default_state(), provenance.git_commit())
    app = Flask(__name__)
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False, MAX_CONTENT_LENGTH=1024)
    app.extensions[STATE_KEY] = handlers.state
    # No redirects: '/recommend//7' is a 404, not a 308 to somewhere else.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.converters["userid"] = _AnyUserId
    for rule, view in (
        ("/recommend/<userid:userid>", handlers.recommend),
        ("/recommend/", handlers.recommend_empty),
        ("/recommend", handlers.recommend_empty),
        ("/healthz", handlers.healthz),
        ("/readyz", handlers.readyz),
        ("/version", handlers.version),
        ("/metrics", handlers.metrics),
    ):
        app.get(rule)(view)  # endpoint = the method's name, as with @app.get
    app.register_error_handler(InvalidUserId, handlers.bad_user_id)
    app.register_error_handler(HTTPException, handlers.http_error)
    app.register_error_handler(Exception, handlers.unexpected)
    ratelimit.install(app)  # per-client token buckets, when SERVING_RATE_LIMIT_RPS > 0
    return app
