"""`make run`: the whole system end to end on the embedded services, left running.

Steps (each idempotent, so a second `make run` only starts what is not running):
services (Kafka, Postgres, Airflow; started by the Makefile) → metadata API → a backfill of
simulated traffic when the topic is empty → the pipeline through Airflow (ingest, catalog sync,
train and publish) → the serving tier → live simulated users who ask it for recommendations.
`make stop` (`python -m ops.run --stop`) stops all of it, services included.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests

from contracts import settings as settings_mod
from ops import services, supervise


@dataclass
class App:
    """A long-running process of ours, a supervisord program (restarted with back-off when it
    exits, restarts counted) with its log in .var/log/<name>.log."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self):
        return settings_mod.load().log_dir / f"{self.name}.log"

    def program(self) -> supervise.Program:
        env = {**services.runtime_env(), **self.env}
        return supervise.Program(self.name, self.argv, self.log, env=env, stopwaitsecs=15)

    def running(self) -> bool:
        return supervise.alive() and supervise.running(self.name)

    def start(self, deadline_s: float = 60) -> bool:
        """Start under supervision (a no-op when up) and wait for `ready_url` to answer."""
        legacy = services.read_pid(self.name)  # started detached by an older version
        if legacy is not None:
            services.stop_group(self.name, legacy, grace_s=15)
        services.supervised([self.program()])
        started = services.start_program(self.name)
        if self.ready_url:
            services.wait_until(lambda: _http_ok(self.ready_url), deadline_s, self.name, self.log)
        return started

    def stop(self) -> bool:
        legacy = services.read_pid(self.name)
        if legacy is not None:
            services.stop_group(self.name, legacy, grace_s=15)
        stopped = supervise.stop(self.name)
        supervise.remove(self.name)  # `make stop` ends the run: status lists it no more
        return stopped or legacy is not None


def _http_ok(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


def apps(scale: str, rate: int) -> list[App]:
    """The processes `make run` adds to the services, in start order."""
    cfg = settings_mod.load()
    py = sys.executable
    meta_port = cfg.metadata_api_url.rsplit(":", 1)[1].rstrip("/")
    serving_url = f"http://127.0.0.1:{cfg.serving_port}"
    return [
        App(
            "metadata-api",
            [py, "-m", "simulator", "metadata-api", "--scale", scale, "--port", meta_port],
            ready_url=f"{cfg.metadata_api_url}/healthz",
        ),
        App("serving", [py, "-m", "serving"], ready_url=f"{serving_url}/healthz"),
        App(
            "traffic",
            [
                py,
                "-m",
                "simulator",
                "live",
                "--scale",
                scale,
                "--rate",
                str(rate),
                "--recommender",
                serving_url,
                "--ledger",
                str(cfg.log_dir / "sim-ledger.jsonl"),
            ],
        ),
        App(
            "reports",
            [py, "-m", "ops.reports_site", "--port", str(cfg.reports_port)],
            ready_url=f"http://127.0.0.1:{cfg.reports_port}/healthz",
        ),
    ]


def topic_end(cfg: settings_mod.Settings) -> datetime | None:
    """The newest event time in the movielog topic (the last line of each partition), or
    None when it holds no event yet (a fresh system)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": cfg.kafka_bootstrap_servers, "group.id": "ops-run"})
    try:
        md = consumer.list_topics(cfg.kafka_topic, timeout=10).topics[cfg.kafka_topic]
        ends = [
            last_event_time(consumer, TopicPartition(cfg.kafka_topic, p)) for p in md.partitions
        ]
    finally:
        consumer.close()
    return max((end for end in ends if end is not None), default=None)


def last_event_time(consumer, partition) -> datetime | None:
    """Event time of the partition's last line: None when the partition is empty,
    datetime.min when its last line cannot be read or has no time (it still holds events)."""
    low, high = consumer.get_watermark_offsets(partition, 10)
    if high <= low:
        return None
    partition.offset = high - 1
    consumer.assign([partition])
    message = consumer.poll(10)
    if message is None or message.error():
        return datetime.min
    try:
        return datetime.fromisoformat(message.value().split(b",", 1)[0].decode())
    except (UnicodeDecodeError, ValueError):
        return datetime.min


def live_start(cfg: settings_mod.Settings) -> str:
    """Where live users start: now, or after the newest event when the stream is ahead of
    the clock (a compressed or restarted run), so that event time never goes backwards. The
    newest event is the later of the ingested snapshots' and the topic's last lines (a tail of
    late or replayed lines can end a partition with an old time)."""
    from contextlib import closing

    from contracts import db

    now = datetime.now().replace(microsecond=0)
    with closing(db.connect(cfg.database_url)) as conn, conn.cursor() as cur:
        cur.execute(db.read_sql("ops/newest_ingested_event.sql"))
        ingested = cur.fetchone()[0]
    ends = [end for end in (topic_end(cfg), ingested) if end is not None]
    start = max([now, *(end + timedelta(seconds=1) for end in ends)])
    return start.isoformat(timespec="seconds")


LIVE_DAGS = (
    "movielog_ingest",
    "catalog_sync",
    "online_evaluation",
    "train_and_publish",
    "responsible_ml",
    "retention",
)


def backfill(scale: str, days: int) -> None:
    """Simulate `days` days up to today into the topic (the simulator prints its progress)."""
    import subprocess

    argv = [sys.executable, "-m", "simulator", "backfill", "--scale", scale, "--days", str(days)]
    done = subprocess.run(  # noqa: S603 - this interpreter, the simulator's own argv
        argv, check=False, env={**os.environ, **services.runtime_env()}
    )
    if done.returncode != 0:  # its own output (progress, then the error) is printed above
        raise services.ServiceError(f"simulated backfill exited {done.returncode} (above)")


def start(scale: str, days: int, rate: int, skip_pipeline: bool) -> int:
    from ops import pipeline

    cfg = settings_mod.load()
    metadata, serving, traffic, reports = apps(scale, rate)
    metadata.start()
    print(f"metadata   {cfg.metadata_api_url} (log: {metadata.log})", flush=True)
    reports.start()  # before the pipeline: its Data Docs and reports show up as they are written
    if topic_end(cfg) is None:
        print(f"backfilling {days} simulated days at scale {scale} into {cfg.kafka_topic} …")
        backfill(scale, days)
    if not skip_pipeline and pipeline.run() != 0:
        return 1
    serving.start()
    traffic.argv += ["--start", live_start(cfg)]
    traffic.start()
    schedule_live_loop()
    summary(cfg)
    return 0


def schedule_live_loop() -> None:
    """Unpause the scheduled DAGs (one created paused by an older version stays paused), so
    that ingestion and online evaluation run hourly and training on its schedule and
    triggers while the simulated users keep coming."""
    from ops.airflow_api import AirflowAPI

    api = AirflowAPI.login()
    for dag_id in LIVE_DAGS:
        api.wait_for_dag(dag_id)


def summary(cfg: settings_mod.Settings) -> None:
    user, password = services.airflow_login()
    print(
        "\nThe system is running:\n"
        f"  Airflow UI      http://127.0.0.1:{cfg.airflow_port}  (login {user} / {password})\n"
        f"  serving         curl -i http://127.0.0.1:{cfg.serving_port}/recommend/1\n"
        f"  metrics         http://127.0.0.1:{cfg.serving_port}/metrics\n"
        f"  metadata API    {cfg.metadata_api_url}/movie/<id>\n"
        f"  status page     http://127.0.0.1:{cfg.reports_port}/  (Data Docs: /data-docs/, "
        "model reports: /reports/)\n"
        f"  logs            {cfg.log_dir}\n"
        "Stop everything with `make stop`.",
        flush=True,
    )


def stop() -> int:
    for app in reversed(apps("small", 0)):
        if app.stop():
            print(f"{app.name:<10} stopped")
    services.down(services.ALL)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.run", description=__doc__)
    parser.add_argument("--stop", action="store_true", help="stop everything make run started")
    parser.add_argument("--scale", default="small")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.stop:
            return stop()
        return start(args.scale, args.days, args.rate, args.skip_pipeline)
    except services.ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
