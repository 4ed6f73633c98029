"""The Flask app against an in-memory state: sources, headers, errors, fallbacks."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.ab import Variant
from serving.app import create_app
from serving.state import CachedList
from serving.store import Experiment, Pointer, Unavailable

pytestmark = pytest.mark.unit

MODEL_LIST = ",".join(f"m{i}" for i in range(20))
POPULAR_LIST = ",".join(f"p{i}" for i in range(20))


class FakeStore:
    def __init__(self, rows: dict, error: Unavailable | None = None) -> None:
        self.rows = rows
        self.error = error
        self.calls = []

    def lookup(self, reco_version: str, user_id: int):
        self.calls.append((reco_version, user_id))
        if self.error is not None:
            raise self.error
        return self.rows.get((reco_version, user_id))


class FakeState:
    """The attributes the app reads, with no database, threads or files."""

    def __init__(self, store: FakeStore, experiment: Experiment | None = None) -> None:
        self.store = store
        self.pointer = Pointer(
            reco_version="v1",
            model_version="model-1",
            published_at=None,
            popular_version="pop-1",
            popular_items=POPULAR_LIST,
            popular_window_end=None,
            updated_at=None,
            experiment=experiment,
        )
        self.cache = CachedList("pop-0", "c1,c2")
        self.db_ok = True
        self.last_error = ""
        self.predictions = None
        self.marked = []

    def ensure_started(self) -> None:
        pass

    def mark_unavailable(self, exc: Unavailable) -> None:
        self.marked.append(exc.reason)
        if exc.broken:
            self.db_ok = False

    def lookup_ok(self) -> None:
        pass


@pytest.fixture
def store():
    return FakeStore({("v1", 7): MODEL_LIST, ("v2", 7): "x1,x2"})


@pytest.fixture
def state(store):
    return FakeState(store)


@pytest.fixture
def client(state):
    return create_app(state).test_client()


def test_known_user_gets_the_model_list(client):
    resp = client.get("/recommend/7")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True) == MODEL_LIST
    assert resp.headers["X-Rec-Source"] == "model"
    assert resp.headers["X-Model-Version"] == "model-1"
    assert "X-Variant" not in resp.headers


def test_unknown_user_gets_the_popular_list(client, store):
    resp = client.get("/recommend/8")
    assert resp.get_data(as_text=True) == POPULAR_LIST
    assert resp.headers["X-Rec-Source"] == "popular"
    assert resp.headers["X-Model-Version"] == "pop-1"
    assert store.calls == [("v1", 8)]


@pytest.mark.parametrize("broken", [True, False])
def test_database_trouble_answers_from_the_cache(client, state, store, broken):
    store.error = Unavailable("statement timeout" if not broken else "query failed", broken)
    resp = client.get("/recommend/7")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == "c1,c2"
    assert resp.headers["X-Rec-Source"] == "cache"
    assert resp.headers["X-Model-Version"] == "pop-0"
    assert state.marked


def test_breaker_open_skips_the_database(client, state, store):
    state.db_ok = False
    resp = client.get("/recommend/7")
    assert resp.headers["X-Rec-Source"] == "cache"
    assert store.calls == []


def test_pool_exhausted_is_a_cache_answer(client, store):
    store.error = Unavailable("connection pool exhausted")
    resp = client.get("/recommend/7")
    assert (resp.status_code, resp.headers["X-Rec-Source"]) == (200, "cache")


def test_experiment_routes_by_variant(store):
    experiment = Experiment(
        "exp", "salt", (Variant("a", "v1", "model-1", 0.5), Variant("b", "v2", "model-2", 0.5))
    )
    client = create_app(FakeState(store, experiment)).test_client()
    seen = {}
    for user in range(1, 60):
        resp = client.get(f"/recommend/{user}")
        seen[resp.headers["X-Variant"]] = resp.headers
    assert set(seen) == {"a", "b"}
    assert {v for _, v in store.calls} == set(range(1, 60))
    assert {r for r, _ in store.calls} == {"v1", "v2"}


def test_unexpected_error_in_lookup_still_answers(client, store):
    def boom(reco_version, user_id):
        raise RuntimeError("bug")

    store.lookup = boom
    resp = client.get("/recommend/7")
    assert resp.status_code == 200
    assert resp.headers["X-Rec-Source"] == "cache"
    assert "bug" not in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/recommend/abc", 400),
        ("GET", "/recommend/-1", 400),
        ("GET", "/recommend/", 400),
        ("GET", "/recommend", 400),
        ("GET", "/recommend/1/2", 400),
        ("GET", "/recommend/%D9%A1", 400),
        ("GET", "/nope", 404),
        ("POST", "/recommend/7", 405),
        ("DELETE", "/recommend/7", 405),
        ("PUT", "/healthz", 405),
    ],
)
def test_errors_are_short_text_lines(client, method, path, status):
    resp = client.open(path, method=method)
    body = resp.get_data(as_text=True)
    assert resp.status_code == status
    assert resp.mimetype == "text/plain"
    assert body.startswith(str(status))
    assert "\n" not in body.strip() and len(body) < 300
    assert "Traceback" not in body


def test_readyz_and_version(client, state):
    assert client.get("/readyz").status_code == 200
    assert "reco_version=v1" in client.get("/version").get_data(as_text=True)
    state.db_ok, state.last_error = False, "connect failed"
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert "database unreachable" in resp.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200


def test_metrics_have_no_user_label(client):
    client.get("/recommend/7")
    text = client.get("/metrics").get_data(as_text=True)
    assert "recs_requests_total" in text
    assert "recs_recommend_latency_seconds_bucket" in text
    labels = {
        name
        for family in text_string_to_metric_families(text)
        if family.name.startswith("recs_")
        for sample in family.samples
        for name in sample.labels
    }
    assert {"source", "status"} <= labels
    assert not {name for name in labels if "user" in name}


def test_breaker_trips_on_a_run_of_timeouts_or_at_once_when_broken(tmp_path):
    from serving.state import TIMEOUTS_TO_TRIP, ServingState

    real = ServingState("postgresql://nobody@127.0.0.1:1/none", tmp_path / "c.json", tmp_path)
    real.db_ok = True
    for _ in range(TIMEOUTS_TO_TRIP - 1):
        real.mark_unavailable(Unavailable("statement timeout"))
    assert real.db_ok, "a few slow lookups alone must not open the breaker"
    real.lookup_ok()
    for _ in range(TIMEOUTS_TO_TRIP - 1):
        real.mark_unavailable(Unavailable("statement timeout"))
    assert real.db_ok, "a success in between starts the count again"
    real.mark_unavailable(Unavailable("statement timeout"))
    assert not real.db_ok and "in a row" in real.last_error

    real.db_ok = True
    real.mark_unavailable(Unavailable("query failed: server closed the connection", broken=True))
    assert not real.db_ok


def _assert_no_list_503(response, why: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 503, body
    assert body.startswith("503 Service Unavailable: no recommendation list is loaded yet (")
    assert why in body and "\n" not in body
    assert response.headers["Retry-After"] == "1"
    assert "X-Rec-Source" not in response.headers


def test_cold_start_with_the_database_down_is_a_503_with_the_reason_never_an_empty_200():
    from serving.state import EMPTY_CACHE

    state = FakeState(FakeStore({}))
    state.pointer, state.cache, state.db_ok = None, EMPTY_CACHE, False
    state.last_error = "pointer refresh failed: connection refused"
    client = create_app(state).test_client()
    for user in (7, 8, 10**12):
        _assert_no_list_503(client.get(f"/recommend/{user}"), "connection refused")
    assert client.get("/recommend/abc").status_code == 400  # bad input is still a 400
    state.cache = CachedList("pop-0", "c1,c2")  # a list arrives: the designed fallback again
    response = client.get("/recommend/7")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "c1,c2")
    assert response.headers["X-Rec-Source"] == "cache"


def test_unknown_user_with_no_popularity_list_anywhere_is_a_503(store):
    from serving.state import EMPTY_CACHE

    state = FakeState(store)
    state.pointer = Pointer("v1", "model-1", None, None, "", None, None)
    state.cache = EMPTY_CACHE
    client = create_app(state).test_client()
    assert client.get("/recommend/7").status_code == 200  # a known user has a model list
    _assert_no_list_503(client.get("/recommend/8"), "no popularity list is published")


def test_a_bug_with_no_list_to_fall_back_to_is_a_503_not_an_empty_200():
    from serving.state import EMPTY_CACHE

    state = FakeState(FakeStore({}, error=Unavailable("statement timeout")))
    state.cache = EMPTY_CACHE
    state.mark_unavailable = None  # calling it raises TypeError: an unexpected bug
    client = create_app(state).test_client()
    _assert_no_list_503(client.get("/recommend/7"), "internal error")
