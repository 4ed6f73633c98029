"""Concurrent publish, experiment start, retire, duplicate loads and rollback on real Postgres.

Each test holds a transaction open in one connection (an operation caught mid-flight, with the
locks the real operation takes) and runs the other operation in a thread on a second
connection: the thread must wait (seen in pg_stat_activity) or fail cleanly, and the end state
must be consistent. Everything lives in a private schema of the shared Postgres.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime

import psycopg2
import psycopg2.sql
import pytest

from jobs.publish import experiments, publish
from jobs.train import registry
from tests.conftest import private_schema
from tests.support.harness import items_for, seed_version, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def url(postgres):
    with private_schema(postgres) as private:
        yield private


def as_app(url: str, name: str) -> str:
    """The same database, with an application_name to find the connection by."""
    return f"{url}&application_name={name}"


def rows_of(url: str, statement: str, params=None) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def waits_on_a_lock(url: str, app: str) -> bool:
    return bool(
        rows_of(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            (app,),
        )
    )


def status_of(url: str, version: str) -> str:
    return rows_of(url, "SELECT status FROM reco_versions WHERE reco_version = %s", (version,))[0][
        0
    ]


def attached(url: str, version: str) -> bool:
    return bool(
        rows_of(
            url,
            "SELECT 1 FROM pg_inherits WHERE inhparent = 'recommendations'::regclass "
            "AND inhrelid = to_regclass(%s)",
            (publish.table_name(version),),
        )
    )


def served(url: str) -> tuple:
    return rows_of(url, "SELECT reco_version, previous_reco_version FROM serving_pointer")[0]


class Background:
    """Run `fn(*args)` in a thread; `result()` joins and returns its value or raises its error."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by result()
            self.error = exc

    def result(self, timeout: float = 60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the operation never finished"
        if self.error is not None:
            raise self.error
        return self.value


def four_versions(url: str) -> None:
    """old1, old2 audited (never served); live1 previous, live2 live."""
    for name in ("old1", "old2"):
        seed_version(url, name, f"model-{name}", range(1, 4), publish_it=False)
    for name in ("live1", "live2"):
        seed_version(url, name, f"model-{name}", range(1, 4))


def begin_publish(conn, version: str) -> None:
    """What publish() does, left uncommitted: pointer locked and switched, version marked."""
    with conn.cursor() as cur:
        cur.execute(publish.query("pointer", "lock"))
        cur.execute(publish.query("versions", "lock"), (version,))
        cur.execute(publish.query("pointer", "switch_reco"), (version,))
        cur.execute(publish.query("versions", "mark_published"), (version,))


def begin_retire(conn, version: str) -> None:
    """What retire_old() does to one version before its commit, left uncommitted."""
    with conn.cursor() as cur:
        cur.execute(publish.query("pointer", "lock"))
        cur.execute(publish.query("experiments", "lock_for_retire"))
        cur.execute(publish.query("tables", "lock_name"), (publish.table_name(version),))
        cur.execute(publish.query("versions", "set_status"), ("retired", version))


def test_retire_waits_for_a_publish_in_flight_and_keeps_what_it_serves(url):
    four_versions(url)
    holder = psycopg2.connect(url)
    try:
        begin_publish(holder, "old1")
        retire = Background(publish.retire_old, keep=0, url=as_app(url, "race-retire"))
        wait_for(lambda: waits_on_a_lock(url, "race-retire"), 20, "retire waiting on publish")
        holder.commit()
    finally:
        holder.close()
    assert sorted(retire.result()) == ["live1", "old2"]
    assert served(url) == ("old1", "live2")
    assert status_of(url, "old1") == "published" and attached(url, "old1")
    assert rows_of(url, "SELECT count(*) FROM recommendations WHERE reco_version = 'old1'") == [
        (3,)
    ]
    assert status_of(url, "old2") == "retired" and not attached(url, "old2")


def test_publish_of_a_version_being_retired_waits_then_fails_cleanly(url):
    four_versions(url)
    holder = psycopg2.connect(url)
    try:
        begin_retire(holder, "old2")
        attempt = Background(publish.publish, "old2", as_app(url, "race-publish"))
        wait_for(lambda: waits_on_a_lock(url, "race-publish"), 20, "publish waiting on retire")
        holder.commit()
    finally:
        holder.close()
    with pytest.raises(publish.PublishError, match="old2 is retired"):
        attempt.result()
    assert served(url) == ("live2", "live1")


def test_retire_waits_for_an_experiment_start_in_flight(url):
    four_versions(url)
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:
            cur.execute(publish.query("experiments", "lock"))
            cur.execute(publish.query("experiments", "insert"), ("race-exp", "salt"))
            cur.execute(
                publish.query("experiments", "insert_variant"), ("race-exp", "a", "old2", 1.0)
            )
        retire = Background(publish.retire_old, keep=0, url=as_app(url, "race-retire"))
        wait_for(lambda: waits_on_a_lock(url, "race-retire"), 20, "retire waiting on start")
        holder.commit()
    finally:
        holder.close()
    assert sorted(retire.result()) == ["old1"]
    assert status_of(url, "old2") == "audited" and attached(url, "old2")


def test_experiment_start_on_a_version_being_retired_waits_then_fails_cleanly(url):
    four_versions(url)
    holder = psycopg2.connect(url)
    try:
        begin_retire(holder, "old2")
        variants = [experiments.VariantSpec("a", "old2", 1.0)]
        attempt = Background(experiments.start, "race-exp", variants, url=as_app(url, "race-ab"))
        wait_for(lambda: waits_on_a_lock(url, "race-ab"), 20, "start waiting on retire")
        holder.commit()
    finally:
        holder.close()
    with pytest.raises(experiments.ExperimentError, match="old2 is retired, not audited"):
        attempt.result()
    assert [e for e in experiments.show(url) if e["active"]] == []


class PausedRows:
    """Rows for a load that stops mid-stream (a zombie task) until `release` is set."""

    def __init__(self, users: range, salt: str) -> None:
        self.users, self.salt = users, salt
        self.paused, self.release = threading.Event(), threading.Event()

    def __iter__(self):
        half = len(self.users) // 2
        for i, user in enumerate(self.users):
            if i == half:
                self.paused.set()
                assert self.release.wait(60), "the test never released the zombie"
            yield user, items_for(user, self.salt)


def test_duplicate_loader_and_audit_wait_for_the_zombie_load(url):
    zombie_rows = PausedRows(range(1, 201), "zombie")
    zombie = Background(publish.load_recommendations, zombie_rows, "dup", "m", url)
    try:
        assert zombie_rows.paused.wait(30), "the zombie load never started"
        retry_rows = [(u, items_for(u, "retry")) for u in range(1, 151)]
        retry = Background(
            publish.load_recommendations, retry_rows, "dup", "m", as_app(url, "race-retry")
        )
        wait_for(lambda: waits_on_a_lock(url, "race-retry"), 20, "the retry waiting")
        audit = Background(publish.audit, "dup", 150, url=as_app(url, "race-audit"))
        wait_for(lambda: waits_on_a_lock(url, "race-audit"), 20, "the audit waiting")
        assert rows_of(url, "SELECT count(*) FROM reco_versions WHERE reco_version = 'dup'") == [
            (0,)
        ]
    finally:
        zombie_rows.release.set()
    assert zombie.result() == retry.result() == publish.table_name("dup")
    report = audit.result()
    assert (report.n_rows, report.problems) == (150, [])
    assert status_of(url, "dup") == "audited"
    stored = dict(rows_of(url, "SELECT user_id, items FROM recommendations"))
    assert stored == {u: ",".join(items) for u, items in retry_rows}
    with pytest.raises(publish.PublishError, match="already audited"):
        publish.load_recommendations(retry_rows, "dup", "m", url)
    assert status_of(url, "dup") == "audited"


def test_retire_skips_a_failed_version_that_is_being_reloaded(url):
    rows = [(1, items_for(1, "f")), (1, items_for(1, "f"))]
    with pytest.raises(publish.PublishError, match="more than once"):
        publish.load_recommendations(rows, "reload", "m", url)
    assert status_of(url, "reload") == "failed"
    paused = PausedRows(range(1, 41), "reload")
    loader = Background(publish.load_recommendations, paused, "reload", "m", url)
    try:
        assert paused.paused.wait(30), "the reload never started"
        assert publish.retire_old(keep=5, url=url) == []
    finally:
        paused.release.set()
    loader.result()
    assert status_of(url, "reload") == "loaded"
    assert publish.audit("reload", expected_users=40, url=url).problems == []
    # Once nothing holds it, a failed load is retired as before.
    with pytest.raises(publish.PublishError):
        publish.load_recommendations(rows, "again", "m", url)
    assert publish.retire_old(keep=5, url=url) == ["again"]


# ------------------------------------------------------------------ registry follows the pointer
def register(url: str, family: str) -> str:
    sha = hashlib.sha256(family.encode()).hexdigest()
    version = registry.make_version(family, datetime(2025, 1, 1), sha, {"f": family}, "ds")
    return registry.register(
        version, family, {}, {}, {}, "/nowhere", "/nowhere", sha, 1.0, database_url=url
    )


def test_rollback_makes_the_served_model_production_in_the_same_transaction(url):
    first, second = register(url, "item_knn"), register(url, "svd_surprise")
    seed_version(url, "reg-1", first, range(1, 4))
    assert registry.production(url)["model_version"] == first
    seed_version(url, "reg-2", second, range(1, 4))
    assert registry.production(url)["model_version"] == second
    assert registry.get(first, url)["status"] == "retired"

    assert publish.rollback(url) == ("reg-1", "reg-2")
    now = registry.production(url)
    assert now["model_version"] == first
    assert "rolled back from reg-2" in now["status_reason"]
    assert registry.get(second, url)["status"] == "retired"
    assert [r["model_version"] for r in registry.list_versions("production", database_url=url)] == [
        first
    ]


def test_a_failed_rollback_changes_neither_pointer_nor_registry(url):
    first, second = register(url, "item_knn"), register(url, "svd_surprise")
    seed_version(url, "reg-1", first, range(1, 4))
    seed_version(url, "reg-2", second, range(1, 4))
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:  # the registry is busy: the rollback must wait for it
            cur.execute("LOCK TABLE model_registry IN EXCLUSIVE MODE")
        attempt = Background(publish.rollback, as_app(url, "race-rollback"))
        wait_for(lambda: waits_on_a_lock(url, "race-rollback"), 20, "rollback waiting")
        assert served(url) == ("reg-2", "reg-1")  # nothing half-done is visible meanwhile
        with holder.cursor() as cur:
            cur.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'race-rollback'"
            )
        holder.commit()
    finally:
        holder.close()
    with pytest.raises(psycopg2.errors.QueryCanceled):
        attempt.result()
    assert served(url) == ("reg-2", "reg-1")
    assert registry.production(url)["model_version"] == second


def test_publishing_a_model_the_registry_does_not_know_leaves_no_stale_production(url):
    known = register(url, "item_knn")
    seed_version(url, "reg-1", known, range(1, 4))
    seed_version(url, "reg-x", "hand-made-model", range(1, 4))
    assert registry.production(url) is None
    assert "reg-x" in registry.get(known, url)["status_reason"]


def test_a_retire_interrupted_mid_detach_is_finished_by_the_next_one(url):
    four_versions(url)
    table = publish.table_name("old1")
    reader = psycopg2.connect(url)  # a long reader: the detach's second phase waits for it
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM recommendations")
        detacher = psycopg2.connect(as_app(url, "race-detach"))
        detacher.autocommit = True
        with detacher.cursor() as cur:
            cur.execute(publish.query("versions", "set_status"), ("retired", "old1"))
        statement = publish.query("tables", "detach", table=psycopg2.sql.Identifier(table))
        crashed = Background(detacher.cursor().execute, statement)
        wait_for(lambda: waits_on_a_lock(url, "race-detach"), 20, "the detach waiting")
        rows_of(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'race-detach'",
        )  # the retire dies mid-detach
        with pytest.raises(psycopg2.Error):
            crashed.result()
    finally:
        reader.close()
    assert rows_of(
        url,
        "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(%s)",
        (table,),
    ) == [(True,)]
    assert publish.retire_old(keep=5, url=url) == ["old1"]
    assert rows_of(url, "SELECT to_regclass(%s)", (table,)) == [(None,)]
    assert served(url) == ("live2", "live1")
    assert rows_of(url, "SELECT count(*) FROM recommendations") == [(9,)]
