"""`python -m simulator <command>`: backfill, live, metadata-api, replay, import-ratings, truth."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from contracts import settings as settings_mod
from contracts.kafka import create_topic
from simulator.faults import ALL_KINDS, RATE_MEANING, parse_faults
from simulator.generator import CHURN_LIVE_DAYS, SHAPES


def _world_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="small", choices=["tiny", "small", "scenario"])
    p.add_argument("--seed", type=int, default=42)


def _sink_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topic", help="Kafka topic (default: KAFKA_TOPIC)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--out", type=Path, help="write lines to this file instead of Kafka")


def _stream_args(p: argparse.ArgumentParser) -> None:
    _world_args(p)
    _sink_args(p)
    p.add_argument(
        "--shape",
        default="stable",
        choices=SHAPES,
        help="stable: every user active all along; churn: users arrive over the run (over "
        f"{CHURN_LIVE_DAYS} days when it has no end) and stay for days to weeks",
    )
    p.add_argument(
        "--fault",
        action="append",
        metavar="KIND=RATE",
        help="inject a fault or change; repeatable. Kinds: "
        + "; ".join(f"{k} ({RATE_MEANING[k]})" for k in ALL_KINDS),
    )
    p.add_argument("--ledger", type=Path, help="JSONL ground truth of injected lines")
    p.add_argument("--recommender", help="closed loop: base URL, e.g. http://127.0.0.1:8082")
    p.add_argument(
        "--reco-sample", type=float, default=1.0, help="fraction of sessions that ask (0-1)"
    )
    p.add_argument("--reco-workers", type=int, default=4, help="requests in flight at once")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backfill", help="simulate N days as fast as possible")
    _stream_args(p)
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--start", help="first simulated day, YYYY-MM-DD (default: today - DAYS)")
    p.add_argument(
        "--everyone",
        action="store_true",
        help="every user starts at least one session on the first day (the whole population "
        "in the lake, as the scale run needs; the world's own rates leave many users idle)",
    )

    p = sub.add_parser("live", help="simulate from now on, paced at --rate lines/s")
    _stream_args(p)
    p.add_argument("--rate", type=float, required=True, help="lines per second")
    p.add_argument("--days", type=int, help="stop after this many simulated days")
    p.add_argument("--start", help="simulated start time (default: now)")

    p = sub.add_parser("metadata-api", help="serve /user/<id> and /movie/<id>")
    _world_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--rate-limit", type=float, help="requests/s before answering 429")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")

    p = sub.add_parser("replay", help="stream a movielog file into the topic, line by line")
    p.add_argument("file", type=Path)
    p.add_argument("--topic")
    p.add_argument("--bootstrap")

    p = sub.add_parser("import-ratings", help="real rating files -> movielog lines")
    p.add_argument("file", type=Path)
    p.add_argument("--format", required=True, choices=["movielens", "movietweetings"])
    p.add_argument("--movies", type=Path, help="movie titles file (default: beside FILE)")
    p.add_argument("--minutes-per-star", type=int, default=3, help="watch lines per star")
    _sink_args(p)

    p = sub.add_parser("truth", help="print a user's hidden top movies (ground truth)")
    _world_args(p)
    p.add_argument("user_id", type=int)
    p.add_argument("-n", type=int, default=20)
    return parser


def _sink(args):
    from simulator.sinks import FileSink, KafkaSink

    if getattr(args, "out", None):
        return FileSink(args.out)
    cfg = settings_mod.load()
    bootstrap, topic = args.bootstrap or cfg.kafka_bootstrap_servers, args.topic or cfg.kafka_topic
    # A producer to a missing topic retries every message until its flush timeout; create the
    # topic first (or fail now with one line when the broker is not there).
    if create_topic(bootstrap, topic, cfg.kafka_partitions):
        print(f"created topic {topic} ({cfg.kafka_partitions} partitions)", file=sys.stderr)
    return KafkaSink(bootstrap, topic)


def _simulate(args, live: bool) -> int:
    from simulator.faults import Ledger
    from simulator.generator import Simulation
    from simulator.loop import RecommenderClient
    from simulator.sinks import pump
    from simulator.world import World

    faults = parse_faults(args.fault)
    if not 0.0 <= args.reco_sample <= 1.0:
        raise ValueError("--reco-sample must be between 0 and 1")
    now = dt.datetime.now().replace(microsecond=0)
    if args.start:
        start = args.start
    elif live:
        start = now.isoformat()
    else:
        start = (now.date() - dt.timedelta(days=args.days)).isoformat()
    world = World(args.scale, args.seed)
    ledger = Ledger(args.ledger)
    client = (
        RecommenderClient(args.recommender, workers=args.reco_workers) if args.recommender else None
    )
    sim = Simulation(
        world,
        start,
        faults=faults,
        ledger=ledger,
        recommender=client,
        reco_sample=args.reco_sample,
        shape=args.shape,
        everyone=getattr(args, "everyone", False),
    )
    sink = _sink(args)
    try:
        sent = pump(sim.batches(args.days), sink, rate=args.rate if live else None)
    except KeyboardInterrupt:
        sent = ledger.lines
    finally:
        sink.close()
        summary = ledger.close()
        if client is not None:
            client.close()
    print(
        json.dumps(
            {"lines": sent, "injected": summary["by_kind"], "start": start, "shape": args.shape}
        )
    )
    return 0


def _metadata_api(args) -> int:
    from werkzeug.serving import run_simple

    from simulator.metadata_api import create_app
    from simulator.world import World

    app = create_app(
        World(args.scale, args.seed),
        rate_limit=args.rate_limit,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        seed=args.seed,
    )
    run_simple(args.host, args.port, app, threaded=True)
    return 0


def _replay(args) -> int:
    from simulator.importers import replay_batches
    from simulator.sinks import pump

    sink = _sink(args)
    try:
        sent = pump(replay_batches(args.file), sink, desc="replay")
    finally:
        sink.close()
    print(json.dumps({"lines": sent, "file": str(args.file)}))
    return 0


def _import_ratings(args) -> int:
    from simulator.importers import rating_batches, read_ratings
    from simulator.sinks import pump

    table = read_ratings(args.file, args.format, args.movies)
    sink = _sink(args)
    try:
        sent = pump(rating_batches(table, args.minutes_per_star), sink, desc="import")
    finally:
        sink.close()
    print(json.dumps({"ratings": len(table.ts), "lines": sent, "movies": len(table.slugs)}))
    return 0


def _truth(args) -> int:
    import numpy as np

    from simulator.world import World

    world = World(args.scale, args.seed)
    if not 1 <= args.user_id <= world.population.n_active:
        raise ValueError(f"user {args.user_id} is not an active user of this world")
    top = world.top_true(np.array([args.user_id - 1]), args.n)[0]
    print("\n".join(world.catalog.slugs[i] for i in top))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "backfill": lambda: _simulate(args, live=False),
        "live": lambda: _simulate(args, live=True),
        "metadata-api": lambda: _metadata_api(args),
        "replay": lambda: _replay(args),
        "import-ratings": lambda: _import_ratings(args),
        "truth": lambda: _truth(args),
    }
    try:
        return handlers[args.command]()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"simulator {args.command}: error: {exc}", file=sys.stderr)
        return 2
