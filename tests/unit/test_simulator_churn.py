"""The churn shape: users arrive over the run and stay days to weeks; volume stays of the
stable shape's order, and a global time cut leaves few users on both sides."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator import grammar
from simulator.cli import build_parser
from simulator.generator import (
    CHURN_LIFETIME_DAYS,
    CHURN_LIFETIME_MEDIAN_DAYS,
    CHURN_LIVE_DAYS,
    DAY_MS,
    WINDOWS_PER_DAY,
    Simulation,
    churn_schedule,
    collect,
    to_ms,
)
from simulator.world import World

pytestmark = pytest.mark.unit
START = "2025-03-01"
DAYS = 28


@pytest.fixture(scope="module")
def world() -> World:
    return World("tiny", 42)


def _events(sim: Simulation, days: int) -> dict:
    """A run's lines as arrays: time (ms), user id, and the lines themselves."""
    keys, values = collect(sim, days)
    stamps = [v.split(",", 1)[0] for v in values]
    time = np.array(stamps, dtype="datetime64[ms]").astype(np.int64)
    return {"time": time, "user": np.array(keys, dtype=np.int64), "values": values}


@pytest.fixture(scope="module")
def runs(world) -> dict[str, dict]:
    sims = {shape: Simulation(world, START, shape=shape) for shape in ("stable", "churn")}
    out = {shape: _events(sim, DAYS) for shape, sim in sims.items()}
    out["churn"]["sim"] = sims["churn"]
    return out


def _per_user(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each user's first and last event time (ms)."""
    order = np.lexsort((run["time"], run["user"]))
    user, time = run["user"][order], run["time"][order]
    first = np.r_[0, np.flatnonzero(np.diff(user)) + 1]
    last = np.r_[first[1:] - 1, len(user) - 1]
    return time[first], time[last]


def _both_sides_of_cut(run: dict, quantile: float = 0.8) -> float:
    """Share of users with events both before and after a global time cut."""
    cut = np.quantile(run["time"], quantile)
    before = set(run["user"][run["time"] < cut].tolist())
    after = set(run["user"][run["time"] >= cut].tolist())
    return len(before & after) / len(set(run["user"].tolist()))


def test_same_seed_same_churn_stream_other_shape_or_seed_differs(world):
    churn = collect(Simulation(world, START, shape="churn"), days=3)
    assert collect(Simulation(world, START, shape="churn"), days=3) == churn
    assert collect(Simulation(world, START), days=3)[1] != churn[1]
    assert collect(Simulation(world, START, seed=7, shape="churn"), days=3)[1] != churn[1]


def test_unknown_shape_is_refused_by_the_simulation_and_the_cli(world):
    with pytest.raises(ValueError, match="shape"):
        Simulation(world, START, shape="bursty")
    parser = build_parser()
    assert parser.parse_args(["backfill", "--days", "1"]).shape == "stable"
    assert parser.parse_args(["live", "--rate", "5", "--shape", "churn"]).shape == "churn"
    with pytest.raises(SystemExit):
        parser.parse_args(["backfill", "--days", "1", "--shape", "bursty"])


def test_schedule_draws_lifetimes_of_days_to_weeks_and_arrivals_over_the_period():
    period = DAYS * DAY_MS
    arrival, lifetime = churn_schedule(50_000, period, seed=42)
    days = lifetime / DAY_MS
    assert np.median(days) == pytest.approx(CHURN_LIFETIME_MEDIAN_DAYS, rel=0.05)
    assert CHURN_LIFETIME_DAYS[0] <= days.min() and days.max() <= CHURN_LIFETIME_DAYS[1]
    assert ((arrival > -lifetime) & (arrival < period)).all()  # every stretch meets the period
    inside = arrival[arrival >= 0]
    assert np.histogram(inside, bins=4, range=(0, period))[0].min() > 0.2 * len(inside)
    again = churn_schedule(50_000, period, seed=42)
    assert np.array_equal(again[0], arrival) and np.array_equal(again[1], lifetime)


def test_no_session_starts_outside_a_users_active_stretch(runs):
    run, sim = runs["churn"], runs["churn"]["sim"]
    starts = np.array([v.endswith("/0.mpg") for v in run["values"]])
    user, start = run["user"][starts] - 1, run["time"][starts] - 1_000  # minute 0 is at +1 s
    assert len(start) > 1_000
    assert (start >= sim.arrival_ms[user]).all()
    assert (start < sim.arrival_ms[user] + sim.lifetime_ms[user]).all()


def test_churned_users_are_active_for_much_shorter_than_the_period(runs):
    first, last = _per_user(runs["churn"])
    assert np.median(last - first) <= DAYS * DAY_MS / 3
    first, last = _per_user(runs["stable"])
    assert np.median(last - first) > DAYS * DAY_MS * 2 / 3


def test_arrivals_cover_early_and_late_parts_of_the_period(runs):
    first, _ = _per_user(runs["churn"])
    day = (first - to_ms(START)) / DAY_MS
    assert (day < DAYS / 4).mean() > 0.2
    assert (day >= DAYS / 2).mean() > 0.3
    assert (day >= 3 * DAYS / 4).mean() > 0.1
    first, _ = _per_user(runs["stable"])
    assert ((first - to_ms(START)) / DAY_MS >= DAYS / 2).mean() < 0.05


def test_a_global_time_cut_leaves_far_fewer_users_on_both_sides(runs):
    stable, churn = _both_sides_of_cut(runs["stable"]), _both_sides_of_cut(runs["churn"])
    assert stable > 0.7
    assert churn < 0.5 * stable


def test_volume_per_day_is_of_the_stable_order_every_day(runs):
    def per_day(run: dict) -> np.ndarray:
        day = (run["time"] - to_ms(START)) // DAY_MS
        return np.bincount(day[day < DAYS], minlength=DAYS)

    stable, churn = per_day(runs["stable"]), per_day(runs["churn"])
    assert 0.8 < churn.sum() / stable.sum() < 1.2
    assert churn.min() > 0.5 * stable.mean()  # no ramp-up from an empty first day


def test_ratings_still_follow_hidden_taste(world, runs):
    index = world.catalog.index
    rates = [p for p in map(grammar.parse, runs["churn"]["values"]) if p["kind"] == "rate"]
    stars = [int(p["rating"]) for p in rates]
    users = np.array([p["user"] - 1 for p in rates])
    movies = np.array([index[p["movie"]] for p in rates])
    affinity = np.einsum(
        "nd,nd->n", world.user_vectors(users), world.movie_vectors[movies]
    )  # = true_affinity(user, movie), row by row
    assert np.corrcoef(stars, affinity)[0, 1] > 0.3


def test_a_live_run_does_not_dry_up_after_the_horizon(world):
    sim = Simulation(world, START, shape="churn")
    days = CHURN_LIVE_DAYS + 14
    lines = [len(b.values) for b in itertools.islice(sim.batches(None), days * WINDOWS_PER_DAY)]
    per_day = np.add.reduceat(lines, np.arange(0, len(lines), WINDOWS_PER_DAY))
    assert per_day[CHURN_LIVE_DAYS:].mean() > 0.5 * per_day[:CHURN_LIVE_DAYS].mean()
