"""`make demo`: the closed loop in compressed time, with model updates you can watch.

What runs is `make run`'s system; what is compressed is time:
1. the services (started by the Makefile), the metadata API and, when the topic is empty, a
   backfill of `--days` simulated days; a first model through the pipeline when none is served;
2. the serving tier and the simulator's live users, who ask it for recommendations, at
   `--rate` lines/s (on the small world about 8,000 lines are one simulated hour), with
   `--fault` world changes (taste drift, new movies) from the start of the live stream;
3. a compressed clock: every `--tick` seconds it triggers movielog_ingest and then
   online_evaluation (their hourly schedule, compressed), and train_and_publish every
   `--train-every` ticks (its 3-day schedule, compressed); the drift and accuracy-drop assets
   (jobs/train/triggers.py) schedule further training runs through Airflow's own scheduler;
4. it prints a timeline (snapshot verdicts, online accuracy per model version, every
   train_and_publish run with what started it, every change of the served version) and stops
   after `--updates` automated model updates or `--minutes`. The system is left running.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass, field

import requests

from contracts import db
from contracts import settings as settings_mod
from ops import pipeline, run, services
from ops.airflow_api import AirflowAPI

TRAIN_DAG = "train_and_publish"
CLOCK_DAGS = ("movielog_ingest", "online_evaluation")
# Compressed runs of online_evaluation recompute more event-time hours than the hourly
# schedule: one tick covers several simulated hours.
EVALUATE_CONF = {"hours": 24, "window_minutes": 60}
# The compressed schedule starts the runs the timetable would: the DAG's default params (every
# candidate family; item_knn alone can lose to popularity, and the gate then keeps production).
TRAIN_CONF: dict = {}
# A world that changes: half the catalogue again in new movies each simulated day (ingestion
# flags the day's first snapshot: new-movie share about 0.13 against 0.01-0.07 when stable,
# docs/monitoring.md), and half the users' tastes turning each day.
DEFAULT_FAULTS = ("new_movies=0.5", "drift=0.5")


@dataclass
class Timeline:
    """What the demo saw, printed as it happens and summarised at the end."""

    started: float = field(default_factory=time.monotonic)
    served: list[tuple[float, str]] = field(default_factory=list)
    runs: dict[str, dict] = field(default_factory=dict)
    ours: set[str] = field(default_factory=set)  # runs the compressed clock triggered

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f} s] {text}", flush=True)

    def served_version(self, version: str) -> bool:
        """Record the served reco version; True when it changed."""
        if self.served and self.served[-1][1] == version:
            return False
        self.served.append((time.monotonic() - self.started, version))
        self.say(f"serving {version}")
        return True


def served_version(cfg: settings_mod.Settings) -> str:
    """The reco version the serving tier answers from now ('' when none)."""
    text = requests.get(f"http://127.0.0.1:{cfg.serving_port}/version", timeout=5).text
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields.get("reco_version", "")


def train_runs(api: AirflowAPI) -> list[dict]:
    """train_and_publish runs, newest first: id, state, run type (what started it)."""
    path = f"/dags/{TRAIN_DAG}/dagRuns?order_by=-run_after&limit=20"
    return api.call("GET", path).get("dag_runs", [])


def note_train_runs(api: AirflowAPI, timeline: Timeline) -> None:
    """Print every automated train_and_publish run that started or ended since the last look
    (runs other people or tests trigger by hand are left out)."""
    for dag_run in reversed(train_runs(api)):
        run_id, state = dag_run["dag_run_id"], dag_run["state"]
        if not automated(dag_run, timeline) or timeline.runs.get(run_id, {}).get("state") == state:
            continue
        timeline.runs[run_id] = dag_run
        started_by = "compressed schedule" if run_id in timeline.ours else dag_run["run_type"]
        timeline.say(f"{TRAIN_DAG} {run_id} ({started_by}): {state}")


def automated(dag_run: dict, timeline: Timeline) -> bool:
    """Started by the compressed clock, an asset event or Airflow's own schedule."""
    return dag_run["dag_run_id"] in timeline.ours or dag_run["run_type"] != "manual"


def automated_updates(timeline: Timeline, baseline: set[str]) -> int:
    """Model updates since the demo began: changes of the served version, as many as
    automated training runs succeeded (a run whose model the gate kept out changes nothing)."""
    succeeded = sum(
        1
        for run_id, dag_run in timeline.runs.items()
        if run_id not in baseline and dag_run["state"] == "success"
    )
    return min(succeeded, len(timeline.served) - 1)


def online_accuracy(limit: int = 6) -> list[tuple]:
    """The newest hours of online accuracy per model version (all variants together)."""
    return fetch(db.read_sql("ops/online_accuracy_latest.sql"), {"n": limit})


def model_served() -> bool:
    """True when the serving pointer names a published reco version."""
    return any(row[0] for row in fetch(db.read_sql("serving_pointer.sql"), {}))


def fetch(query: str, args: dict) -> list[tuple]:
    with contextlib.closing(db.connect()) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def tick(api: AirflowAPI, timeline: Timeline, train: bool) -> None:
    """One step of the compressed clock: ingest, evaluate online, maybe train (not waited)."""
    for dag_id in CLOCK_DAGS:
        conf = EVALUATE_CONF if dag_id == "online_evaluation" else None
        run_id = api.trigger(dag_id, conf)
        outcome = api.wait_for_run(dag_id, run_id, deadline_s=600, progress=False)
        timeline.say(f"{dag_id}: {outcome['state']}")
    for hour, version, lists, accuracy, low, high in online_accuracy(3):
        timeline.say(
            f"  online accuracy {hour:%m-%d %H:00} {version}: {accuracy:.3f} "
            f"[{low:.3f}, {high:.3f}] over {lists} lists"
        )
    if train:
        run_id = api.trigger(TRAIN_DAG, TRAIN_CONF)
        timeline.ours.add(run_id)
        timeline.say(f"{TRAIN_DAG} {run_id} triggered by the compressed 3-day schedule")


def traffic(app: run.App, faults: list[str]) -> run.App:
    """`make run`'s live users at a compressed rate, from the newest event, with world
    changes."""
    faults_argv = [arg for fault in faults for arg in ("--fault", fault)]
    app.argv = [*app.argv, "--start", run.live_start(settings_mod.load()), *faults_argv]
    return app


def prepare(args, timeline: Timeline) -> None:
    """Metadata API, reports site, backfill and a first model when missing; then serving and
    live users."""
    apps = {app.name: app for app in run.apps(args.scale, args.rate)}
    apps["metadata-api"].start()
    apps["reports"].start()
    if run.topic_end(settings_mod.load()) is None:
        timeline.say(f"backfilling {args.days} simulated days ({args.scale} world)")
        run.backfill(args.scale, args.days)
    run.schedule_live_loop()  # parsed and unpaused: the asset triggers need the scheduler
    if not model_served():
        timeline.say("no model is served yet: running the pipeline once")
        if pipeline.run(conf={TRAIN_DAG: TRAIN_CONF}) != 0:
            raise services.ServiceError("the first pipeline run failed (above)")
    # Answers reach the lake within a fraction of a tick (takes effect when serving starts).
    apps["serving"].env["PREDICTION_LOG_SEAL_AGE_S"] = str(max(5.0, args.tick / 4))
    apps["serving"].start()
    live = traffic(apps["traffic"], args.fault)
    live.stop()  # restarted with this run's start time, rate and faults
    live.start()


def loop(args, api: AirflowAPI, timeline: Timeline) -> int:
    """Run the compressed clock until enough automated updates or the time limit."""
    cfg = settings_mod.load()
    timeline.runs = {dag_run["dag_run_id"]: dag_run for dag_run in train_runs(api)}
    baseline = set(timeline.runs)
    timeline.served_version(served_version(cfg))
    end = time.monotonic() + args.minutes * 60
    n = 0
    while time.monotonic() < end:
        n += 1
        tick(api, timeline, train=args.train_every > 0 and n % args.train_every == 0)
        note_train_runs(api, timeline)
        timeline.served_version(served_version(cfg))
        if automated_updates(timeline, baseline) >= args.updates:
            timeline.say(f"{args.updates} automated model updates: done")
            return 0
        time.sleep(max(0.0, args.tick - (time.monotonic() - timeline.started) % args.tick))
    timeline.say(f"time is up after {args.minutes} minutes")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.demo", description=__doc__)
    parser.add_argument("--scale", default="small", choices=["tiny", "small"])
    parser.add_argument("--days", type=int, default=7, help="backfilled days on an empty topic")
    parser.add_argument("--rate", type=int, default=400, help="live lines per second")
    parser.add_argument(
        "--fault",
        action="append",
        help=f"KIND=RATE, repeatable (default: {' '.join(DEFAULT_FAULTS)})",
    )
    parser.add_argument("--tick", type=float, default=60, help="seconds per compressed tick")
    parser.add_argument("--train-every", type=int, default=6, help="ticks; 0 = only triggers")
    parser.add_argument("--updates", type=int, default=2, help="stop after this many")
    parser.add_argument("--minutes", type=float, default=20)
    args = parser.parse_args(argv)
    args.fault = args.fault or list(DEFAULT_FAULTS)
    timeline = Timeline()
    try:
        api = AirflowAPI.login()
        prepare(args, timeline)
        return loop(args, api, timeline)
    except services.ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
