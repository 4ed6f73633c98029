"""Run every benchmark module (benchmarks/bench_*.py), or the ones named on the command line.

Kafka and Postgres are started first when they are not up (and stopped afterwards, unless
RECS_KEEP_SERVICES=1), so `make bench` works as the first command on a fresh clone.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time

import benchmarks
from ops import services

NEEDED = ("postgres", "kafka")


def main(argv: list[str]) -> int:
    started = services.up(NEEDED, quiet=True)
    try:
        return run(argv)
    finally:
        if started and os.environ.get("RECS_KEEP_SERVICES") != "1":
            services.down(started, quiet=True)


def run(argv: list[str]) -> int:
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            if module.main([]):
                failed.append(name)
        except Exception as exc:  # noqa: BLE001 - one broken bench must not hide the others
            failed.append(name)
            print(f"{name} failed: {exc!r}", flush=True)
        print(f"({name} took {time.perf_counter() - start:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
