"""The closed loop in compressed time (issue 14's "Done when"), on the session's platform.

A system test: it drives the platform the session runs (its topic, database, lake, serving
tier, monitoring stack and Airflow's own scheduler), as `make demo` does, because retraining on
drift is the scheduler reacting to an asset event, which `dag.test()` does not do. The small
world's live users at 1,000 lines/s run about 400x real time (a simulated hour in 8 s), the
world `make run` and `make demo` use; the compressed clock is this test triggering ingestion
and online evaluation (ops.demo.tick's two steps).

1. Backfill, ingest (the drift reference), catalogue; serving and live users start.
2. Drift: with the users paused, lines where most events come from accounts never seen before
   (past the retrain level, below the quarantine limit) are ingested; `flag_drift` emits the
   asset and the scheduler runs train_and_publish: update 1.
3. The compressed 3-day schedule triggers train_and_publish: update 2. Between the two updates
   no recommendation request failed, as the stream (the users' own record) says.
4. Online accuracy is stored per model version, the served one included.
5. The serving tier stopped on purpose: the hours of the outage show lower availability, and
   OnlineAvailabilityLow reaches alerts.jsonl.
6. A snapshot of only unknown users is quarantined, and SnapshotQuarantined reaches alerts.jsonl.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from contracts import db
from contracts import settings as settings_mod
from jobs.ingest import validate
from jobs.train import registry
from ops import demo, drill, run, supervise
from ops.airflow_api import AirflowAPI
from tests.integration.test_ingest import drifted_lines, produce
from tests.support.harness import wait_for

pytestmark = pytest.mark.integration

SCALE, RATE = "small", 1000
EVALUATE_CONF = {"hours": 72, "window_minutes": 60}
# Hours of the serving outage: an hour is complete one follow-up window (60 min) after its end,
# so the first whole hour inside the outage is complete 3 h after it began; one hour to spare.
OUTAGE_HOURS = 4


@pytest.fixture(scope="module")
def loop(local_services):
    """The small world backfilled and ingested, the catalogue synced, serving (sealing its
    prediction log every 5 s) and live users started, the DAGs unpaused; all stopped, and the
    DAGs paused again if they were, afterwards."""
    cfg = settings_mod.load()
    apps = {app.name: app for app in run.apps(SCALE, RATE)}
    apps["serving"].env["PREDICTION_LOG_SEAL_AGE_S"] = "5"
    api = AirflowAPI.login()
    with contextlib.ExitStack() as dags:
        for dag_id in ("movielog_ingest", "catalog_sync", "online_evaluation"):
            dags.enter_context(drill.unpaused(api, dag_id))
        apps["metadata-api"].start()
        if run.topic_end(cfg) is None:
            run.backfill(SCALE, 3)
        assert step(api, "movielog_ingest") == "success"
        assert step(api, "catalog_sync", {"metadata_api_url": cfg.metadata_api_url}) == "success"
        # Unpaused now, its timetable may start a run at once: it finds the data ingested.
        dags.enter_context(drill.unpaused(api, demo.TRAIN_DAG))
        apps["serving"].start()
        apps["traffic"].argv += ["--start", run.live_start(cfg)]
        apps["traffic"].start()
        try:
            yield api, apps
        finally:
            for name in ("traffic", "serving", "metadata-api"):
                apps[name].stop()


def step(api: AirflowAPI, dag_id: str, conf: dict | None = None) -> str:
    """One run of `dag_id` now, waited for; its state."""
    run_id = api.trigger(dag_id, conf)
    return api.wait_for_run(dag_id, run_id, deadline_s=900, progress=False)["state"]


def new_train_run(api: AirflowAPI, seen: set[str], run_type: str) -> dict:
    """The first train_and_publish run of `run_type` not in `seen`, waited for until it ends."""

    def started():
        return next(
            (
                r
                for r in demo.train_runs(api)
                if r["dag_run_id"] not in seen and r["run_type"] == run_type
            ),
            None,
        )

    found = wait_for(started, 120, f"a {run_type} train_and_publish run", interval=2)
    return found | api.wait_for_run(demo.TRAIN_DAG, found["dag_run_id"], 1200, progress=False)


def served_now(cfg) -> str:
    """The reco version the serving pointer names, once the serving tier answers from it (its
    workers re-read the pointer every few seconds)."""
    pointer = demo.fetch(db.read_sql("serving_pointer.sql"), {})[0][0] or ""
    wait_for(lambda: demo.served_version(cfg) == pointer, 60, f"serving {pointer}", 1)
    return pointer


def idle_training(api: AirflowAPI) -> set[str]:
    """Wait until no train_and_publish run is queued or running; the ids of all runs."""

    def idle():
        runs = demo.train_runs(api)
        return not any(r["state"] in ("queued", "running") for r in runs) and runs

    return {r["dag_run_id"] for r in wait_for(idle, 1200, "training idle", interval=3)}


def retrain_level_lines(start: datetime, n: int = 3_000) -> list[bytes]:
    """`n` watch lines over an event-time hour from `start` (about the live volume, so the
    volume check passes): 60% from accounts never seen, the rest from users of the last
    accepted snapshot, all of its movies (only new_user_share moves)."""
    from jobs.ingest import lake

    last = lake.accepted_snapshots()[-1]
    watched = pq.read_table(
        lake.table_files(last.path, "watch")[0], columns=["user_id", "movie_id"]
    )
    users = watched["user_id"].unique().to_pylist()[:150]
    movies = watched["movie_id"].unique().to_pylist()[:50]
    fresh = int(start.timestamp()) * 1_000  # account ids no earlier run of this test used
    lines = []
    for i in range(n):
        at = (start + timedelta(seconds=i * 3600 // n)).isoformat(timespec="seconds")
        user = fresh + i // 4 if i % 5 < 3 else users[i % len(users)]
        lines.append(f"{at},{user},GET /data/m/{movies[i % len(movies)]}/{i % 90}.mpg".encode())
    return lines


def failed_requests(start: datetime, end: datetime) -> tuple[int, int]:
    """(failed, all) recommendation requests in the accepted snapshots between event times."""
    from jobs.ingest import lake

    failed = total = 0
    for ref in lake.accepted_snapshots(start=start, end=end + timedelta(seconds=1)):
        for path in lake.table_files(ref.path, "reco_request"):
            table = pq.read_table(path, columns=["event_time", "status"])
            when = table["event_time"]
            inside = pc.and_(pc.greater_equal(when, start), pc.less_equal(when, end))
            status = table.filter(inside)["status"]
            total += len(status)
            failed += pc.sum(pc.not_equal(status, 200)).as_py() or 0
    return failed, total


def alert_records() -> list[dict]:
    """The alert receiver's records so far (alerts.jsonl, one per line)."""
    path = settings_mod.load().alerts_log
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fired(alertname: str, after: int) -> bool:
    """Whether `alertname` was received firing after the first `after` records (so an alert
    of an earlier run on a reused platform does not count)."""
    return any(
        r["alertname"] == alertname and r["status"] == "firing" for r in alert_records()[after:]
    )


def online_rows(query: str, args: tuple = ()) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(settings_mod.load().database_url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def test_the_closed_loop_in_compressed_time(loop):
    api, apps = loop
    cfg = settings_mod.load()
    earlier_alerts = len(alert_records())
    seen = idle_training(api)  # a run the timetable started on unpausing has ended
    before = served_now(cfg)

    # 2. drift past the retrain level: the scheduler retrains (update 1), once the served model's
    # data is older than the cooldown (a model just trained is not retrained for the same news)
    cooldown = timedelta(hours=float(validate.thresholds()["retrain_cooldown_hours"]) + 1)
    newest = (registry.production() or {}).get("data_newest_event")
    if newest is not None:
        wait_for(lambda: run.topic_end(cfg) > newest + cooldown, 600, "past the cooldown", 2)
    apps["traffic"].stop()
    assert step(api, "movielog_ingest") == "success"  # the users' lines so far: their own snapshot
    produce(cfg.kafka_topic, cfg.kafka_bootstrap_servers, retrain_level_lines(run.topic_end(cfg)))
    assert step(api, "movielog_ingest") == "success"
    apps["traffic"].argv[-1] = run.live_start(cfg)  # "--start" stays last: continue from here
    apps["traffic"].start()
    first = new_train_run(api, seen, "asset_triggered")
    assert first["state"] == "success", first
    v1 = served_now(cfg)
    t1 = run.topic_end(cfg)

    # 3. the compressed schedule (after a tick's ingestion, so there is new data): update 2
    assert step(api, "movielog_ingest") == "success"
    second_id = api.trigger(demo.TRAIN_DAG, demo.TRAIN_CONF)
    assert api.wait_for_run(demo.TRAIN_DAG, second_id, 1200, progress=False)["state"] == "success"
    v2 = served_now(cfg)
    t2 = run.topic_end(cfg)
    assert before != v1 != v2, (before, v1, v2)

    # 5. the serving tier stopped on purpose, then the users: one ingestion and one online
    # evaluation serve 3, 4 and 5, and the snapshot of 6 holds only its own lines
    supervise.stop("serving")
    outage_from = run.topic_end(cfg)
    down = outage_from + timedelta(hours=OUTAGE_HOURS)
    wait_for(lambda: run.topic_end(cfg) > down, 180, f"{OUTAGE_HOURS} h down", 1)
    apps["traffic"].stop()
    assert step(api, "movielog_ingest") == "success"
    assert step(api, "online_evaluation", EVALUATE_CONF) == "success"

    # 3. no failed request between the two updates, as the stream (the users' own record) says
    failed, total = failed_requests(t1, t2)
    assert total > 100 and failed == 0, (failed, total, t1, t2)

    # 4. online accuracy per model version, the version served between the updates included
    model_v1 = v1.removeprefix("reco-")
    rows = online_rows(
        "SELECT sum(lists), sum(hits) FROM online_metrics WHERE model_version = %s", (model_v1,)
    )
    assert rows[0][0] and rows[0][0] > 0, (model_v1, rows)

    # 5. the hours of the outage: lower availability, and its alert (the pushed figure is the
    # latest complete hour, one inside the outage: OUTAGE_HOURS)
    hours = online_rows(
        "SELECT hour, availability FROM online_metrics WHERE model_version = '*'"
        " AND variant = '*' AND hour > %s AND complete ORDER BY hour",
        (outage_from,),
    )
    assert hours and max(a for _hour, a in hours) < 0.5, hours

    # 6. a quarantined snapshot fires its alert (both alerts awaited together)
    produce(cfg.kafka_topic, cfg.kafka_bootstrap_servers, drifted_lines(400))
    assert step(api, "movielog_ingest") == "failed"  # `mark` fails: quarantined
    for alert in ("OnlineAvailabilityLow", "SnapshotQuarantined"):
        wait_for(lambda a=alert: fired(a, earlier_alerts), 180, f"{alert} in alerts", 2)
