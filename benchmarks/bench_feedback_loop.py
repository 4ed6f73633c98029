"""Feedback loop, closed in the simulator: production configuration vs exploration slots.

Two arms, each on its own private platform (a throwaway Postgres cluster from
tests.support.harness.PrivateDatabase, a private RECS_VAR_DIR, a fresh Kafka topic, real
gunicorn from harness.ServingProcess), run one after the other in this process:

1. warm-up: the simulator (simulator.generator.Simulation, in process) streams `warmup_days`
   of organic sessions (nobody asks a recommender) into the arm's topic;
2. each of `cycles` retraining cycles: ingest the new offsets (jobs.pipeline.ingest_snapshot),
   validate and mark them (a quarantined snapshot is re-admitted, as an operator would, and
   the row says so), jobs.pipeline.run_all (dataset, train, evaluate, gate, refit, score,
   publish, popularity), then `cycle_days` of sessions in which every session asks the served
   endpoint and the user picks among organic candidates and the served list;
3. a last ingest, the prediction log into the lake (jobs.online.predictions.ingest) and the
   feedback measures of jobs.online.feedback over the whole run, per day (the system's own
   plot, one per arm) and per cycle (the days of a cycle pooled).

The arms differ only in EXPLORATION_SLOTS (0 = production; `--slots` for the mitigation), so
the same seed gives the same world, the same warm-up and the same organic draws until the
served lists differ. Prints one row per (arm, cycle), writes them to
<RECS_VAR_DIR>/bench/feedback_loop.json and the plots to docs/img/ (`--img-dir`).

Run: `python -m benchmarks bench_feedback_loop`, or
`python -m benchmarks.bench_feedback_loop [--cycles 4] [--users 3000] [--movies 1000]
[--families item_knn]`. Results and plots: docs/responsible-ml.md, "Feedback loops".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START = "2025-03-01"
RESULTS = Path("bench") / "feedback_loop.json"
IMG_DIR = REPO / "docs" / "img"
CYCLE_COL = "cycle"
MEASURES = (
    "watch_gini", "watch_top1_share", "exposure_gini", "exposure_top1_share", "coverage",
    "rec_share", "watches", "slots",
)  # fmt: skip

log = logging.getLogger("bench.feedback_loop")


# ------------------------------------------------------------------ the simulated stream
class Stream:
    """The arm's simulation and Kafka producer: `advance(days)` streams that many days."""

    def __init__(self, world, topic: str, bootstrap: str, seed: int) -> None:
        from simulator.generator import DAY_MS, Simulation, to_ms
        from simulator.sinks import KafkaSink

        self.sim = Simulation(world, START, seed=seed)
        self.batches = self.sim.batches(None)
        self.sink = KafkaSink(bootstrap, topic)
        self.until_ms = to_ms(START)
        self.day_ms = DAY_MS
        self.lines = 0

    def advance(self, days: int) -> int:
        """Stream `days` more simulated days; the lines sent."""
        self.until_ms += days * self.day_ms
        sent = 0
        for batch in self.batches:
            self.sink.send(batch.keys, batch.values)
            sent += len(batch.values)
            if batch.window_end_ms >= self.until_ms:
                break
        remaining = self.sink.producer.flush(120)
        if remaining:
            raise RuntimeError(f"{remaining} lines not delivered")
        self.lines += sent
        return sent

    def close(self) -> None:
        self.sink.close()
        if self.sim.recommender is not None:
            self.sim.recommender.close()


# ------------------------------------------------------------------ one arm
def retrain(families: list[str], database_url: str) -> dict[str, Any]:
    """Ingest the new offsets, validate (re-admit if quarantined), run_all; the cycle's record."""
    from jobs import pipeline
    from jobs.ingest import readmit

    record: dict[str, Any] = {}
    began = time.perf_counter()
    snapshot = pipeline.ingest_snapshot()
    pipeline.validate_snapshot(snapshot)
    try:
        pipeline.mark_snapshot(snapshot)
    except pipeline.SnapshotRejected as exc:
        readmit.readmit(snapshot, "feedback-loop benchmark: the loop itself moves the data")
        record["readmitted"] = f"{snapshot}: {str(exc)[:200]}"
    record["ingest_s"] = round(time.perf_counter() - began, 1)
    summary = pipeline.run_all(families)
    record.update(
        snapshot=snapshot,
        gate=summary.get("gate"),
        reco_version=summary.get("reco_version"),
        run_all_s=round(sum(summary["seconds"].values()), 1),
    )
    return record


def start_serving(reader_url: str, var_dir: Path):
    """Real gunicorn on the arm's database, answering from its published lists."""
    from tests.support.harness import ServingProcess, wait_for

    # Prediction-log files sealed after 5 s, so the lake gets nearly every answer.
    server = ServingProcess(
        reader_url=reader_url,
        workers=2,
        var_dir=var_dir,
        extra_env={"PREDICTION_LOG_SEAL_AGE_S": "5"},
    ).start()
    ready = f"{server.base_url}/readyz"
    wait_for(lambda: _status(ready) == 200, 60, f"{ready} answering 200")
    return server


def stop_serving(server) -> None:
    """Stop gunicorn but keep its prediction log for ingestion (ServingProcess.stop deletes it)."""
    os.killpg(server.proc.pid, signal.SIGTERM)
    server.proc.wait(timeout=30)
    server.proc = None


def run_arm(arm: str, slots: int, work: Path, args) -> dict[str, Any]:
    """One arm end to end (module docstring); its per-day and per-cycle measures."""
    from contracts import settings
    from jobs.online import feedback, predictions
    from jobs.spark import get_spark
    from ops import services
    from simulator.loop import RecommenderClient
    from simulator.world import Scale, World
    from tests.support.harness import PrivateDatabase

    cfg = settings.load()
    topic = f"feedback-{arm}-{uuid.uuid4().hex[:8]}"
    services.create_topic(cfg.kafka_bootstrap_servers, topic, cfg.kafka_partitions)
    database = PrivateDatabase().create()
    os.environ.update(
        DATABASE_URL=database.owner_url,
        RECS_VAR_DIR=str(work / "var"),
        KAFKA_TOPIC=topic,
        EXPLORATION_SLOTS=str(slots),
    )
    world = World(Scale(users=args.users, movies=args.movies), args.seed)
    stream = Stream(world, topic, cfg.kafka_bootstrap_servers, args.seed)
    server = None
    cycles: list[dict[str, Any]] = []
    try:
        stream.advance(args.warmup_days)
        days = [(0, d) for d in range(args.warmup_days)]
        for cycle in range(1, args.cycles + 1):
            record = retrain(args.families, database.owner_url)
            if server is None:
                server = start_serving(database.reader_url, work / "serve")
                stream.sim.recommender = RecommenderClient(server.base_url, workers=4)
            began = time.perf_counter()
            lines = stream.advance(args.cycle_days)
            record.update(cycle=cycle, lines=lines, simulate_s=round(time.perf_counter() - began))
            cycles.append(record)
            first = days[-1][1] + 1
            days += [(cycle, first + d) for d in range(args.cycle_days)]
            print(f"{arm} cycle {cycle}: {json.dumps(record, default=str)}", flush=True)
        from jobs import pipeline

        snapshot = pipeline.ingest_snapshot()
        pipeline.validate_snapshot(snapshot)
        try:
            pipeline.mark_snapshot(snapshot)
        except pipeline.SnapshotRejected:
            from jobs.ingest import readmit

            readmit.readmit(snapshot, "feedback-loop benchmark: the last served days")
        stop_serving(server)
        predictions.ingest(server.log_dir)
        from jobs.ingest import lake

        refs = [r.path for r in lake.accepted_snapshots(database_url=database.owner_url)]
        spark = get_spark("bench_feedback_loop", shuffle_partitions=4)
        total_days = len(days) + 1
        frames = feedback.count_frames(
            spark,
            refs,
            predictions.batch_dirs(),
            total_days,
            feedback.WINDOW_MINUTES,
            catalogue=args.movies,  # the world's released movies: the same for both arms
        )
        catalogue = frames["catalogue"]
        daily = feedback.summarise(frames["exposure"], frames["watches"], catalogue)
        feedback.plot(
            daily,
            Path(args.img_dir) / f"feedback-loop-daily-{arm}.png",
            title=f"Feedback-loop measures per day, {arm} arm (jobs/online/feedback.plot)",
        )
        first = date.fromisoformat(START)
        periods = {str(first + timedelta(days=d)): c for c, d in days}
        per_cycle = pooled_by_cycle(frames, periods, catalogue)
    finally:
        stream.close()
        if server is not None and server.proc is not None:
            server.stop()
        database.destroy()
        _delete_topic(cfg.kafka_bootstrap_servers, topic)
    return {
        "arm": arm,
        "exploration_slots": slots,
        "catalogue": catalogue,
        "lines": stream.lines,
        "cycles": cycles,
        "per_cycle": per_cycle,
        "daily": [r for r in daily if r["model_version"] == feedback.ALL],
        "versions": feedback.version_coverage(frames["exposure"], catalogue),
    }


def pooled_by_cycle(frames: dict, periods: dict[str, int], catalogue: int) -> list[dict]:
    """The measures with each cycle's days pooled (feedback.relabel_days)."""
    from jobs.online import feedback

    rows = feedback.summarise(
        feedback.relabel_days(frames["exposure"], periods),
        feedback.relabel_days(frames["watches"], periods),
        catalogue,
    )
    return [
        {CYCLE_COL: int(r[feedback.DAY_COL]), **{m: r[m] for m in MEASURES}}
        for r in rows
        if r[feedback.MODEL_VERSION_COL] == feedback.ALL
    ]


def _status(url: str) -> int:
    import requests

    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def _delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result()


# ------------------------------------------------------------------ table and plot
def print_rows(arms: list[dict[str, Any]]) -> None:
    print(f"{'arm':<12} {'cycle':>5} {'watches':>8} {'watchGini':>9} {'top1%':>6} "
          f"{'expoGini':>8} {'expTop1%':>8} {'coverage':>8} {'recShare':>8}")  # fmt: skip
    for arm in arms:
        for r in arm["per_cycle"]:
            print(
                f"{arm['arm']:<12} {r[CYCLE_COL]:>5} {r['watches']:>8} {_f(r['watch_gini']):>9} "
                f"{_f(r['watch_top1_share']):>6} {_f(r['exposure_gini']):>8} "
                f"{_f(r['exposure_top1_share']):>8} {_f(r['coverage']):>8} {_f(r['rec_share']):>8}"
            )
    print(
        "cycle 0 = organic warm-up (no recommender); cycle c >= 1 = the days served by the model "
        "retrained after cycle c-1; Gini and top-1% share over the catalogue (movies watched, "
        "rated or served in the run); coverage = distinct served movies / catalogue; recShare = "
        "watch starts of a movie listed to the user within 60 min before."
    )


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def plot_cycles(arms: list[dict[str, Any]], path: Path) -> Path:
    """Per cycle, both arms: watching Gini, exposure Gini, coverage, recommended share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    panels = (
        ("watch_gini", "Gini of watch starts"),
        ("exposure_gini", "Gini of served slots"),
        ("coverage", "catalogue coverage of served lists"),
        ("rec_share", "share of watches listed before"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for arm in arms:
            xs = [r[CYCLE_COL] for r in arm["per_cycle"]]
            ys = [float("nan") if r[key] is None else r[key] for r in arm["per_cycle"]]
            name = arm["arm"] + (
                f" ({arm['exploration_slots']} slots)" if arm["exploration_slots"] else ""
            )
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("cycle (0 = organic warm-up)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Closed loop in the simulator: production vs exploration slots", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--warmup-days", type=int, default=6)
    parser.add_argument("--cycle-days", type=int, default=2)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=5, help="exploration slots of the mitigation")
    parser.add_argument(
        "--families",
        default="item_knn",
        help="candidate families (the pipeline's default three cost ~11 min per cycle on 2 "
        "shared cores; item_knn alone ran 2 arms x 4 cycles in 6 minutes)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--arms", default="production,exploration")
    parser.add_argument("--img-dir", default=str(IMG_DIR))
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args(argv)
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

    from contracts import settings

    out = settings.load().var_dir / RESULTS
    slots = {"production": 0, "exploration": args.slots}
    arms, works = [], []
    try:
        for arm in [a.strip() for a in args.arms.split(",") if a.strip()]:
            works.append(Path(tempfile.mkdtemp(prefix=f"feedback-{arm}-")))
            began = time.perf_counter()
            arms.append(run_arm(arm, slots[arm], works[-1], args))
            arms[-1]["seconds"] = round(time.perf_counter() - began)
            print(f"{arm}: done in {arms[-1]['seconds']} s", flush=True)
    finally:
        if not args.keep:  # Spark's local dir is in the first arm's: removed only at the end
            for work in works:
                shutil.rmtree(work, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "img_dir"}
    out.write_text(json.dumps({"config": config, "arms": arms}, indent=2, default=str))
    print_rows(arms)
    plot_cycles(arms, Path(args.img_dir) / "feedback-loop-cycles.png")
    print(f"rows written to {out}; plots in {args.img_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
