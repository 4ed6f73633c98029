"""`make scenario`: the scenario world (1M users, 27k movies) from Kafka to the published
top-20, through the platform's own DAGs, stage by stage.

1. **simulate**: `--days` simulated days of the scenario world into the platform's topic by
   the simulator's backfill, every user starting a session on the first day (`--everyone`:
   the world's own rates leave 57% of its users idle on a given day);
2. **ingest → validate**: a movielog_ingest run, as `make pipeline` starts it;
3. **dataset → train → evaluate → gate → refit → score → publish**: a train_and_publish run
   of the production family alone (`--family`).

Per task it prints wall time, peak RSS of the task's whole process tree (the Airflow task
process, its Spark JVM and any child; sampled every `SAMPLE_S`), rows in and rows out, and
the end-to-end time from the start of ingest to the end of publish against the targets
(docs/scale.md), and how many users and movies the dataset holds. The table is also written as
JSON and Markdown under .var/scenario/.
The scale run needs a platform of its own: it refuses a topic that already holds events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from contracts import kafka
from contracts import settings as settings_mod
from ops import run, services
from ops.airflow_api import AirflowAPI

INGEST_DAG, TRAIN_DAG = "movielog_ingest", "train_and_publish"
SAMPLE_S = 1.0
TARGET_MINUTES = 20  # ingest -> publish (DESIGN.md, Targets)
TARGET_RSS_GB = 12  # no stage above
TASK_PROCESS = "airflow worker -- "  # title of a LocalExecutor task's supervisor process
GB = 2**30


@dataclass
class Stage:
    """One row of the table."""

    name: str
    seconds: float
    peak_rss_gb: float | None
    rows_in: int | None
    rows_out: int | None
    state: str


class PeakRSS(threading.Thread):
    """Samples the summed RSS of process trees and keeps each tree's peak.

    Trees are Airflow task processes (keyed by task-instance id, which their title carries)
    and any root pid handed to `watch` (the simulator)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, int] = {}
        self.roots: dict[str, int] = {}
        self.done = threading.Event()

    def watch(self, key: str, pid: int) -> None:
        self.roots[key] = pid

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            for key, proc in self.trees():
                rss = tree_rss(proc)
                self.peaks[key] = max(self.peaks.get(key, 0), rss)

    def trees(self) -> list[tuple[str, psutil.Process]]:
        out = []
        for proc in psutil.process_iter(["cmdline"]):
            title = " ".join(proc.info["cmdline"] or [])
            if title.startswith(TASK_PROCESS) and "LocalExecutor" not in title:
                out.append((title.removeprefix(TASK_PROCESS).split()[0], proc))
        for key, pid in self.roots.items():
            if psutil.pid_exists(pid):
                out.append((key, psutil.Process(pid)))
        return out

    def stop(self) -> None:
        self.done.set()
        self.join()


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and all its descendants (0 for any that exited meanwhile)."""
    total = 0
    try:
        for member in [proc, *proc.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return 0
    return total


def simulate(days: int, sampler: PeakRSS) -> Stage:
    """Backfill the scenario world into the topic; the simulator prints its progress."""
    argv = [sys.executable, "-m", "simulator", "backfill", "--scale", "scenario", "--everyone"]
    env = {**os.environ, **services.runtime_env()}
    started = time.monotonic()
    proc = subprocess.Popen([*argv, "--days", str(days)], env=env)  # noqa: S603 - our own argv
    sampler.watch("simulate", proc.pid)
    if proc.wait() != 0:
        raise services.ServiceError(f"the scenario backfill exited {proc.returncode} (above)")
    lines = topic_lines(settings_mod.load())
    peak = sampler.peaks.get("simulate")
    return Stage("simulate", time.monotonic() - started, gb(peak), None, lines, "success")


def topic_lines(cfg: settings_mod.Settings) -> int:
    """Lines in the platform's topic."""
    marks = kafka.watermarks(cfg.kafka_bootstrap_servers, cfg.kafka_topic)
    return sum(high - low for low, high in marks.values())


def run_dag(api: AirflowAPI, dag_id: str, conf: dict | None) -> tuple[str, dict]:
    """Trigger `dag_id` (unpausing it only once our run is queued, so that its own timetable
    cannot start a run before ours), wait, pause it again; (run id, final run)."""
    api.wait_for_dag(dag_id, unpause=False)
    run_id = api.trigger(dag_id, conf)
    api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    try:
        return run_id, api.wait_for_run(dag_id, run_id, deadline_s=4 * 3600)
    finally:
        api.call("PATCH", f"/dags/{dag_id}", {"is_paused": True})


def task_stages(api: AirflowAPI, dag_id: str, run_id: str, sampler: PeakRSS) -> list[Stage]:
    """One Stage per task instance of the run that ran, in order of start."""
    from jobs import pipeline

    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    tis = [ti for ti in api.call("GET", path)["task_instances"] if ti.get("start_date")]
    stages = []
    for ti in sorted(tis, key=lambda ti: ti["start_date"]):
        value = return_value(api, f"{path}/{ti['task_id']}")
        rows_in, rows_out = pipeline.stage_rows(ti["task_id"], value)
        peak = sampler.peaks.get(ti["id"])
        seconds = float(ti.get("duration") or 0.0)
        stages.append(Stage(ti["task_id"], seconds, gb(peak), rows_in, rows_out, ti["state"]))
    return stages


def return_value(api: AirflowAPI, task_path: str):
    """A task's return value (its XCom), or None."""
    try:
        return api.call("GET", f"{task_path}/xcomEntries/return_value").get("value")
    except RuntimeError:
        return None


def gb(rss: int | None) -> float | None:
    return None if rss is None else round(rss / GB, 2)


def wall_minutes(api: AirflowAPI, first: tuple[str, str], last: tuple[str, str]) -> float:
    """Minutes from the start of the `first` run to the end of the `last` (dag, run id)."""
    start = api.call("GET", f"/dags/{first[0]}/dagRuns/{first[1]}")["start_date"]
    end = api.call("GET", f"/dags/{last[0]}/dagRuns/{last[1]}")["end_date"]
    span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return span.total_seconds() / 60


def table(stages: list[Stage]) -> str:
    """The per-stage table as Markdown."""

    def cell(value) -> str:
        return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    lines = [
        "| stage | wall s | peak RSS GB | rows in | rows out | state |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for s in stages:
        lines.append(
            f"| {s.name} | {s.seconds:,.0f} | {cell(s.peak_rss_gb)} | {cell(s.rows_in)} "
            f"| {cell(s.rows_out)} | {s.state} |"
        )
    return "\n".join(lines)


def coverage(api: AirflowAPI, run_id: str) -> dict[str, int]:
    """Users, movies and interactions in the run's dataset (empty if it built none)."""
    from jobs import pipeline

    task = f"/dags/{TRAIN_DAG}/dagRuns/{run_id}/taskInstances/build_dataset"
    path = return_value(api, task)
    if not path:
        return {}
    counts = pipeline.dataset_counts(path)
    return {k: counts[k] for k in ("users", "movies", "interactions")}


def coverage_line(counts: dict[str, int]) -> str:
    return "dataset: " + (", ".join(f"{v:,} {k}" for k, v in counts.items()) or "none built")


def verdict(minutes: float, stages: list[Stage]) -> str:
    """The end-to-end time and the largest stage against the targets."""
    platform = [s for s in stages if s.name != "simulate"]  # the world, not the platform
    biggest = max(platform, key=lambda s: s.peak_rss_gb or 0.0)
    peak = biggest.peak_rss_gb or 0.0
    return (
        f"ingest -> publish: {minutes:.1f} min (target {TARGET_MINUTES}: "
        f"{'met' if minutes <= TARGET_MINUTES else 'missed'}); largest stage RSS {peak:.2f} GB "
        f"({biggest.name}; target {TARGET_RSS_GB}: {'met' if peak <= TARGET_RSS_GB else 'missed'})"
    )


def report(stages: list[Stage], minutes: float, counts: dict[str, int]) -> str:
    """The table, the dataset's coverage and the verdict, as printed and written."""
    return "\n\n".join([table(stages), coverage_line(counts), verdict(minutes, stages)])


def write_outputs(stages: list[Stage], minutes: float, counts: dict[str, int], args) -> Path:
    """JSON and Markdown of the run under .var/scenario/ (the Markdown's path)."""
    out = settings_mod.load().var_dir / "scenario"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {"days": args.days, "family": args.family, "ingest_to_publish_min": minutes}
    record |= {"dataset": counts, "stages": [asdict(s) for s in stages]}
    (out / f"{stamp}.json").write_text(json.dumps(record, indent=2))
    markdown = out / f"{stamp}.md"
    markdown.write_text(report(stages, minutes, counts) + "\n")
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.scenario", description=__doc__)
    parser.add_argument("--days", type=int, default=1, help="simulated days (~58M lines each)")
    parser.add_argument("--family", default="item_knn", help="the production family to train")
    parser.add_argument(
        "--skip-simulate", action="store_true", help="the topic already holds the scenario"
    )
    args = parser.parse_args(argv)
    cfg = settings_mod.load()
    if not args.skip_simulate and run.topic_end(cfg) is not None:
        print(
            f"error: topic {cfg.kafka_topic} already holds events; the scale run needs an empty "
            "platform (`make reset` first) or --skip-simulate",
            file=sys.stderr,
        )
        return 2
    sampler = PeakRSS()
    sampler.start()
    try:
        stages = [] if args.skip_simulate else [simulate(args.days, sampler)]
        api = AirflowAPI.login()
        ingest = run_dag(api, INGEST_DAG, {"max_lines": None})
        train = run_dag(api, TRAIN_DAG, {"families": [args.family]})
    finally:
        sampler.stop()
    stages += task_stages(api, INGEST_DAG, ingest[0], sampler)
    stages += task_stages(api, TRAIN_DAG, train[0], sampler)
    minutes = wall_minutes(api, (INGEST_DAG, ingest[0]), (TRAIN_DAG, train[0]))
    counts = coverage(api, train[0])
    print(report(stages, minutes, counts))
    print(f"\n(written to {write_outputs(stages, minutes, counts, args)})")
    return 0 if all(outcome["state"] == "success" for _, outcome in (ingest, train)) else 1


if __name__ == "__main__":
    sys.exit(main())
