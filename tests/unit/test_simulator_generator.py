"""Event generation without Kafka: grammar, mix, order, determinism, taste, faults, ledger."""

from __future__ import annotations

import base64
from collections import Counter, defaultdict

import numpy as np
import pytest

from simulator import grammar
from simulator.cli import build_parser
from simulator.faults import ALL_KINDS, REJECT_KINDS, Ledger, parse_faults
from simulator.generator import Simulation, collect
from simulator.world import World

pytestmark = pytest.mark.unit
START = "2025-03-14"


@pytest.fixture(scope="module")
def world() -> World:
    return World("tiny", 42)


@pytest.fixture(scope="module")
def one_day(world):
    return collect(Simulation(world, START), days=1)


@pytest.fixture(scope="module")
def parsed(one_day):
    return [grammar.parse(v) for v in one_day[1]]


def test_every_line_is_grammar_valid_with_the_expected_mix(one_day, parsed):
    keys, values = one_day
    assert len(values) > 3_000
    assert all(p is not None for p in parsed)
    kinds = Counter(p["kind"] for p in parsed)
    assert kinds["reco"] == 0  # no recommender configured
    assert 0.002 < kinds["rate"] / len(values) < 0.05
    assert kinds["watch"] > 0.95 * len(values)
    assert all(k == str(p["user"]) for k, p in zip(keys, parsed, strict=True))
    assert any("." in p["time"] for p in parsed) and any("." not in p["time"] for p in parsed)


def test_each_users_lines_are_in_time_order_and_minutes_consecutive(parsed):
    last_time: dict[int, str] = {}
    last_watch: dict[int, tuple[str, int]] = {}
    for p in parsed:
        user, time = p["user"], p["time"][:19]
        assert last_time.get(user, "") <= time
        last_time[user] = time
        if p["kind"] == "watch":
            minute = int(p["minute"])
            if minute > 0:  # a session's minutes follow one another, one movie at a time
                assert last_watch[user] == (p["movie"], minute - 1)
            last_watch[user] = (p["movie"], minute)


def test_daily_cycle_busier_evening_than_night(parsed):
    starts = Counter(
        int(p["time"][11:13]) for p in parsed if p["kind"] == "watch" and p["minute"] == "0"
    )
    evening = sum(starts[h] for h in range(18, 23))
    night = sum(starts[h] for h in range(2, 7))
    assert evening > 3 * night


def test_same_seed_same_stream_other_seed_differs(world, one_day):
    assert collect(Simulation(world, START), days=1) == one_day
    assert collect(Simulation(world, START, seed=7), days=1)[1] != one_day[1]


def test_ratings_and_watching_follow_hidden_taste(world):
    _, values = collect(Simulation(world, START), days=3)
    index = world.catalog.index
    rated, affinity = [], []
    minutes: dict[tuple[int, str], int] = defaultdict(int)
    for p in map(grammar.parse, values):
        if p["kind"] == "rate":
            rated.append(int(p["rating"]))
            affinity.append(world.true_affinity([p["user"] - 1], [index[p["movie"]]])[0, 0])
        else:
            minutes[(p["user"], p["movie"])] += 1
    assert np.corrcoef(rated, affinity)[0, 1] > 0.3
    pairs = list(minutes)
    aff = np.array([world.true_affinity([u - 1], [index[m]])[0, 0] for u, m in pairs])
    watched = np.array([minutes[k] for k in pairs])
    assert watched[aff > np.median(aff)].mean() > 1.5 * watched[aff <= np.median(aff)].mean()


def test_no_overlap_pushes_a_users_second_session_after_the_first(world):
    sim = Simulation(world, START)
    users = np.array([3, 3, 5])
    starts = np.array([1_000, 2_000, 1_500])
    durations = np.array([10_000, 10_000, 10_000])
    assert sim._no_overlap(users, starts, durations).tolist() == [1_000, 11_000, 1_500]
    # carried over: user 3 is busy until 21,000 now
    assert sim._no_overlap(np.array([3]), np.array([5_000]), np.array([1])).tolist() == [21_000]


def test_parse_faults_rejects_unknown_kinds_and_bad_rates():
    assert parse_faults(["truncated=0.01", "drift=0.5"]) == {"truncated": 0.01, "drift": 0.5}
    for bad in (["nonsense=0.1"], ["truncated"], ["truncated=2"], ["truncated=x"]):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_every_fault_kind_is_injected_and_recorded_truthfully(world):
    rates = {k: 0.01 for k in ALL_KINDS}
    rates.update(drift=0.3, new_movies=0.05, rating_spam=0.05)
    ledger = Ledger(None)
    keys, values = collect(Simulation(world, START, faults=rates, ledger=ledger), days=2)
    summary = ledger.close()
    records = ledger.records[:-1]
    assert summary["lines"] == len(values) == len(keys)
    assert set(summary["by_kind"]) == set(ALL_KINDS)
    raw = Counter(v.encode() if isinstance(v, str) else v for v in values)
    for rec in records:
        line = base64.b64decode(rec["line_b64"])
        assert raw[line] >= 1, rec
        assert rec["reject"] == (rec["kind"] in REJECT_KINDS)
        assert (grammar.classify(line) is None) == rec["reject"], rec
        parsed = grammar.parse(line)
        if rec["kind"] == "duplicate":
            assert raw[line] >= 2
        if rec["kind"] == "unknown_movie":
            assert parsed["movie"] not in world.catalog.index
        if rec["kind"] == "new_movies":
            assert world.catalog.index[parsed["movie"]] >= world.catalog.n_initial
        if rec["kind"] == "rating_spam":
            assert parsed["rating"] == "5" and parsed["user"] > world.population.n_active
        if rec["kind"] == "garbage_bytes":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
        if rec["kind"] == "empty_line":
            assert line == b""
    lines_of_bad_kind = sum(n for k, n in summary["by_kind"].items() if k in REJECT_KINDS)
    invalid = sum(1 for v in values if grammar.classify(v) is None)
    assert invalid == lines_of_bad_kind  # nothing else in the stream is malformed


def test_everyone_gives_every_user_a_day_one_session_and_leaves_day_two_alone(world, parsed):
    idle = world.population.n_active - len({p["user"] for p in parsed})
    assert idle > 0  # the world's own rates leave users without a session on a day
    everyone = day_starters(collect(Simulation(world, START, everyone=True), days=2)[1])
    plain = day_starters(collect(Simulation(world, START), days=2)[1])
    assert set(range(1, world.population.n_active + 1)) == everyone[START]
    assert len(plain[START]) < len(everyone[START])
    day_two = str(np.datetime64(START) + 1)
    shared = everyone[day_two] & plain[day_two]
    assert len(shared) > 0.95 * max(len(everyone[day_two]), len(plain[day_two]))


def day_starters(values: list[str]) -> dict[str, set[int]]:
    """Users who start watching (minute 0) on each day."""
    starters = defaultdict(set)
    for p in map(grammar.parse, values):
        if p["kind"] == "watch" and p["minute"] == "0":
            starters[p["time"][:10]].add(p["user"])
    return starters


def test_everyone_refuses_the_churn_shape_and_is_a_backfill_flag(world):
    with pytest.raises(ValueError, match="stable shape"):
        Simulation(world, START, shape="churn", everyone=True)
    parser = build_parser()
    assert parser.parse_args(["backfill", "--days", "1", "--everyone"]).everyone
    with pytest.raises(SystemExit):
        parser.parse_args(["live", "--rate", "5", "--everyone"])
