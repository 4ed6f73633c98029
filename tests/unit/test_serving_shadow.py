"""The shadow path of the app against an in-memory state: looked up and logged, never served;
a failed shadow lookup logs nothing, is counted and never touches the answer or the breaker."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import REGISTRY

from serving.app import create_app
from serving.store import Shadow, Unavailable
from tests.unit.test_serving_app import MODEL_LIST, FakeState, FakeStore

pytestmark = pytest.mark.unit

SHADOW_LIST = ",".join(f"s{i}" for i in range(20))


class RecordingLog:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)


class ShadowFailingStore(FakeStore):
    """Answers the served version; the shadow's lookup fails with `error`."""

    def __init__(self, rows: dict, error: Unavailable) -> None:
        super().__init__(rows)
        self.shadow_error = error

    def lookup(self, reco_version: str, user_id: int):
        if reco_version == "shadow-v":
            self.calls.append((reco_version, user_id))
            raise self.shadow_error
        return super().lookup(reco_version, user_id)


def shadowed(store: FakeStore, shadow: bool = True) -> FakeState:
    state = FakeState(store)
    if shadow:
        state.pointer = dataclasses.replace(state.pointer, shadow=Shadow("shadow-v", "model-s"))
    state.predictions = RecordingLog()
    return state


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("recs_shadow_lookups_total", {"outcome": outcome}) or 0.0


def test_the_shadow_is_logged_beside_the_answer_and_never_served():
    store = FakeStore({("v1", 7): MODEL_LIST, ("shadow-v", 7): SHADOW_LIST})
    state = shadowed(store)
    before = count("answered"), count("no_row")
    client = create_app(state).test_client()
    for user in (7, 8):  # 8: no row anywhere -> popularity answer, and no shadow row
        resp = client.get(f"/recommend/{user}")
        assert resp.status_code == 200 and SHADOW_LIST not in resp.get_data(as_text=True)
        assert resp.headers.get("X-Reco-Version") != "shadow-v"
    known, unknown = state.predictions.records
    assert (known["items"], known["shadow_version"], known["shadow_items"]) == (
        MODEL_LIST,
        "shadow-v",
        SHADOW_LIST,
    )
    assert (unknown["source"], unknown["shadow_version"], unknown["shadow_items"]) == (
        "popular",
        "shadow-v",
        None,
    )
    assert (count("answered"), count("no_row")) == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (Unavailable("statement timeout"), "statement timeout"),
        (Unavailable("query failed: server closed", broken=True), "query failed"),
    ],
)
def test_a_failed_shadow_lookup_logs_nothing_and_is_counted(error, outcome):
    store = ShadowFailingStore({("v1", 7): MODEL_LIST}, error)
    state = shadowed(store)
    before = count(outcome)
    resp = create_app(state).test_client().get("/recommend/7")
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, MODEL_LIST)
    assert resp.headers["X-Rec-Source"] == "model"
    (record,) = state.predictions.records
    assert "shadow_version" not in record and "shadow_items" not in record
    assert count(outcome) == before + 1
    assert state.marked == [] and state.db_ok  # the breaker never hears of the shadow


def test_without_a_shadow_there_is_one_lookup_and_no_shadow_field():
    store = FakeStore({("v1", 7): MODEL_LIST})
    state = shadowed(store, shadow=False)
    create_app(state).test_client().get("/recommend/7")
    assert store.calls == [("v1", 7)]
    assert "shadow_version" not in state.predictions.records[0]


def test_version_names_the_shadow():
    state = shadowed(FakeStore({}))
    body = create_app(state).test_client().get("/version").get_data(as_text=True)
    assert "shadow=shadow-v" in body.splitlines()
