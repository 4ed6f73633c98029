"""Shadow benchmark: what looking up (and logging) a shadow's list costs each served request.

gunicorn (2 workers, committed config) over a private Postgres cluster holding two versions of
`--users` users: v1 served, v2 attached. wrk (2 threads, 16 connections, random user ids, 10 %
unknown) runs `--rounds` rounds of `--seconds` with no shadow and with v2 in shadow, alternately
(the machine is shared, so alternation spreads its noise over both); the table shows the median
round of each and the ratios. The shadow is switched in the database and picked up by the
running server (its pointer refresh), as in production.

Run: `PYTHONPATH=. .venv/bin/python benchmarks/bench_shadow.py [--users 200000] [--seconds 10]`
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_serving import (  # noqa: E402 - after the path set-up, as its sibling
    gunicorn,
    median_run,
    print_table,
    rows,
    run_wrk,
    stop,
    wait_http,
)


def stage(owner_url: str, version: str, n_users: int, publish_it: bool) -> None:
    """Load and audit one version (and serve it when `publish_it`)."""
    from jobs.publish import publish

    publish.load_recommendations(rows(n_users, version), version, f"model-{version}", owner_url)
    publish.audit(version, expected_users=n_users, url=owner_url)
    if publish_it:
        publish.publish(version, owner_url)


def publish_popular(owner_url: str) -> None:
    """The popularity list (readiness needs one; unknown users get it)."""
    from datetime import UTC, datetime

    from jobs.publish import publish

    ids = [str(i) for i in range(1, 21)]
    publish.publish_popular(ids, datetime(2025, 1, 1, tzinfo=UTC), owner_url)


def shadow_seen(port: int, wanted: bool) -> bool:
    """True when 8 fresh connections (spread over the workers) agree the shadow is on/off."""
    for _ in range(8):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2) as resp:
            if ("shadow=bench-v2" in resp.read().decode()) != wanted:
                return False
    return True


def switch(owner_url: str, port: int, on: bool) -> None:
    """Start or stop the shadow and wait until every worker serves accordingly."""
    from jobs.publish import experiments
    from tests.support.harness import wait_for

    if on:
        experiments.start_shadow("bench-v2", owner_url)
    else:
        experiments.stop_shadow(owner_url)
    wait_for(lambda: shadow_seen(port, on), 30, f"shadow {'on' if on else 'off'}")


def lookup_cost(reader_url: str, n_users: int, n: int = 20_000) -> dict[str, float]:
    """Median µs per request of the store's lookups on one pooled connection (3 rounds,
    alternating): the served lookup alone, and followed by the shadow's (what the shadow adds
    to a request, without the HTTP noise of a shared machine)."""
    import random

    from serving.store import ReadOnlyStore

    store = ReadOnlyStore(reader_url, max_connections=1, statement_timeout_ms=1000)
    rng = random.Random(5)
    times: dict[str, list[float]] = {"served lookup": [], "served + shadow lookups": []}
    try:
        for _ in range(3):
            for label, versions in zip(
                times, (("bench-v1",), ("bench-v1", "bench-v2")), strict=True
            ):
                started = time.perf_counter()
                for _ in range(n):
                    user = rng.randint(1, n_users)
                    for version in versions:
                        store.lookup(version, user)
                times[label].append((time.perf_counter() - started) / n * 1e6)
    finally:
        store.close()
    return {label: sorted(v)[1] for label, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    from tests.support.harness import PrivateDatabase, free_port

    db = PrivateDatabase().create()
    tmp = Path(tempfile.mkdtemp(prefix="recs-bench-shadow-"))
    proc = None
    try:
        started = time.perf_counter()
        stage(db.owner_url, "bench-v1", args.users, publish_it=True)
        stage(db.owner_url, "bench-v2", args.users, publish_it=False)
        publish_popular(db.owner_url)
        print(f"loaded 2 x {args.users} users in {time.perf_counter() - started:.0f} s")
        costs = lookup_cost(db.reader_url, args.users)
        port = free_port()
        env = {
            "SERVING_DATABASE_URL": db.reader_url,
            "RECS_VAR_DIR": str(tmp / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        }
        (tmp / "metrics").mkdir()
        proc = gunicorn("serving.app:create_app()", port, env)
        wait_http(f"http://127.0.0.1:{port}/readyz")
        max_user = int(args.users / 0.9)  # 10 % of the ids are unknown
        run_wrk(port, 3, max_user, tmp, 1)  # warm-up: pools, caches, page cache
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(args.rounds):
            for on in (False, True):
                switch(db.owner_url, port, on)
                runs[on].append(run_wrk(port, args.seconds, max_user, tmp, 10 + r))
        off, on = median_run(runs[False]), median_run(runs[True])
        print(
            f"\ngunicorn 2 workers, wrk -t2 -c16, {args.users} users, {args.rounds} alternating "
            f"rounds of {args.seconds:g} s each, median round:"
        )
        print_table([("no shadow", off), ("shadow (lookup + log)", on)])
        print(
            f"\nratio shadow / none: p50 {on['p50 ms'] / off['p50 ms']:.2f}, "
            f"p99 {on['p99 ms'] / off['p99 ms']:.2f}, req/s {on['req/s'] / off['req/s']:.2f}"
        )
        print("\nper request, one pooled connection, 20,000 requests x 3 rounds (median µs):")
        for label, micros in costs.items():
            print(f"  {label:26} {micros:7.1f}")
    finally:
        if proc is not None:
            stop(proc)
        db.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
