"""One movielog grammar: what the simulator writes, the parser reads, field for field.

Seeded random cases (hypothesis is not a dependency): the simulator's stream (closed loop,
every fault kind), its slug builder on awkward titles, the importers, the contract's writers,
and fuzzed lines on which the simulator's check and the parser must agree. The last tests fail
if a second copy of the grammar appears in the pipeline, the simulator or serving.
"""

from __future__ import annotations

import ast
import base64
import random
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import requests

import simulator.grammar as sim_grammar
import simulator.loop as sim_loop
from contracts import grammar
from contracts.names import ITEM_COL, MINUTE_COL, RATING_COL, TIME_COL, USER_COL
from jobs.ingest import parse
from simulator.faults import ALL_KINDS, REJECT_KINDS, Ledger
from simulator.generator import Simulation, collect
from simulator.importers import RatingTable, rating_batches, read_ratings
from simulator.world import World

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]

AWKWARD_TITLES = [
    "Heat", "heat", "HEAT!", "Amélie", "Fantômas - À l'ombre de la guillotine", "東京物語",
    "", "   ", "!!!", "+++", "C++ & You", "1917", "2001: A Space Odyssey", "Se7en", "WALL·E",
    "Ⅻ Monkeys", "ﬁsh", "Straße", "İstanbul", "Ça va", "M*A*S*H", "Love\tActually",
    "Nine\u00a0½ Weeks", "x²", "١٩٨٤", "🎬 Movie", "O'Brother", "Æon Flux", "Øre", "a" * 300,
    "heat+1995", "The Matrix (1999)", "-", "_", "tt0113277",
]  # fmt: skip
AWKWARD_YEARS = [1995, None, 0, -3, 12345, 1, 9999, 2024, 10_000]
# Recommender answers the simulator must not copy into a line: not ids under the contract.
JUNK_IDS = [
    "heat", "Heat+1995", "+heat+1995", "heat++1995", "heat+19950", "heat+95", "héat+1995",
    "heat 1995", "heat+1995+", "tt0113277", "heat_1995", "heat+1995/2",
]  # fmt: skip
ALPHABET = "azAZ09+,. /=:-T\t\x00é\u00a0\x85" + "0123456789" + "abcmpgst"


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def expected_row(fields: dict) -> parse.Row:
    """The parser's row for the simulator's reading of a line (times read independently)."""
    base = {TIME_COL: datetime.fromisoformat(fields["time"]), USER_COL: fields["user"]}
    kind = fields["kind"]
    if kind == "watch":
        return parse.Row(
            "watch", {**base, ITEM_COL: fields["movie"], MINUTE_COL: int(fields["minute"])}
        )
    if kind == "rate":
        return parse.Row(
            "rate", {**base, ITEM_COL: fields["movie"], RATING_COL: int(fields["rating"])}
        )
    result = fields["result"].split(", ") if fields["result"] else []
    return parse.Row(
        "reco_request",
        {
            **base,
            "server": fields["server"],
            "status": int(fields["status"]),
            "result": result,
            "response_time_ms": int(fields["ms"]),
        },
    )


def assert_same_reading(values: list) -> tuple[int, int]:
    """Each line: simulator-valid <=> parser row with the same fields; (valid, rejected)."""
    valid = rejected = 0
    for value in values:
        mine = sim_grammar.parse(value)
        theirs = parse.parse_line(as_bytes(value))
        if mine is None:
            assert isinstance(theirs, parse.Reject), (value, theirs)
            rejected += 1
        else:
            assert theirs == expected_row(mine), value
            valid += 1
    return valid, rejected


def assert_fast_path_takes(values: list) -> None:
    """Writers spell lines canonically, so the parser's fast path accepts every valid one."""
    raw = [as_bytes(v) for v in values]
    accepted = parse._fast_parse(pa.array(raw, pa.binary())).accepted
    for line, fast in zip(raw, accepted.tolist(), strict=True):
        assert fast == (sim_grammar.classify(line) is not None), line


class FakeServing:
    """Stands in for requests.Session: slugs mixed with junk ids, errors, timeouts, empties."""

    def __init__(self, slugs: list[str]):
        self.slugs = slugs

    def get(self, url: str, timeout: float):
        uid = int(url.rsplit("/", 1)[1])
        rng = random.Random(uid)
        if uid % 13 == 0:
            raise requests.Timeout("slower than the client timeout")
        if uid % 11 == 0:
            return SimpleNamespace(status_code=503, text="busy")
        if uid % 17 == 0:
            return SimpleNamespace(status_code=200, text="")
        ids = rng.sample(self.slugs, 12) + rng.sample(JUNK_IDS, 4)
        rng.shuffle(ids)
        return SimpleNamespace(status_code=200, text=",".join(ids))


@pytest.fixture(scope="module")
def world() -> World:
    return World("tiny", 42)


@pytest.fixture(scope="module")
def stream(world):
    """One simulated day: closed loop on a fake serving tier, every fault kind injected."""
    client = sim_loop.RecommenderClient("http://recs-3.internal:8082")
    serving = FakeServing(world.catalog.slugs)
    client._session = lambda: serving
    rates = {k: 0.02 for k in ALL_KINDS}
    rates.update(drift=0.3, new_movies=0.05, rating_spam=0.2)
    ledger = Ledger(None)
    sim = Simulation(world, "2025-03-14", faults=rates, ledger=ledger, recommender=client)
    try:
        _, values = collect(sim, days=1)
    finally:
        client.close()
    ledger.close()
    return values, ledger.records[:-1]


def test_simulated_stream_reads_the_same_in_the_parser(stream):
    values, _ = stream
    valid, rejected = assert_same_reading(values)
    kinds = {sim_grammar.classify(v) for v in values}
    assert kinds == {"watch", "rate", "reco", None} and valid > 3_000 and rejected > 0
    assert_fast_path_takes(values)


def test_reco_lines_carry_only_contract_ids(stream):
    values, _ = stream
    recos = [sim_grammar.parse(v) for v in values if as_bytes(v).count(b"recommendation")]
    recos = [r for r in recos if r is not None]
    assert {r["status"] for r in recos} >= {"0", "200", "503"}
    assert any(r["result"] == "" for r in recos) and any(r["result"] for r in recos)
    for r in recos:
        items = r["result"].split(", ") if r["result"] else []
        assert all(grammar.is_movie_id(item) for item in items), r


def test_injected_faults_are_rejected_exactly_when_meant_to_be(stream):
    _, records = stream
    seen = set()
    for rec in records:
        line = base64.b64decode(rec["line_b64"])
        result = parse.parse_line(line)
        assert isinstance(result, parse.Reject) == rec["reject"], (rec["kind"], line, result)
        seen.add(rec["kind"])
    assert set(REJECT_KINDS) <= seen and "unknown_movie" in seen


def test_slug_builder_on_awkward_titles():
    rng = random.Random(12)
    titles = AWKWARD_TITLES + [
        "".join(rng.choice(ALPHABET + "ÀÉÎõüçñ€™©'&!?()[]{}") for _ in range(rng.randint(0, 30)))
        for _ in range(2_000)
    ]
    years = [AWKWARD_YEARS[i % len(AWKWARD_YEARS)] for i in range(len(titles))]
    forms = ["tt{:07d}", "movie+{}", "TT-{}", "A-{} x", "é{}"]
    fallbacks = [rng.choice(forms).format(i) for i in range(len(titles))]
    slugs = sim_grammar.unique_slugs(titles, years, fallbacks)
    assert len(set(slugs)) == len(slugs)
    lines = []
    for i, slug in enumerate(slugs):
        assert grammar.is_movie_id(slug), (titles[i], years[i], fallbacks[i], slug)
        lines.append(grammar.watch_line("2025-03-14T09:26:53", i + 1, slug, i % 200))
        lines.append(grammar.rate_line("2025-03-14T09:26:53.120", i + 1, slug, 1 + i % 5))
    lines.append(grammar.reco_line("2025-03-14T09:26:53", 7, "h:8082", 200, slugs[:20], 31))
    assert assert_same_reading(lines) == (len(lines), 0)
    assert_fast_path_takes(lines)
    with pytest.raises(ValueError):
        sim_grammar.unique_slugs(["!!!"], [1999], ["—"])


def test_importer_lines_read_the_same(tmp_path: Path):
    rng = np.random.default_rng(5)
    n_movies, n = len(AWKWARD_TITLES), 400
    slugs = sim_grammar.unique_slugs(
        AWKWARD_TITLES, [AWKWARD_YEARS[i % 9] for i in range(n_movies)], ["tt1"] * n_movies
    )
    table = RatingTable(
        user=rng.integers(1, 10**12, n),
        movie=rng.integers(0, n_movies, n),
        stars=rng.integers(1, 6, n),
        ts=rng.integers(0, 4_000_000_000, n),
        slugs=slugs,
    )
    lines = [v for batch in rating_batches(table) for v in batch.values]
    assert assert_same_reading(lines) == (len(lines), 0)
    rates = sorted(
        (p["user"], p["movie"], int(p["rating"]))
        for p in map(sim_grammar.parse, lines)
        if p["kind"] == "rate"
    )
    assert rates == sorted(
        zip(table.user.tolist(), [slugs[m] for m in table.movie], table.stars.tolist(), strict=True)
    )
    # no movie file: the fallback ids of odd source ids still make contract ids
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,A-1,4,964982703\n2,x y,2.5,964982704\n3,42,5,964982705\n"
    )
    imported = read_ratings(tmp_path / "ratings.csv", "movielens")
    assert all(grammar.is_movie_id(s) for s in imported.slugs), imported.slugs
    lines = [v for batch in rating_batches(imported) for v in batch.values]
    assert assert_same_reading(lines) == (len(lines), 0)


def random_time(rng: random.Random) -> str:
    start = datetime(1900, 1, 1)
    moment = start + timedelta(seconds=rng.randrange(200 * 365 * 86_400))
    text = moment.strftime(grammar.TIME_FORMAT)
    return text + f".{rng.randrange(1000):03d}" if rng.random() < 0.3 else text


def random_lines(rng: random.Random, n: int) -> list[str]:
    """Lines written by the contract's writers over the whole range of every field."""
    slugs = sim_grammar.unique_slugs(
        AWKWARD_TITLES, [1999] * len(AWKWARD_TITLES), ["x"] * len(AWKWARD_TITLES)
    )
    edges = [1, 2, 9, 10, grammar.MAX_USER_ID, grammar.MAX_USER_ID - 1]
    lines = []
    for _ in range(n):
        time = random_time(rng)
        user = rng.choice(edges) if rng.random() < 0.1 else rng.randrange(1, grammar.MAX_USER_ID)
        movie = rng.choice(slugs)
        kind = rng.choice(["watch", "rate", "reco"])
        if kind == "watch":
            minute = rng.choice([0, rng.randrange(300), rng.randrange(grammar.MAX_INT32 + 1)])
            lines.append(grammar.watch_line(time, user, movie, minute))
        elif kind == "rate":
            rating = rng.randint(grammar.MIN_RATING, grammar.MAX_RATING)
            lines.append(grammar.rate_line(time, user, movie, rating))
        else:
            status = rng.choice([grammar.TIMEOUT_STATUS, 200, rng.randint(100, 599)])
            server = "".join(rng.choice("abc-.:019[]") for _ in range(rng.randint(1, 20)))
            ids = rng.sample(slugs, rng.randint(0, 20))
            ms = rng.choice([0, rng.randrange(800), grammar.MAX_INT32])
            lines.append(grammar.reco_line(time, user, server, status, ids, ms))
    return lines


def test_contract_writers_round_trip_over_every_field_range():
    lines = random_lines(random.Random(3), 5_000)
    assert assert_same_reading(lines) == (len(lines), 0)
    # minutes and response times of 10 digits fall back to the reference path: same rows
    values = [line.encode() for line in lines]
    out = parse.parse_batch(values, np.zeros(len(values)), np.arange(len(values)))
    assert len(out["rejects"]) == 0
    assert sum(len(out[t]) for t in parse.TABLES) == len(lines)


BOUNDARY_LINES = [
    "2025-03-14T09:26:53,4711,GET /rate/heat+1995=05",
    "2025-03-14T09:26:53,4711,GET /rate/heat+1995=0005",
    "2025-03-14T09:26:53,4711,recommendation request h:1, status 000, result: , 1 ms",
    "2025-03-14T09:26:53,4711,recommendation request h:1, status 099, result: , 1 ms",
    "2025-03-14T09:26:53,4711,recommendation request h:1, status 600, result: , 1 ms",
    "2025-03-14T09:26:53,4711,recommendation request h:1, status 200, result: , 2147483648 ms",
    "2025-03-14T09:26:53,4711,recommendation request h\u00a0x:1, status 200, result: , 1 ms",
    "2025-03-14T09:26:53,4711,recommendation request héx:1, status 200, result: , 1 ms",
    "2025-03-14T09:26:53,4711,recommendation request h:1, status 200, result: , , 1 ms",
    "2025-03-14T09:26:53,4711,recommendation request h:1, status 200, result: a+1999, 5 ms, 7 ms",
    "2025-03-14T09:26:53,0000000000000000001,GET /rate/heat+1995=3",
    "2025-03-14T09:26:53,00000000000000000001,GET /rate/heat+1995=3",
    "2025-03-14T09:26:53,000000000000000000001,GET /rate/heat+1995=3",
    "2025-03-14T09:26:53,٤٧١١,GET /rate/heat+1995=3",
    "2025-03-14T09:26:53,9223372036854775808,GET /rate/heat+1995=3",
    "2024-02-29T09:26:53,1,GET /rate/heat+1995=3",
    "2023-02-29T09:26:53,1,GET /rate/heat+1995=3",
    "1899-12-31T23:59:59,1,GET /rate/heat+1995=3",
    "2100-01-01T00:00:00,1,GET /rate/heat+1995=3",
    "2025-13-01T00:00:00,1,GET /rate/heat+1995=3",
    "2025-03-14T09:26:53,1,GET /data/m/heat+1995/2147483647.mpg",
    "2025-03-14T09:26:53,1,GET /data/m/heat+1995/2147483648.mpg",
    "2025-03-14T09:26:53,1,GET /data/m/heat+1995/1/2.mpg",
    "2025-03-14T09:26:53,1,GET /data/m/heat+1995+/2.mpg",
    "2025-03-14T09:26:53,1,GET /data/m/heat/2.mpg",
] + [f"2025-03-14T09:26:53,1,GET /rate/{junk}=3" for junk in JUNK_IDS]


def mutate(line: str, rng: random.Random) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and at < len(chars):
            chars[at] = rng.choice(ALPHABET)
        elif op < 0.7:
            chars.insert(at, rng.choice(ALPHABET))
        elif at < len(chars):
            del chars[at]
    return "".join(chars)


def test_simulator_check_and_parser_agree_on_fuzzed_lines():
    """Valid or not, both sides give the same answer (and the same fields when valid)."""
    rng = random.Random(11)
    base = random_lines(rng, 2_000)
    fuzzed = BOUNDARY_LINES + [mutate(rng.choice(base), rng) for _ in range(30_000)]
    valid, rejected = assert_same_reading(fuzzed)
    assert valid > 1_000 and rejected > 10_000  # both outcomes well exercised
    assert sim_grammar.classify(BOUNDARY_LINES[0]) == "rate"  # as the parser: 1..5, 3 digits
    assert all(
        sim_grammar.classify(f"2025-03-14T09:26:53,1,GET /rate/{j}=3") is None for j in JUNK_IDS
    )


# --- one definition ----------------------------------------------------------------------------
def test_both_sides_use_the_contract_objects():
    assert sim_loop._MOVIE.pattern == grammar.MOVIE_ID_RE
    assert sim_loop._MOVIE.pattern == grammar.MOVIE_ID_RE
    assert sim_grammar.reco_line is grammar.reco_line
    assert parse._RECO.pattern == grammar.shape_re(
        grammar.RECO_EVENT,
        server=f"(?P<server>{grammar.SERVER_RE})",
        status=f"(?P<status>{grammar.STATUS_RE})",
        result="(?P<result>.*)",
        ms=f"(?P<ms>{grammar.MILLIS_RE})",
    )
    for fast in (parse._FAST_WATCH_RE, parse._FAST_OTHER_RE):
        assert grammar.TIME_RE in fast and grammar.CANONICAL_USER_ID_RE in fast
        assert grammar.MOVIE_ID_RE in fast
    assert grammar.RESULT_RE in parse._FAST_OTHER_RE


# Regex pieces of the grammar's facts; outside contracts/grammar.py they mean a second copy.
GRAMMAR_FRAGMENTS = [
    "[a-z0-9]+",  # slug words
    "[a-z0-9+]",  # the simulator's old, looser movie id
    r"\+[0-9]{4}",  # the year a movie id ends with
    r"\+\d{4}",
    "(?:19|20)[0-9]{2}-",  # times
    r"\d{4}-\d{2}-\d{2}T",
    "[0-9]{4}-[0-9]{2}-[0-9]{2}T",
    "[0-9]{1,20}",  # user ids
    r"\d{1,20}",
    "[1-9][0-9]{0,18}",
    r"[^,\s]",  # the server
    "[^, ]",
    r"\.mpg",  # the watch shape
    "status (",  # the reco shape
]
# Literal pieces of the line shapes (writers and readers both take them from the contract).
SHAPE_LITERALS = ["GET /data/m/", "GET /rate/", "recommendation request "]
SHAPE_LITERAL_EXEMPT: set[str] = set()  # every writer uses the contract's line writers


def string_constants(path: Path) -> list[str]:
    """Every string literal (f-string parts included) of a module, docstrings excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_no_second_definition_of_the_grammar():
    paths = sorted(
        p for top in ("jobs", "simulator", "serving", "dags") for p in (REPO / top).rglob("*.py")
    )
    assert REPO / "jobs/ingest/parse.py" in paths and REPO / "simulator/grammar.py" in paths
    found = []
    for path in paths:
        rel = path.relative_to(REPO).as_posix()
        for text in string_constants(path):
            found += [(rel, frag, text) for frag in GRAMMAR_FRAGMENTS if frag in text]
            if rel not in SHAPE_LITERAL_EXEMPT:
                found += [(rel, lit, text) for lit in SHAPE_LITERALS if lit in text]
    assert found == [], "grammar pieces outside contracts/grammar.py (use it instead)"


def test_the_scan_sees_a_copy():
    """The scan above would catch the two grammars this repo used to have."""
    old_parser = r'MOVIE_ID_RE = r"[a-z0-9]+(?:\+[a-z0-9]+)*\+[0-9]{4}"'
    old_simulator = (
        'WATCH_LINE = re.compile(rf"GET /data/m/(?P<movie>{MOVIE_RE})/(?P<m>\\d+)\\.mpg")'
    )
    for source in (old_parser, old_simulator):
        texts = [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)]
        hits = [f for t in texts for f in GRAMMAR_FRAGMENTS + SHAPE_LITERALS if f in t]
        assert hits, source
