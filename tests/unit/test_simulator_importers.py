"""Real data in: rating conversion (one star mapping), MovieLens files, replay of movielog files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from simulator import grammar
from simulator.importers import rating_batches, read_ratings, replay_batches, split_title, to_stars

pytestmark = pytest.mark.unit


def test_to_stars_is_the_documented_mapping():
    ten = to_stars(np.arange(11), 10)
    assert ten.tolist() == [1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert to_stars(np.array([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]), 5).tolist() == [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5,
    ]  # fmt: skip


def test_split_title():
    assert split_title("Heat (1995)") == ("Heat", 1995)
    assert split_title("Twin Peaks (1990/I)") == ("Twin Peaks", 1990)
    assert split_title("No Year") == ("No Year", None)


def _lines(table, per_star=1):
    return [v for b in rating_batches(table, per_star) for v in b.values]


def test_movielens_u_data_keeps_every_rating_in_time_order(tmp_path: Path):
    (tmp_path / "u.data").write_text(
        "1\t10\t4\t881250949\n2\t20\t1\t881250000\n1\t20\t5\t881250999\n"
    )
    (tmp_path / "u.item").write_bytes(
        "10|Heat (1995)|01-Jan-1995||url|0|1\n20|Amélie (2001)|01-Jan-2001||url|0|1\n".encode(
            "latin-1"
        )
    )
    table = read_ratings(tmp_path / "u.data", "movielens")
    lines = _lines(table)
    parsed = [grammar.parse(v) for v in lines]
    assert all(parsed)
    rates = [(p["user"], p["movie"], p["rating"]) for p in parsed if p["kind"] == "rate"]
    assert sorted(rates) == [
        (1, "amelie+2001", "5"),
        (1, "heat+1995", "4"),
        (2, "amelie+2001", "1"),
    ]
    assert sum(p["kind"] == "watch" for p in parsed) == 4 + 1 + 5  # one minute per star
    assert [p["time"] for p in parsed] == sorted(p["time"] for p in parsed)
    assert parsed[-1]["time"] == "1997-12-04T15:56:39"  # 881250999 in UTC, kept exactly


def test_movielens_ratings_csv(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n7,1,3.5,964982703\n")
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"Toy Story, The (1995)",Animation\n'
    )
    lines = _lines(read_ratings(tmp_path / "ratings.csv", "movielens"))
    assert lines[-1].endswith(",7,GET /rate/toy+story+the+1995=4")


def test_bad_rating_file_gives_a_clear_error(tmp_path: Path):
    (tmp_path / "ratings.dat").write_text("1::0111161::ten::1365029107\n")
    with pytest.raises(ValueError, match=r"ratings.dat:1: expected user::imdb_id"):
        read_ratings(tmp_path / "ratings.dat", "movietweetings")
    with pytest.raises(FileNotFoundError):
        read_ratings(tmp_path / "missing.dat", "movietweetings")


def test_replay_keeps_lines_as_bytes_and_keys_by_user(tmp_path: Path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"2025-01-01T00:00:00,12,GET /rate/a+1999=4\r\n\xff\xfe junk\n\nx,y\n")
    batches = list(replay_batches(path))
    assert batches[0].values == [
        b"2025-01-01T00:00:00,12,GET /rate/a+1999=4",
        b"\xff\xfe junk",
        b"",
        b"x,y",
    ]
    assert batches[0].keys == [b"12", None, None, None]


def test_pump_paces_live_output_in_small_chunks():
    from simulator.generator import Batch
    from simulator.sinks import pump

    class ListSink:
        def __init__(self):
            self.calls = []

        def send(self, keys, values):
            self.calls.append(list(values))

    sink = ListSink()
    batches = [Batch([str(i)] * 100, [f"line {i}.{j}" for j in range(100)], 0) for i in range(3)]
    started = time.monotonic()
    assert pump(batches, sink, rate=1_000) == 300
    assert time.monotonic() - started >= 0.25  # 300 lines at 1,000 lines/s cannot be faster
    assert max(len(c) for c in sink.calls) == 50  # rate / 20 lines per send
    assert [v for c in sink.calls for v in c] == [v for b in batches for v in b.values]
