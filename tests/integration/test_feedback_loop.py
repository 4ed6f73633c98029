"""The feedback-loop measure rises in a closed loop built to reinforce popularity and not in one
without that loop.

A tiny simulated world (simulator.generator.Simulation) whose sessions ask a real HTTP
recommender (simulator.stub_recommender.StubRecommender, lists replaced between cycles):
- loop: after an organic warm-up, every cycle serves everyone the 20 movies most started in
  the run so far: the popularity list retrained on its own outcomes;
- no loop: every cycle serves each user 20 movies drawn at random, whatever was watched.
The lines go through the platform's parser (jobs.ingest.parse) into a snapshot's Parquet
tables, and jobs.online.feedback measures them on Spark, each cycle's days pooled.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.ingest import parse
from jobs.online import feedback
from simulator.generator import DAY_MS, Simulation, to_ms
from simulator.loop import RecommenderClient
from simulator.stub_recommender import StubRecommender
from simulator.world import Scale, World

pytestmark = pytest.mark.integration

START = "2025-03-01"
WARMUP_DAYS, CYCLE_DAYS, CYCLES = 2, 2, 3
SCALE = Scale(users=300, movies=120)


def most_started(values: list[str], slug_index: dict[str, int], k: int = 20) -> np.ndarray:
    """The machine's popularity list: the k movies with the most watch starts (minute 0)."""
    counts: dict[int, int] = {}
    for line in values:
        if "/data/m/" in line and line.endswith("/0.mpg"):
            slug = line.split("/data/m/", 1)[1].split("/", 1)[0]
            counts[slug_index[slug]] = counts.get(slug_index[slug], 0) + 1
    return np.array(sorted(counts, key=lambda m: (-counts[m], m))[:k])


def run_loop(world: World, reinforce: bool, tmp_path) -> list[str]:
    """The simulated stream of one run: warm-up, then CYCLES cycles of served lists."""
    rng = np.random.default_rng(3)
    n_users, n_movies = world.population.n_active, world.catalog.n_initial
    sim = Simulation(world, START, seed=11)
    batches = sim.batches(None)
    until = to_ms(START)
    values: list[str] = []

    def advance(days: int) -> None:
        nonlocal until
        until += days * DAY_MS
        for batch in batches:
            values.extend(batch.values)
            if batch.window_end_ms >= until:
                return

    with StubRecommender(world, "random") as stub:
        client = RecommenderClient(stub.url, workers=4)
        advance(WARMUP_DAYS)
        sim.recommender = client
        for _ in range(CYCLES):
            if reinforce:  # retrained on the outcomes of what it served
                stub.lists = np.tile(most_started(values, world.catalog.index), (n_users, 1))
            else:
                stub.lists = np.stack(
                    [rng.choice(n_movies, 20, replace=False) for _ in range(n_users)]
                )
            advance(CYCLE_DAYS)
        client.close()
    return values


def lake_of(values: list[str], root) -> list:
    """The lines parsed as ingest parses them, written as one snapshot's watch and reco tables."""
    raw = [v.encode() for v in values]
    tables = parse.parse_batch(
        raw, np.zeros(len(raw), np.int32), np.arange(len(raw), dtype=np.int64)
    )
    snap = root / "s000001"
    for name in ("watch", "reco_request", "rate"):
        (snap / name).mkdir(parents=True)
        pq.write_table(tables[name], snap / name / "part-0.parquet")
    return [snap]


def per_cycle(spark, snapshots) -> dict[int, dict]:
    """The measures of each cycle (0 = warm-up), all versions."""
    days = WARMUP_DAYS + CYCLES * CYCLE_DAYS
    # The world's catalogue: both runs are measured over the same movies.
    frames = feedback.count_frames(spark, snapshots, [], days + 1, catalogue=SCALE.movies)
    cycle_of = [0] * WARMUP_DAYS + [1 + i // CYCLE_DAYS for i in range(CYCLES * CYCLE_DAYS)]
    first = date.fromisoformat(START)
    periods = {str(first + timedelta(days=d)): c for d, c in enumerate(cycle_of)}
    rows = feedback.summarise(
        feedback.relabel_days(frames["exposure"], periods),
        feedback.relabel_days(frames["watches"], periods),
        frames["catalogue"],
    )
    return {int(r["day"]): r for r in rows if r["model_version"] == feedback.ALL}


def test_concentration_rises_with_the_popularity_loop_and_not_without(spark, tmp_path):
    world = World(SCALE, seed=5)
    loop = per_cycle(spark, lake_of(run_loop(world, True, tmp_path), tmp_path / "loop"))
    flat = per_cycle(spark, lake_of(run_loop(world, False, tmp_path), tmp_path / "flat"))
    for name, cycles in (("loop", loop), ("no loop", flat)):
        print(name, [(c, round(r["watch_gini"], 3), r["rec_share"]) for c, r in cycles.items()])
    assert sorted(loop) == sorted(flat) == list(range(CYCLES + 1))
    for cycles in (loop, flat):  # the lists were asked for and followed in both runs
        assert cycles[0]["rec_share"] == 0.0
        assert all(cycles[c]["rec_share"] > 0.2 for c in range(1, CYCLES + 1))
    organic = loop[0]["watch_gini"]
    assert flat[0]["watch_gini"] == pytest.approx(organic)  # same world, same warm-up
    # With the loop, watching concentrates beyond the organic level in every served cycle ...
    assert all(loop[c]["watch_gini"] > organic + 0.05 for c in range(1, CYCLES + 1))
    assert loop[CYCLES]["watch_top1_share"] > loop[0]["watch_top1_share"]
    # ... and without it, it does not rise at all.
    assert all(flat[c]["watch_gini"] < organic for c in range(1, CYCLES + 1))
    assert loop[CYCLES]["exposure_gini"] > 0.8 > flat[CYCLES]["exposure_gini"]
