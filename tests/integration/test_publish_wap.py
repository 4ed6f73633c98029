"""Write–audit–publish against a real (private, throwaway) Postgres.

A private cluster, not the shared one: these tests move `serving_pointer`, which is a single
row that the running platform and other suites read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import psycopg2
import pytest

from contracts.settings import REPO_ROOT
from jobs.publish import experiments, publish
from tests.support.harness import PrivateDatabase, items_for, seed_version, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def db():
    database = PrivateDatabase().create()
    yield database
    database.destroy()


def query(url: str, sql: str, params=None):
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else None
    conn.close()
    return rows


def pointer(url: str):
    return query(
        url, "SELECT reco_version, previous_reco_version, popular_version FROM serving_pointer"
    )[0]


def version_status(url: str, version: str) -> str:
    return query(url, "SELECT status FROM reco_versions WHERE reco_version = %s", (version,))[0][0]


def attached(url: str, version: str) -> bool:
    return bool(
        query(
            url,
            "SELECT 1 FROM pg_inherits WHERE inhparent = 'recommendations'::regclass "
            "AND inhrelid = to_regclass(%s)",
            (publish.table_name(version),),
        )
    )


def table_exists(url: str, version: str) -> bool:
    return query(url, "SELECT to_regclass(%s)", (publish.table_name(version),))[0][0] is not None


def test_load_audit_publish_and_read_back(db):
    served = seed_version(db.owner_url, "wap-v1", "model-a", range(1, 201))
    assert pointer(db.owner_url)[0] == "wap-v1"
    assert version_status(db.owner_url, "wap-v1") == "published"
    assert attached(db.owner_url, "wap-v1")
    rows = query(
        db.reader_url,
        "SELECT user_id, items FROM recommendations WHERE reco_version = 'wap-v1' "
        "AND user_id IN (1, 200) ORDER BY user_id",
    )
    assert rows == [(1, served[1]), (200, served[200])]
    assert query(db.owner_url, "SELECT n_users FROM reco_versions WHERE reco_version='wap-v1'") == [
        (200,)
    ]


def test_reader_role_cannot_write(db):
    seed_version(db.owner_url, "wap-ro", "model-a", range(1, 5), publish_it=False)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(db.reader_url, "UPDATE serving_pointer SET reco_version = 'wap-ro'")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(db.reader_url, "DELETE FROM recommendations")


def test_catalog_smaller_than_k_expects_the_whole_catalog(db):
    catalog = ["a", "b", "c"]
    rows = [(u, ["c", "a", "b"]) for u in range(1, 4)]
    publish.load_recommendations(rows, "wap-small", "m", db.owner_url)
    report = publish.audit("wap-small", expected_users=3, catalog=catalog, url=db.owner_url)
    assert (report.k, report.problems) == (3, [])


@pytest.mark.parametrize(
    ("rows", "kwargs", "problem"),
    [
        ([(1, items_for(1, "x")[:19])], {}, "exactly 20 ids"),
        ([(1, items_for(1, "x")[:19] + [items_for(1, "x")[0]])], {}, "repeat an id"),
        ([(1, items_for(1, "x"))], {"expected_users": 2}, "expected 2 users"),
        (
            [(1, items_for(1, "x"))],
            {"catalog": items_for(1, "x")[1:] + ["z"]},
            "not in the catalog",
        ),
    ],
)
def test_failed_audit_never_reaches_serving(db, rows, kwargs, problem):
    version = f"wap-bad-{abs(hash(problem)) % 10**8}"
    before = pointer(db.owner_url)
    publish.load_recommendations(rows, version, "m", db.owner_url)
    with pytest.raises(publish.AuditError) as err:
        publish.audit(version, url=db.owner_url, **kwargs)
    assert any(problem in p for p in err.value.problems)
    assert version_status(db.owner_url, version) == "failed"
    assert not attached(db.owner_url, version)
    with pytest.raises(publish.PublishError, match="only an audited version"):
        publish.publish(version, db.owner_url)
    assert pointer(db.owner_url) == before


def test_duplicate_user_fails_the_load(db):
    rows = [(1, items_for(1, "d")), (1, items_for(1, "d"))]
    with pytest.raises(publish.PublishError, match="more than once"):
        publish.load_recommendations(rows, "wap-dup", "m", db.owner_url)
    assert version_status(db.owner_url, "wap-dup") == "failed"
    assert not table_exists(db.owner_url, "wap-dup")


def test_exception_mid_copy_leaves_serving_untouched(db):
    seed_version(db.owner_url, "wap-live", "model-a", range(1, 11))
    before = pointer(db.owner_url)

    def rows():
        for user in range(1, 50_001):
            if user == 30_000:
                raise RuntimeError("scorer crashed")
            yield user, items_for(user, "crash")

    with pytest.raises(RuntimeError, match="scorer crashed"):
        publish.load_recommendations(rows(), "wap-crash", "m", db.owner_url)
    assert pointer(db.owner_url) == before
    assert version_status(db.owner_url, "wap-crash") == "failed"
    assert not table_exists(db.owner_url, "wap-crash")
    # A bad row is the same kind of crash, named.
    with pytest.raises(ValueError, match="row 3"):
        publish.load_recommendations(
            [(1, ["a"]), (2, ["b"]), (3, ["bad,id", "x"])], "wap-crash", "m", db.owner_url
        )
    assert pointer(db.owner_url) == before


KILLED_LOADER = """
import sys, time
from jobs.publish import publish
def rows():
    for user in range(1, 40_001):
        yield user, [f"k{user % 97}-{j}" for j in range(20)]
    time.sleep(600)  # stuck mid-COPY until killed
publish.load_recommendations(rows(), "wap-killed", "m", sys.argv[1])
"""


def test_killed_loader_leaves_serving_untouched_and_can_rerun(db):
    seed_version(db.owner_url, "wap-live2", "model-a", range(1, 11))
    before = pointer(db.owner_url)
    url = db.owner_url + "?application_name=wap-killed-loader"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOADER, url],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    progress_sql = (
        "SELECT p.tuples_processed FROM pg_stat_progress_copy p JOIN pg_stat_activity a "
        "USING (pid) WHERE a.application_name = 'wap-killed-loader'"
    )
    try:
        wait_for(lambda: (query(db.owner_url, progress_sql) or [(0,)])[0][0] > 1000, 60, "COPY")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    wait_for(
        lambda: (
            not query(
                db.owner_url,
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wap-killed-loader'",
            )
        ),
        30,
        "the killed loader's backend to end",
    )
    assert pointer(db.owner_url) == before
    assert not table_exists(db.owner_url, "wap-killed")
    # The same version loads cleanly on a rerun.
    rows = [(u, items_for(u, "rerun")) for u in range(1, 6)]
    publish.load_recommendations(rows, "wap-killed", "m", db.owner_url)
    publish.audit("wap-killed", expected_users=5, url=db.owner_url)
    assert version_status(db.owner_url, "wap-killed") == "audited"


def test_publish_rollback_and_reload_refusal(db):
    seed_version(db.owner_url, "wap-r1", "model-a", range(1, 4))
    seed_version(db.owner_url, "wap-r2", "model-b", range(1, 4))
    assert pointer(db.owner_url)[:2] == ("wap-r2", "wap-r1")
    assert publish.rollback(db.owner_url) == ("wap-r1", "wap-r2")
    assert pointer(db.owner_url)[:2] == ("wap-r1", "wap-r2")
    assert publish.rollback(db.owner_url) == ("wap-r2", "wap-r1")
    assert publish.publish("wap-r2", db.owner_url) == "wap-r2"  # already live: no-op
    with pytest.raises(publish.PublishError, match="already published"):
        publish.load_recommendations([(1, ["a"])], "wap-r2", "m", db.owner_url)


def test_publish_popular_keeps_the_previous_list(db):
    first = publish.publish_popular(
        [f"p{i}" for i in range(20)], datetime(2025, 1, 1, tzinfo=UTC), db.owner_url
    )
    second = publish.publish_popular(
        [f"q{i}" for i in range(20)], datetime(2025, 1, 2, tzinfo=UTC), db.owner_url
    )
    assert pointer(db.owner_url)[2] == second
    assert publish.rollback(db.owner_url, popular=True) == (first, second)
    with pytest.raises(ValueError, match="distinct"):
        publish.publish_popular(["a", "a"], datetime(2025, 1, 3, tzinfo=UTC), db.owner_url)


def test_experiments_and_retire_keep_what_is_in_use(db):
    for n in range(1, 6):
        seed_version(db.owner_url, f"wap-old{n}", "m", range(1, 3), publish_it=n >= 4)
    # live = old5, previous = old4; old1 is in an experiment; keep=1 protects only the newest.
    salt = experiments.start(
        "wap-exp",
        [
            experiments.VariantSpec("a", "wap-old1", 0.5),
            experiments.VariantSpec("b", "wap-old5", 0.5),
        ],
        url=db.owner_url,
    )
    assert salt
    with pytest.raises(experiments.ExperimentError, match="is active"):
        experiments.start(
            "wap-exp2", [experiments.VariantSpec("a", "wap-old2", 1.0)], url=db.owner_url
        )
    with pytest.raises(experiments.ExperimentError, match="not audited"):
        experiments.start(
            "wap-exp3",
            [experiments.VariantSpec("a", "nope", 1.0)],
            url=db.owner_url,
            replace=True,
        )
    shown = experiments.show(db.owner_url)
    assert shown[0]["experiment_id"] == "wap-exp" and shown[0]["active"]
    retired = publish.retire_old(keep=1, url=db.owner_url)
    for kept in ("wap-old1", "wap-old4", "wap-old5"):
        assert kept not in retired and attached(db.owner_url, kept)
    assert {"wap-old2", "wap-old3"} <= set(retired)
    assert not table_exists(db.owner_url, "wap-old2")
    assert version_status(db.owner_url, "wap-old2") == "retired"
    assert experiments.stop(url=db.owner_url) == "wap-exp"
    assert experiments.stop(url=db.owner_url) is None
    assert "wap-old1" in publish.retire_old(keep=1, url=db.owner_url)
