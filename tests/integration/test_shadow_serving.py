"""Shadow deployment and experiment arms on the deployed serving tier (gunicorn, 2 workers) over
a private Postgres cluster:

- a shadow version is never served, yet every served answer's log line records what it would
  have answered (its list, or null where it has no row for the user), and retire keeps it;
- an experiment arm named by a model version is scored (real Spark) and published for it, and
  the running server routes to it at its next pointer refresh, with no restart;
- variant shares hold within 1 point over 10,000 users and are the same after a restart (two
  servers at once: tests/integration/test_serving_gunicorn.py).
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime

import psycopg2
import pytest

from jobs import pipeline
from jobs.publish import experiments, publish
from jobs.train import registry
from serving import ab
from tests.integration.test_score import random_factor_model
from tests.support.harness import Client, PrivateDatabase, ServingProcess, seed_version, wait_for

pytestmark = pytest.mark.integration

USERS = range(1, 201)  # scored in the live version
SHADOW_USERS = range(1, 151)  # scored in the shadow: 151..200 have no row there
UNKNOWN = 5000  # in neither: served the popularity list
POPULAR = [f"pop{i}" for i in range(20)]
# Not about slow lookups: a lookup on this loaded 2-core machine must not time out at 50 ms.
NOT_ABOUT_TIMEOUTS = {"SERVING_STATEMENT_TIMEOUT_MS": "2000"}


@pytest.fixture(scope="module")
def world():
    db = PrivateDatabase().create()
    url = db.owner_url
    state = {
        "db": db,
        "live": seed_version(url, "sh-live", "m-live", USERS),
        "shadow": seed_version(url, "sh-cand", "m-cand", SHADOW_USERS, publish_it=False),
    }
    seed_version(url, "sh-old", "m-old", [1], publish_it=False)  # nothing protects it
    publish.load_recommendations([(1, [f"x{i}" for i in range(20)])], "sh-loaded", "m-x", url)
    publish.publish_popular(POPULAR, datetime(2025, 1, 2, tzinfo=UTC), url)
    state["server"] = ServingProcess(db.reader_url, extra_env=NOT_ABOUT_TIMEOUTS).start()
    yield state
    state["server"].stop()
    db.destroy()


def every_worker(base_url: str, check, tries: int = 12) -> bool:
    """True when `check(/version body)` holds on fresh connections (spread over the workers)."""
    for _ in range(tries):
        c = Client(base_url)
        try:
            if not check(c.get("/version")[2]):
                return False
        finally:
            c.close()
    return True


def logged(server: ServingProcess) -> dict[str, dict]:
    """Every prediction-log record the server has written so far (active and sealed files)."""
    records = {}
    for path in server.log_dir.glob("predictions-*.jsonl"):
        for line in path.read_text().splitlines():
            if line.endswith("}"):  # a line being written is complete only with its newline
                record = json.loads(line)
                records[record["request_id"]] = record
    return records


def test_a_shadow_is_never_served_yet_its_lists_are_logged(world):
    db, server = world["db"], world["server"]
    url = db.owner_url
    with pytest.raises(experiments.ExperimentError, match="sh-live is served"):
        experiments.start_shadow("sh-live", url)
    with pytest.raises(experiments.ExperimentError, match="sh-loaded is loaded, not audited"):
        experiments.start_shadow("sh-loaded", url)
    with pytest.raises(experiments.ExperimentError, match="nope is unknown"):
        experiments.start_shadow("nope", url)
    assert experiments.start_shadow("sh-cand", url) == "sh-cand"
    assert experiments.active_shadow(url)["reco_version"] == "sh-cand"
    wait_for(
        lambda: every_worker(server.base_url, lambda body: "shadow=sh-cand" in body),
        15,
        "the shadow seen by every worker",
    )

    c = Client(server.base_url)
    asked = {}
    for user in [*USERS, UNKNOWN]:
        status, headers, body = c.get(f"/recommend/{user}")
        assert status == 200
        assert headers.get("X-Reco-Version") != "sh-cand"
        if user == UNKNOWN:
            assert (headers["X-Rec-Source"], body) == ("popular", ",".join(POPULAR))
        else:
            assert (headers["X-Reco-Version"], body) == ("sh-live", world["live"][user])
        asked[headers["X-Request-Id"]] = (user, body)
    c.close()

    records = wait_for(
        lambda: (got := logged(server)).keys() >= asked.keys() and got,
        15,
        "every answer in the prediction log",
    )
    for request_id, (user, body) in asked.items():
        record = records[request_id]
        assert record["items"] == body and record["reco_version"] != "sh-cand"
        assert record["shadow_version"] == "sh-cand"
        assert record["shadow_items"] == world["shadow"].get(user), user  # None: no row
    assert sum(r["shadow_items"] is not None for r in records.values()) == len(SHADOW_USERS)

    metrics = Client(server.base_url).get("/metrics")[2]
    assert 'recs_shadow_lookups_total{outcome="answered"}' in metrics

    retired = publish.retire_old(keep=0, url=url)
    assert "sh-old" in retired and "sh-cand" not in retired and "sh-live" not in retired
    assert publish.served_rows("sh-cand", url) == len(SHADOW_USERS)

    assert experiments.stop_shadow(url) == "sh-cand"
    assert experiments.stop_shadow(url) is None
    wait_for(
        lambda: every_worker(server.base_url, lambda body: "shadow=" not in body),
        15,
        "the shadow gone from every worker",
    )
    c = Client(server.base_url)
    request_id = c.get("/recommend/3")[1]["X-Request-Id"]
    c.close()
    record = wait_for(lambda: logged(server).get(request_id), 15, "the answer after the stop")
    assert "shadow_version" not in record and "shadow_items" not in record


def register_factor_model(url: str, directory) -> str:
    """A random-factor model saved at `directory` and registered as a candidate."""
    random_factor_model(seed=3).save(directory)
    sha = registry.artifact_sha256(directory)
    version = registry.make_version("svd_surprise", datetime(2025, 1, 1), sha, {}, "ds")
    return registry.register(
        version, "svd_surprise", {}, {}, {}, "/nowhere", directory, sha, 1.0, database_url=url
    )


def test_an_arm_named_by_a_model_version_is_scored_published_and_served_without_restart(
    world, spark, tmp_path, monkeypatch
):
    db, server = world["db"], world["server"]
    url = db.owner_url
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))  # where the scores are written
    model_version = register_factor_model(url, tmp_path / "svd")
    reco_version = pipeline.reco_version_for(model_version)
    assert publish.version_status(reco_version, url) is None

    experiments.start(
        "sh-model-arm",
        [
            experiments.VariantSpec("a", "sh-live", 0.5),
            experiments.VariantSpec("b", model_version, 0.5),
        ],
        salt="arm-salt",
        url=url,
    )
    try:
        assert publish.version_status(reco_version, url) == "audited"  # attached, not served
        assert publish.served_rows(reco_version, url) == 240  # every user the model knows
        arms = experiments.describe("sh-model-arm", url)["variants"]
        assert [(v.variant, v.reco_version) for v in arms] == [
            ("a", "sh-live"),
            ("b", reco_version),
        ]
        variants = (ab.Variant("a", "", "", 0.5), ab.Variant("b", "", "", 0.5))
        user = next(
            u for u in range(7, 7 * 241, 7) if ab.assign("arm-salt", u, variants).name == "b"
        )
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT items FROM recommendations WHERE reco_version = %s AND user_id = %s",
                (reco_version, user),
            )
            (expected,) = cur.fetchone()
        conn.close()

        c = Client(server.base_url)
        status, headers, body = wait_for(
            lambda: (
                (got := c.get(f"/recommend/{user}"))[1].get("X-Reco-Version") == reco_version
                and got
            ),
            15,
            "the model's arm served by the running server",
        )
        c.close()
        assert (status, headers["X-Variant"], headers["X-Model-Version"], body) == (
            200,
            "b",
            model_version,
            expected,
        )
        # A second start for the same model reuses its lists (no new scoring, same version).
        assert experiments.resolve_version(model_version, url) == reco_version
        assert reco_version not in publish.retire_old(keep=0, url=url)
    finally:
        experiments.stop(url=url)


def sweep(base_url: str, users: list[int], threads: int = 4) -> dict[int, str]:
    """Each user's X-Variant from one server; a cache answer (the degraded path, which has no
    variant) is asked again until the database answers."""
    seen: dict[int, str] = {}

    def run(part: list[int]) -> None:
        c = Client(base_url)
        for user in part:
            headers = wait_for(
                lambda user=user: (h := c.get(f"/recommend/{user}")[1]).get("X-Variant") and h,
                30,
                f"a routed answer for user {user}",
            )
            seen[user] = headers["X-Variant"]
        c.close()

    workers = [threading.Thread(target=run, args=(users[i::threads],)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(300)
    assert not any(t.is_alive() for t in workers)
    return seen


def test_variant_shares_hold_over_10000_users_and_survive_a_restart(world):
    db, server = world["db"], world["server"]
    url = db.owner_url
    seed_version(url, "sh-ab-b", "m-b", USERS, publish_it=False)  # the others may be retired
    salt = experiments.start(
        "sh-ab",
        [
            experiments.VariantSpec("a", "sh-live", 0.4),
            experiments.VariantSpec("b", "sh-ab-b", 0.6),
        ],
        salt=hashlib.sha256(b"restart").hexdigest()[:16],
        url=url,
        replace=True,
    )
    try:
        wait_for(
            lambda: every_worker(server.base_url, lambda body: "experiment=sh-ab" in body),
            15,
            "the experiment seen by every worker",
        )
        users = list(range(1, 10_001))
        before = sweep(server.base_url, users)
        server.stop()
        world["server"] = server = ServingProcess(db.reader_url, extra_env=NOT_ABOUT_TIMEOUTS)
        server.start()
        after = sweep(server.base_url, users)
        assert len(before) == len(users) and before == after
        variants = (ab.Variant("a", "", "", 0.4), ab.Variant("b", "", "", 0.6))
        assert before == {u: ab.assign(salt, u, variants).name for u in users}
        share_a = sum(v == "a" for v in before.values()) / len(users)
        assert abs(share_a - 0.4) <= 0.01, share_a
    finally:
        experiments.stop(url=url)
