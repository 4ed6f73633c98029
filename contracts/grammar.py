"""The movielog line grammar (DESIGN.md "The movielog line grammar"), defined once.

    <time>,<userid>,GET /data/m/<movieid>/<minute>.mpg
    <time>,<userid>,GET /rate/<movieid>=<rating>
    <time>,<userid>,recommendation request <server>, status <code>, result: <id>, …, <n> ms

Field patterns are regex sources without anchors or groups, so they compose; the three line
shapes are templates (`{field}` marks a field) that writers fill with `str.format` and readers
turn into regexes with `shape_re`. Values are range-checked after a match: user 1..2**63-1,
minute 0..2**31-1, rating 1..5, status 0 (timeout) or 100..599, response time 0..2**31-1 ms.
The parser (jobs/ingest/parse.py) reads with these and names the reason for a reject; the
simulator (simulator/grammar.py) writes its lines with them and checks its injected faults.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from string import Formatter

# --- fields ----------------------------------------------------------------------------------
# ISO-8601 local time to the second, optional milliseconds; years 1900..2099 (a replayed
# MovieLens log starts in 1995), calendar validity (no 30 February) checked by parse_time.
TIME_RE = (
    r"(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{3})?"
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # the part before the optional `.fff`
# ASCII digits, value 1..MAX_USER_ID; leading zeros are read, writers never write them.
USER_ID_RE = r"[0-9]{1,20}"
# How a writer spells a user id (str of a positive int): the parser's fast path reads only this.
CANONICAL_USER_ID_RE = r"[1-9][0-9]{0,18}"
MAX_USER_ID = 2**63 - 1
# A title slug of lowercase ASCII words joined by '+', ending with the 4-digit release year,
# e.g. `the+shawshank+redemption+1994`, `1917+2019`, `heat+2+1995` (the course's forms).
SLUG_WORD_RE = r"[a-z0-9]+"
YEAR_RE = r"[0-9]{4}"
MOVIE_ID_RE = rf"{SLUG_WORD_RE}(?:\+{SLUG_WORD_RE})*\+{YEAR_RE}"
MINUTE_RE = r"[0-9]{1,10}"
RATING_RE = r"[0-9]{1,3}"
MIN_RATING, MAX_RATING = 1, 5
# The serving host as logged, e.g. `127.0.0.1:8082` or `recs-3:8082`.
SERVER_RE = r"[^,\s]+"
STATUS_RE = r"[0-9]{1,3}"
TIMEOUT_STATUS = 0  # the recommender did not answer in time
MIN_HTTP_STATUS, MAX_HTTP_STATUS = 100, 599
MILLIS_RE = r"[0-9]{1,10}"
MAX_INT32 = 2**31 - 1  # largest minute and response time (int32 columns)
RESULT_SEP = ", "
RESULT_RE = rf"(?:{MOVIE_ID_RE}(?:{RESULT_SEP}{MOVIE_ID_RE})*)?"  # empty when nothing came back
# No line holds a control character (C0, DEL, C1): that is an encoding reject, not a field.
CONTROL_RE = r"[\x00-\x1f\x7f-\x9f]"

# --- the three line shapes ---------------------------------------------------------------------
WATCH_PREFIX = "GET /data/m/"
MINUTE_SEP = "/"  # movie id, then the minute
WATCH_SUFFIX = ".mpg"
RATE_PREFIX = "GET /rate/"
RATING_SEP = "="  # movie id, then the rating
RECO_PREFIX = "recommendation request "

LINE = "{time},{user},{event}"
WATCH_EVENT = WATCH_PREFIX + "{movie}" + MINUTE_SEP + "{minute}" + WATCH_SUFFIX
RATE_EVENT = RATE_PREFIX + "{movie}" + RATING_SEP + "{rating}"
RECO_EVENT = RECO_PREFIX + "{server}, status {status}, result: {result}, {ms} ms"

_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def shape_re(template: str, **fields: str) -> str:
    """Regex source of a template: its literal text escaped, each `{name}` -> fields[name].

    The escaping is valid for both Python `re` and RE2 (pyarrow), which rejects `\\ `.
    """
    out = []
    for literal, name, _, _ in Formatter().parse(template):
        out.append(_REGEX_SPECIAL.sub(r"\\\1", literal))
        if name is not None:
            out.append(fields[name])
    return "".join(out)


def _line_re(event: str, **fields: str) -> re.Pattern:
    groups = {name: f"(?P<{name}>{pattern})" for name, pattern in fields.items()}
    return re.compile(
        shape_re(
            LINE,
            time=f"(?P<time>{TIME_RE})",
            user=f"(?P<user>{USER_ID_RE})",
            event=shape_re(event, **groups),
        )
    )


# Whole lines, groups named after the template fields; values still need the range checks.
LINE_RES = {
    "watch": _line_re(WATCH_EVENT, movie=MOVIE_ID_RE, minute=MINUTE_RE),
    "rate": _line_re(RATE_EVENT, movie=MOVIE_ID_RE, rating=RATING_RE),
    "reco": _line_re(
        RECO_EVENT, server=SERVER_RE, status=STATUS_RE, result=RESULT_RE, ms=MILLIS_RE
    ),
}

_TIME = re.compile(TIME_RE)
_USER = re.compile(USER_ID_RE)
_MOVIE = re.compile(MOVIE_ID_RE)


# --- helpers -----------------------------------------------------------------------------------
def is_movie_id(text: str) -> bool:
    """Whether `text` is a movie id (slug + year)."""
    return _MOVIE.fullmatch(text) is not None


def parse_time(text: str) -> datetime | None:
    """The naive datetime of a TIME_RE string, or None if it is not a real calendar time."""
    if _TIME.fullmatch(text) is None:
        return None
    try:
        moment = datetime.strptime(text[:19], TIME_FORMAT)
    except ValueError:
        return None
    if len(text) == 23:
        moment += timedelta(milliseconds=int(text[20:]))
    return moment


def parse_user_id(text: str) -> int | None:
    """The user id of a USER_ID_RE string in 1..MAX_USER_ID, else None."""
    if _USER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if 0 < value <= MAX_USER_ID else None


def is_rating(value: int) -> bool:
    """Whether a rating is in MIN_RATING..MAX_RATING stars."""
    return MIN_RATING <= value <= MAX_RATING


def is_status(value: int) -> bool:
    """Whether a recommendation status is TIMEOUT_STATUS or an HTTP status code."""
    return value == TIMEOUT_STATUS or MIN_HTTP_STATUS <= value <= MAX_HTTP_STATUS


def in_range(kind: str, match: re.Match) -> bool:
    """Whether the values of a LINE_RES[kind] match are in range (time a real day, ids, …)."""
    if parse_time(match["time"]) is None or parse_user_id(match["user"]) is None:
        return False
    if kind == "watch":
        return int(match["minute"]) <= MAX_INT32
    if kind == "rate":
        return is_rating(int(match["rating"]))
    return is_status(int(match["status"])) and int(match["ms"]) <= MAX_INT32


# --- writers -----------------------------------------------------------------------------------
def watch_line(time: str, user: int, movie: str, minute: int) -> str:
    """`<time>,<user>,GET /data/m/<movie>/<minute>.mpg`."""
    return LINE.format(time=time, user=user, event=WATCH_EVENT.format(movie=movie, minute=minute))


def rate_line(time: str, user: int, movie: str, rating: int) -> str:
    """`<time>,<user>,GET /rate/<movie>=<rating>`."""
    return LINE.format(time=time, user=user, event=RATE_EVENT.format(movie=movie, rating=rating))


def reco_event(server: str, status: int, ids: list[str], ms: int) -> str:
    """The event field of a `recommendation request` line (an empty result is allowed)."""
    return RECO_EVENT.format(server=server, status=status, result=RESULT_SEP.join(ids), ms=ms)


def reco_line(time: str, user: int, server: str, status: int, ids: list[str], ms: int) -> str:
    """A whole `recommendation request` line."""
    return LINE.format(time=time, user=user, event=reco_event(server, status, ids, ms))
