"""The movielog line parser: a scalar reference parser and a vectorised fast path.

Every Kafka value becomes exactly one row of `watch`, `rate` or `reco_request`, or one row of
`rejects` with a reason code from REASONS. `parse_batch` runs the fast path (one RE2 regex over
an Arrow string array) on printable-ASCII lines and hands every line it does not accept to
`parse_line`, the scalar reference, which either accepts it too or says why not. The fast path
only accepts lines the scalar parser accepts, with the same values (tests/unit/test_parse*.py).

The grammar (field patterns, line shapes, value ranges) is contracts/grammar.py, the one the
simulator writes with; this module only reads with it (tests/unit/test_grammar_contract.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contracts import grammar
from contracts.names import (
    ITEM_COL,
    MINUTE_COL,
    OFFSET_COL,
    PARTITION_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
)

PARSER_VERSION = "1.0"

VALID_STATUS = f"{grammar.TIMEOUT_STATUS} or {grammar.MIN_HTTP_STATUS}..{grammar.MAX_HTTP_STATUS}"

# --- reject reasons (the `reason` column of `rejects`; docs/ingest.md explains each) ------
REASONS = (
    "empty",  # no bytes, or only spaces
    "encoding",  # not valid UTF-8, or contains control characters
    "too_few_fields",  # fewer than three comma-separated fields (truncated, wrong separator)
    "bad_time",  # first field is not an ISO-8601 time of a real calendar day
    "bad_user_id",  # second field is not ASCII digits in 1..2**63-1
    "unknown_event",  # third field starts like no event kind
    "bad_movie_id",  # movie id of a watch/rate line is not a slug ending in a year
    "bad_minute",  # watch line: minute not an integer 0..2**31-1 followed by `.mpg`
    "bad_rating",  # rate line: rating not an integer 1..5
    "bad_reco",  # recommendation line does not follow its grammar (server, status, result, ms)
    "extra_field",  # a valid line followed by `,<something>` (an upstream schema change)
    "duplicate",  # exactly the same line content already seen in this snapshot
)

TABLES = ("watch", "rate", "reco_request")

WATCH_SCHEMA = pa.schema(
    [
        (TIME_COL, pa.timestamp("ms")),
        (USER_COL, pa.int64()),
        (ITEM_COL, pa.string()),
        (MINUTE_COL, pa.int32()),
        (PARTITION_COL, pa.int32()),
        (OFFSET_COL, pa.int64()),
    ]
)
RATE_SCHEMA = pa.schema(
    [
        (TIME_COL, pa.timestamp("ms")),
        (USER_COL, pa.int64()),
        (ITEM_COL, pa.string()),
        (RATING_COL, pa.int8()),
        (PARTITION_COL, pa.int32()),
        (OFFSET_COL, pa.int64()),
    ]
)
RECO_SCHEMA = pa.schema(
    [
        (TIME_COL, pa.timestamp("ms")),
        (USER_COL, pa.int64()),
        ("server", pa.string()),
        ("status", pa.int16()),
        ("result", pa.list_(pa.string())),
        ("response_time_ms", pa.int32()),
        (PARTITION_COL, pa.int32()),
        (OFFSET_COL, pa.int64()),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        (PARTITION_COL, pa.int32()),
        (OFFSET_COL, pa.int64()),
        ("raw", pa.binary()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
SCHEMAS = {
    "watch": WATCH_SCHEMA,
    "rate": RATE_SCHEMA,
    "reco_request": RECO_SCHEMA,
    "rejects": REJECT_SCHEMA,
}

_MINUTE = re.compile(grammar.MINUTE_RE)
_RATING = re.compile(grammar.RATING_RE)
# The reco shape with any text as the result, so a bad result id can be named in the detail.
_RECO = re.compile(
    grammar.shape_re(
        grammar.RECO_EVENT,
        server=f"(?P<server>{grammar.SERVER_RE})",
        status=f"(?P<status>{grammar.STATUS_RE})",
        result="(?P<result>.*)",
        ms=f"(?P<ms>{grammar.MILLIS_RE})",
    )
)
_CONTROL = re.compile(grammar.CONTROL_RE)


class Reject(NamedTuple):
    """Why a line is not a row: a code from REASONS and a short human-readable detail."""

    reason: str
    detail: str


class Row(NamedTuple):
    """A parsed line: its table and its typed fields (column name -> value)."""

    table: str
    fields: dict


def _shorten(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _parse_strict(text: str) -> Row | Reject:
    """Parse a decoded, control-free line under the grammar (no extra-field retry)."""
    parts = text.split(",", 2)
    if len(parts) < 3:
        return Reject("too_few_fields", f"{len(parts)} comma-separated field(s), need 3")
    time_s, user_s, event = parts
    moment = grammar.parse_time(time_s)
    if moment is None:
        return Reject("bad_time", f"time {_shorten(time_s)!r} is not ISO-8601 YYYY-MM-DDTHH:MM:SS")
    user = grammar.parse_user_id(user_s)
    if user is None:
        return Reject("bad_user_id", f"user id {_shorten(user_s)!r} is not an integer 1..2^63-1")
    base = {TIME_COL: moment, USER_COL: user}
    if event.startswith(grammar.WATCH_PREFIX):
        body = event[len(grammar.WATCH_PREFIX) :]
        movie, sep, tail = body.rpartition(grammar.MINUTE_SEP)
        if not sep:
            movie, tail = body, ""
        if not grammar.is_movie_id(movie):
            return Reject("bad_movie_id", f"movie id {_shorten(movie)!r} is not a slug+year")
        minute = tail.removesuffix(grammar.WATCH_SUFFIX)
        if minute == tail or _MINUTE.fullmatch(minute) is None or int(minute) > grammar.MAX_INT32:
            return Reject("bad_minute", f"{_shorten(tail)!r} is not <minute>.mpg")
        return Row("watch", {**base, ITEM_COL: movie, MINUTE_COL: int(minute)})
    if event.startswith(grammar.RATE_PREFIX):
        body = event[len(grammar.RATE_PREFIX) :]
        movie, sep, rating = body.rpartition(grammar.RATING_SEP)
        if not sep:
            movie, rating = body, ""
        if not grammar.is_movie_id(movie):
            return Reject("bad_movie_id", f"movie id {_shorten(movie)!r} is not a slug+year")
        if _RATING.fullmatch(rating) is None or not grammar.is_rating(int(rating)):
            return Reject("bad_rating", f"rating {_shorten(rating)!r} is not an integer 1..5")
        return Row("rate", {**base, ITEM_COL: movie, RATING_COL: int(rating)})
    if event.startswith(grammar.RECO_PREFIX):
        match = _RECO.fullmatch(event)
        if match is None:
            return Reject("bad_reco", "not '<server>, status <code>, result: <ids>, <n> ms'")
        status = int(match["status"])
        if not grammar.is_status(status):
            return Reject("bad_reco", f"status {status} is not {VALID_STATUS}")
        millis = int(match["ms"])
        if millis > grammar.MAX_INT32:
            return Reject("bad_reco", f"response time {millis} ms is out of range")
        result = match["result"].split(grammar.RESULT_SEP) if match["result"] else []
        for item in result:
            if not grammar.is_movie_id(item):
                return Reject("bad_reco", f"result id {_shorten(item)!r} is not a slug+year")
        fields = {
            **base,
            "server": match["server"],
            "status": status,
            "result": result,
            "response_time_ms": millis,
        }
        return Row("reco_request", fields)
    return Reject("unknown_event", f"event {_shorten(event)!r} matches no event kind")


def parse_line(raw: bytes | None) -> Row | Reject:
    """The reference parser: one Kafka value -> a Row or a Reject with its reason."""
    if raw is None or raw.strip(b" ") == b"":
        return Reject("empty", "no content")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject("encoding", f"not UTF-8: {exc.reason} at byte {exc.start}")
    control = _CONTROL.search(text)
    if control is not None:
        return Reject("encoding", f"control character U+{ord(control[0]):04X} at {control.start()}")
    result = _parse_strict(text)
    if isinstance(result, Reject) and "," in text:
        head, _, extra = text.rpartition(",")
        if isinstance(_parse_strict(head), Row):
            return Reject("extra_field", f"trailing field {_shorten(extra)!r} after a valid line")
    return result


# --- the vectorised fast path ------------------------------------------------------------
# The contract's shapes and fields, narrowed where that keeps casts safe: user ids as writers
# spell them (no leading zero, at most 19 digits), minute/ms at most 9 digits (< 2**31), one
# rating digit; anything it does not take goes to parse_line.
_FAST_COUNT = r"[0-9]{1,9}"


def _fast_line(event: str) -> str:
    """Anchored RE2 source of a whole line around an event pattern (groups t, u)."""
    head = {"time": f"(?P<t>{grammar.TIME_RE})", "user": f"(?P<u>{grammar.CANONICAL_USER_ID_RE})"}
    return "^" + grammar.shape_re(grammar.LINE, **head, event=event) + "$"


# Watch lines are ~90% of the stream: a regex of their own first, the rest on what is left.
_FAST_WATCH_RE = _fast_line(
    grammar.shape_re(
        grammar.WATCH_EVENT,
        movie=f"(?P<wm>{grammar.MOVIE_ID_RE})",
        minute=f"(?P<wmin>{_FAST_COUNT})",
    )
)
_FAST_RATE = grammar.shape_re(
    grammar.RATE_EVENT,
    movie=f"(?P<rm>{grammar.MOVIE_ID_RE})",
    rating=f"(?P<rr>[{grammar.MIN_RATING}-{grammar.MAX_RATING}])",
)
_FAST_RECO = grammar.shape_re(
    grammar.RECO_EVENT,
    server=f"(?P<srv>{grammar.SERVER_RE})",
    status=f"(?P<st>{grammar.STATUS_RE})",
    result=f"(?P<res>{grammar.RESULT_RE})",
    ms=f"(?P<ms>{_FAST_COUNT})",
)
_FAST_OTHER_RE = _fast_line(f"(?:{_FAST_RATE}|{_FAST_RECO})")


def _fast_candidates(binary: pa.BinaryArray) -> np.ndarray:
    """Mask of lines made only of printable ASCII (0x20..0x7e) and not empty."""
    n = len(binary)
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int32, count=n + 1, offset=0)
    offsets = offsets[binary.offset : binary.offset + n + 1]
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8) if n else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    # Lines holding a byte outside printable ASCII: map the (rare) bad bytes to their lines.
    bad_at = np.flatnonzero((data < 0x20) | (data > 0x7E))
    rel = offsets - offsets[0]
    clean = np.ones(n, dtype=bool)
    clean[np.searchsorted(rel, bad_at, side="right") - 1] = False
    lengths = np.diff(offsets)
    return clean & (lengths > 0)


def _timestamps(text: pa.Array) -> pa.Array:
    """timestamp[ms] of TIME_RE strings (null where the calendar day does not exist)."""
    seconds = pc.strptime(
        pc.utf8_slice_codeunits(text, 0, 19),
        format=grammar.TIME_FORMAT,
        unit="ms",
        error_is_null=True,
    )
    # strptime rolls 30 February over into March: keep only times whose day survives.
    real_day = pc.equal(pc.day(seconds), pc.cast(pc.utf8_slice_codeunits(text, 8, 10), pa.int64()))
    seconds = pc.if_else(real_day, seconds, pa.scalar(None, seconds.type))
    has_ms = pc.equal(pc.utf8_length(text), 23)
    frac = pc.if_else(has_ms, pc.utf8_slice_codeunits(text, 20, 23), "0")
    millis = pc.cast(pc.cast(frac, pa.int64()), pa.duration("ms"))
    return pc.add(seconds, millis)


@dataclass
class _Fast:
    """Fast-path result: per table, the accepted line indices and their column arrays."""

    index: dict[str, np.ndarray]
    columns: dict[str, dict[str, pa.Array]]
    accepted: np.ndarray  # bool per line


def _fast_parse(binary: pa.BinaryArray) -> _Fast:
    n = len(binary)
    fast = _Fast({t: np.zeros(0, np.int64) for t in TABLES}, {}, np.zeros(n, dtype=bool))
    cand = np.flatnonzero(_fast_candidates(binary))
    if len(cand) == 0:
        return fast
    text = binary.take(pa.array(cand)).view(pa.string())
    parts = pc.extract_regex(text, _FAST_WATCH_RE)
    watch = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False))
    _take_matches(fast, parts, cand, watch, ("watch",))
    rest = ~watch
    if rest.any():
        others = pc.extract_regex(text.filter(pa.array(rest)), _FAST_OTHER_RE)
        matched = np.asarray(others.is_valid().to_numpy(zero_copy_only=False))
        _take_matches(fast, others, cand[rest], matched, ("rate", "reco_request"))
    return fast


def _take_matches(
    fast: _Fast, parts: pa.StructArray, cand: np.ndarray, matched: np.ndarray, tables: tuple
) -> None:
    """Add the regex-matched lines whose values are in range to `fast`, per table."""
    parts = parts.filter(pa.array(matched))
    cand = cand[matched]
    times = _timestamps(parts.field("t"))
    users = pc.cast(parts.field("u"), pa.uint64())
    max_user = pa.scalar(grammar.MAX_USER_ID, pa.uint64())
    ok = pc.and_(times.is_valid(), pc.less_equal(users, max_user))
    for table in tables:
        if table == "watch":
            mask = ok
        elif table == "rate":
            mask = pc.and_(ok, pc.not_equal(parts.field("rm"), ""))
        else:
            is_reco = pc.not_equal(parts.field("srv"), "")
            status = pc.cast(pc.if_else(is_reco, parts.field("st"), "0"), pa.int16())
            valid = pc.or_(
                pc.equal(status, grammar.TIMEOUT_STATUS),
                pc.and_(
                    pc.greater_equal(status, grammar.MIN_HTTP_STATUS),
                    pc.less_equal(status, grammar.MAX_HTTP_STATUS),
                ),
            )
            mask = pc.and_(ok, pc.and_(is_reco, valid))
        sel = np.asarray(mask.to_numpy(zero_copy_only=False))
        idx = cand[sel]
        fast.index[table] = idx
        fast.accepted[idx] = True
        pick = pa.array(sel)
        cols = {
            TIME_COL: times.filter(pick),
            USER_COL: pc.cast(users.filter(pick), pa.int64()),
        }
        if table == "watch":
            cols[ITEM_COL] = parts.field("wm").filter(pick)
            cols[MINUTE_COL] = pc.cast(parts.field("wmin").filter(pick), pa.int32())
        elif table == "rate":
            cols[ITEM_COL] = parts.field("rm").filter(pick)
            cols[RATING_COL] = pc.cast(parts.field("rr").filter(pick), pa.int8())
        else:
            res = parts.field("res").filter(pick)
            split = pc.split_pattern(res, grammar.RESULT_SEP)
            empty = pa.array([[]] * len(res), pa.list_(pa.string()))
            cols["server"] = parts.field("srv").filter(pick)
            cols["status"] = status.filter(pick)
            cols["result"] = pc.if_else(pc.equal(res, ""), empty, split)
            cols["response_time_ms"] = pc.cast(parts.field("ms").filter(pick), pa.int32())
        fast.columns[table] = cols


# --- duplicates ----------------------------------------------------------------------------
class SeenLines:
    """Hashes of every row line seen so far in one snapshot (8 bytes per line, sorted runs).

    Uses Python's bytes hash (64-bit SipHash): stable within the process, which is all a
    snapshot needs; a rerun recomputes it from the same lines. Sorted runs are merged
    log-structured style, so adding n lines costs O(n log n) in total.
    """

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def check_and_add(self, hashes: np.ndarray) -> np.ndarray:
        """Mask of hashes already seen (earlier in this batch or before); adds the new ones."""
        dup = np.ones(len(hashes), dtype=bool)
        if len(hashes) == 0:
            return dup
        uniq, first = np.unique(hashes, return_index=True)
        fresh = np.ones(len(uniq), dtype=bool)
        for run in self.runs:
            pos = np.searchsorted(run, uniq)
            pos[pos == len(run)] = 0
            fresh &= run[pos] != uniq
        dup[first[fresh]] = False
        self.runs.append(uniq[fresh])
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            last = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], last]), kind="stable")
        return dup


# --- one batch -----------------------------------------------------------------------------
def _python_columns(table: str, rows: list[dict]) -> dict[str, pa.Array]:
    schema = SCHEMAS[table]
    return {
        name: pa.array([r[name] for r in rows], type=schema.field(name).type)
        for name in schema.names
        if name not in (PARTITION_COL, OFFSET_COL)
    }


@dataclass
class _Rejects:
    """Rejected lines of a batch: positions in the batch, reason codes, details."""

    index: list[int] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)


def parse_batch(
    values: Sequence[bytes | None],
    partitions: np.ndarray,
    offsets: np.ndarray,
    seen: SeenLines | None = None,
) -> dict[str, pa.Table]:
    """Parse one batch of Kafka values into the four tables (every line lands in exactly one).

    `partitions`/`offsets` give each value's Kafka position; `seen` carries the duplicate
    check across the batches of one snapshot (None: duplicates are not checked).
    """
    raw_values = [b"" if v is None else v for v in values]
    binary = pa.array(raw_values, pa.binary())
    fast = _fast_parse(binary)
    rejects = _Rejects()
    slow_rows, slow_index = _slow_path(values, fast.accepted, rejects)
    tables = {t: _merged_columns(t, fast, slow_rows[t], slow_index[t]) for t in TABLES}
    if seen is not None:
        _drop_duplicates(tables, raw_values, seen, rejects)
    out = _assemble(
        tables, rejects, np.asarray(partitions, np.int32), np.asarray(offsets, np.int64), binary
    )
    written = sum(len(t) for t in out.values())
    if written != len(values):
        raise AssertionError(
            f"parse_batch lost lines: read {len(values)}, wrote {written} rows + rejects"
        )
    return out


def _slow_path(values, accepted: np.ndarray, rejects: _Rejects):
    """The lines the fast path did not accept, through parse_line: rows per table, or rejects."""
    slow_rows: dict[str, list[dict]] = {t: [] for t in TABLES}
    slow_index: dict[str, list[int]] = {t: [] for t in TABLES}
    for i in np.flatnonzero(~accepted).tolist():
        result = parse_line(values[i])
        if isinstance(result, Row):
            slow_rows[result.table].append(result.fields)
            slow_index[result.table].append(i)
        else:
            rejects.index.append(i)
            rejects.reason.append(result.reason)
            rejects.detail.append(result.detail)
    return slow_rows, slow_index


def _merged_columns(table: str, fast, slow_rows: list[dict], slow_index: list[int]):
    """(batch positions, columns) of one table: fast and slow rows together, in batch order."""
    idx = fast.index.get(table, np.zeros(0, np.int64))
    cols = fast.columns.get(table)
    if slow_index:
        extra = _python_columns(table, slow_rows)
        cols = extra if cols is None else {k: pa.concat_arrays([cols[k], extra[k]]) for k in extra}
        idx = np.concatenate([idx, np.asarray(slow_index, dtype=np.int64)])
    if cols is None:
        cols = {
            f.name: pa.array([], f.type)
            for f in SCHEMAS[table]
            if f.name not in (PARTITION_COL, OFFSET_COL)
        }
    order = np.argsort(idx, kind="stable")
    if not np.array_equal(order, np.arange(len(idx))):
        take = pa.array(order)
        cols = {k: v.take(take) for k, v in cols.items()}
        idx = idx[order]
    return idx, cols


def _drop_duplicates(tables: dict, raw_values: list[bytes], seen: SeenLines, rejects: _Rejects):
    """Move lines already seen in this snapshot from their table to the rejects (in place)."""
    all_rows = np.sort(np.concatenate([tables[t][0] for t in TABLES]))
    hashes = np.fromiter((hash(raw_values[i]) for i in all_rows.tolist()), np.int64, len(all_rows))
    dup = all_rows[seen.check_and_add(hashes)]
    if not len(dup):
        return
    for table in TABLES:
        idx, cols = tables[table]
        keep = ~np.isin(idx, dup)
        if not keep.all():
            mask = pa.array(keep)
            tables[table] = (idx[keep], {k: v.filter(mask) for k, v in cols.items()})
    rejects.index.extend(dup.tolist())
    rejects.reason.extend(["duplicate"] * len(dup))
    rejects.detail.extend(["same line already seen in this snapshot"] * len(dup))


def _assemble(
    tables: dict, rejects: _Rejects, partitions: np.ndarray, offsets: np.ndarray, binary
) -> dict[str, pa.Table]:
    """The four Arrow tables with their Kafka positions; rejects in batch order."""
    out: dict[str, pa.Table] = {}
    for table in TABLES:
        idx, cols = tables[table]
        cols = {
            **cols,
            PARTITION_COL: pa.array(partitions[idx], pa.int32()),
            OFFSET_COL: pa.array(offsets[idx], pa.int64()),
        }
        out[table] = pa.table(cols, schema=SCHEMAS[table])
    order = np.argsort(np.asarray(rejects.index, dtype=np.int64), kind="stable")
    ridx = np.asarray(rejects.index, dtype=np.int64)[order]
    out["rejects"] = pa.table(
        {
            PARTITION_COL: pa.array(partitions[ridx], pa.int32()),
            OFFSET_COL: pa.array(offsets[ridx], pa.int64()),
            "raw": binary.take(pa.array(ridx, pa.int64())),
            "reason": pa.array([rejects.reason[j] for j in order.tolist()], pa.string()),
            "detail": pa.array([rejects.detail[j] for j in order.tolist()], pa.string()),
        },
        schema=REJECT_SCHEMA,
    )
    return out
