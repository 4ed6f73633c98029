"""The movielog parser: every reject reason, the exact reco grammar, fast path == reference."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from contracts import grammar
from jobs.ingest import parse
from jobs.ingest.validate import EXPECTATIONS_DIR

pytestmark = pytest.mark.unit

T = "2025-03-14T09:26:53"
GOOD = {
    "watch": f"{T},4711,GET /data/m/the+matrix+1999/12.mpg",
    "rate": f"{T}.250,4711,GET /rate/the+shawshank+redemption+1994=5",
    "reco_request": (
        f"{T},4711,recommendation request 127.0.0.1:8082, status 200, "
        "result: the+matrix+1999, up+2009, 45 ms"
    ),
}

# One example line (bytes) per reason code, plus a few variants.
BAD = [
    (b"", "empty"),
    (b"   ", "empty"),
    (f"{T},4711,GET /rate/the+ma".encode() + b"\xff\xfe" + b"trix+1999=5", "encoding"),
    (f"{T},4711,GET /rate/the+matrix+1999=5\n".encode(), "encoding"),
    (f"{T},4711,GET /data/m/the+matrix+1999/1\t.mpg".encode(), "encoding"),
    (f"{T};4711;GET /rate/the+matrix+1999=5".encode(), "too_few_fields"),
    (f"{T},4711".encode(), "too_few_fields"),
    (b"2025-03-1", "too_few_fields"),
    (b"2025-02-30T09:26:53,4711,GET /rate/the+matrix+1999=5", "bad_time"),
    (b"2025-03-14 09:26:53,4711,GET /rate/the+matrix+1999=5", "bad_time"),
    (b"2025-03-14T24:00:00,4711,GET /rate/the+matrix+1999=5", "bad_time"),
    (b"2025-03-14T09:26:53.12,4711,GET /rate/the+matrix+1999=5", "bad_time"),
    (f"{T},u4711,GET /rate/the+matrix+1999=5".encode(), "bad_user_id"),
    (f"{T},-4711,GET /rate/the+matrix+1999=5".encode(), "bad_user_id"),
    (f"{T},4711.0,GET /rate/the+matrix+1999=5".encode(), "bad_user_id"),
    (f"{T},0,GET /rate/the+matrix+1999=5".encode(), "bad_user_id"),
    (f"{T},9223372036854775808,GET /rate/the+matrix+1999=5".encode(), "bad_user_id"),
    (f"{T},4711,POST /rate/the+matrix+1999=5".encode(), "unknown_event"),
    (f"{T},4711,GET /data/m/The+Matrix+1999/12.mpg".encode(), "bad_movie_id"),
    (f"{T},4711,GET /rate/the+matrix=5".encode(), "bad_movie_id"),
    (f"{T},4711,GET /data/m/the+matr".encode(), "bad_movie_id"),
    (f"{T},4711,GET /data/m/the+matrix+1999/12".encode(), "bad_minute"),
    (f"{T},4711,GET /data/m/the+matrix+1999/-1.mpg".encode(), "bad_minute"),
    (f"{T},4711,GET /data/m/the+matrix+1999/99999999999.mpg".encode(), "bad_minute"),
    (f"{T},4711,GET /rate/the+matrix+1999=0".encode(), "bad_rating"),
    (f"{T},4711,GET /rate/the+matrix+1999=6".encode(), "bad_rating"),
    (f"{T},4711,GET /rate/the+matrix+1999=-1".encode(), "bad_rating"),
    (f"{T},4711,GET /rate/the+matrix+1999=".encode(), "bad_rating"),
    (f"{T},4711,recommendation request 127.0.0.1:8082, status 200, 45 ms".encode(), "bad_reco"),
    (
        f"{T},4711,recommendation request 127.0.0.1:8082, status 200, result: X, 45 ms".encode(),
        "bad_reco",
    ),
    (
        f"{T},4711,recommendation request 127.0.0.1:8082, status 42, result: , 45 ms".encode(),
        "bad_reco",
    ),
    (
        f"{T},4711,recommendation request 127.0.0.1:8082, status 200, result: a+1999".encode(),
        "bad_reco",
    ),
    (f"{GOOD['watch']},web".encode(), "extra_field"),
    (f"{GOOD['rate']},device=roku".encode(), "extra_field"),
    (f"{GOOD['reco_request']},android".encode(), "extra_field"),
]


@pytest.mark.parametrize(("line", "reason"), BAD, ids=[f"{r}-{i}" for i, (_, r) in enumerate(BAD)])
def test_reference_parser_reasons(line, reason):
    result = parse.parse_line(line)
    assert isinstance(result, parse.Reject), result
    assert result.reason == reason, result
    assert result.reason in parse.REASONS and result.detail


def test_every_reason_has_an_example():
    covered = {reason for _, reason in BAD} | {"duplicate"}
    assert covered == set(parse.REASONS)


def test_reco_lines_exactly_as_the_contract_writes_them():
    ok = parse.parse_line(GOOD["reco_request"].encode())
    assert ok == parse.Row(
        "reco_request",
        {
            "event_time": datetime(2025, 3, 14, 9, 26, 53),
            "user_id": 4711,
            "server": "127.0.0.1:8082",
            "status": 200,
            "result": ["the+matrix+1999", "up+2009"],
            "response_time_ms": 45,
        },
    )
    error = parse.parse_line(
        f"{T},1,recommendation request 127.0.0.1:8082, status 500, result: , 12 ms".encode()
    )
    timeout = parse.parse_line(
        f"{T}.500,1,recommendation request 127.0.0.1:8082, status 0, result: , 800 ms".encode()
    )
    assert error.fields["status"] == 500 and error.fields["result"] == []
    assert timeout.fields["status"] == 0 and timeout.fields["response_time_ms"] == 800
    assert isinstance(timeout, parse.Reject) is False
    assert parse.parse_line(f"{T}.5,1,x".encode()).reason == "bad_time"


def test_good_lines_and_limits():
    watch = parse.parse_line(GOOD["watch"].encode())
    rate = parse.parse_line(GOOD["rate"].encode())
    assert watch.table == "watch" and watch.fields["minute"] == 12
    assert rate.fields["rating"] == 5
    assert rate.fields["event_time"] == datetime(2025, 3, 14, 9, 26, 53, 250000)
    biggest = parse.parse_line(f"{T},9223372036854775807,GET /rate/a+1999=1".encode())
    assert biggest.fields["user_id"] == 2**63 - 1
    padded = parse.parse_line(f"{T},007,GET /rate/heat+2+1995=3".encode())
    assert padded.fields["user_id"] == 7 and padded.fields["movie_id"] == "heat+2+1995"


def batch(lines, seen=None):
    values = [None if v is None else v for v in lines]
    return parse.parse_batch(values, np.zeros(len(values)), np.arange(len(values)), seen)


def test_batch_duplicates_and_every_line_accounted():
    lines = [GOOD["watch"].encode(), GOOD["watch"].encode(), b"", None, GOOD["rate"].encode()]
    seen = parse.SeenLines()
    out = batch(lines, seen)
    assert len(out["watch"]) == 1 and len(out["rate"]) == 1
    rejects = out["rejects"].to_pylist()
    assert [(r["kafka_offset"], r["reason"]) for r in rejects] == [
        (1, "duplicate"),
        (2, "empty"),
        (3, "empty"),
    ]
    assert rejects[0]["raw"] == lines[1]
    # the same snapshot, a later batch: the rate line is a duplicate now, across batches
    again = batch([GOOD["rate"].encode()], seen)
    assert again["rejects"]["reason"].to_pylist() == ["duplicate"]
    assert sum(len(t) for t in out.values()) == len(lines)


def test_fast_path_agrees_with_reference():
    """Every line: the batch result equals parse_line's (row values or reject reason)."""
    rng = np.random.default_rng(7)
    lines = [line for line, _ in BAD] + [g.encode() for g in GOOD.values()]
    lines += [
        f"2024-02-29T23:59:59.999,{u},GET /data/m/m{u}+2001/{u % 90}.mpg".encode()
        for u in rng.integers(1, 10**12, 50)
    ]
    lines += [
        b"2023-02-29T10:00:00,5,GET /rate/a+1999=3",
        b"1899-01-01T00:00:00,5,GET /rate/a+1999=3",
    ]
    out = batch(lines)
    got: dict[int, object] = {}
    for table in parse.TABLES:
        for row in out[table].to_pylist():
            offset = row.pop("kafka_offset")
            row.pop("kafka_partition")
            got[offset] = (table, row)
    for row in out["rejects"].to_pylist():
        got[row["kafka_offset"]] = row["reason"]
    assert len(got) == len(lines)
    for i, line in enumerate(lines):
        ref = parse.parse_line(line)
        want = ref.reason if isinstance(ref, parse.Reject) else (ref.table, ref.fields)
        assert got[i] == want, (line, got[i], want)


def test_seen_lines_across_many_runs():
    seen = parse.SeenLines()
    rng = np.random.default_rng(1)
    values = rng.integers(0, 5000, 20000)
    dups = np.concatenate([seen.check_and_add(chunk) for chunk in np.array_split(values, 37)])
    _, first = np.unique(values, return_index=True)
    expected = np.ones(len(values), bool)
    expected[first] = False
    assert np.array_equal(dups, expected)
    assert len(seen) == len(first)


def test_suites_use_the_contract_regex():
    """The ID-format expectations quote the one MOVIE_ID_RE of contracts/grammar.py."""
    for name in ("watch", "rate"):
        suite = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
        regexes = [e["kwargs"]["regex"] for e in suite["expectations"] if "regex" in e["kwargs"]]
        assert regexes == [f"^{grammar.MOVIE_ID_RE}$"]
    rejects = json.loads((EXPECTATIONS_DIR / "rejects.json").read_text())
    sets = [e["kwargs"]["value_set"] for e in rejects["expectations"] if "value_set" in e["kwargs"]]
    assert sets == [list(parse.REASONS)]
