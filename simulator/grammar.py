"""The movielog line grammar (DESIGN.md), as strict regexes, plus slug and line builders.

The simulator checks its own output against these, and re-checks every line it injects as
malformed, so a line the ledger calls a reject really is one.
"""

from __future__ import annotations

import re
import unicodedata

TIME_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?"
USER_RE = r"\d{1,20}"
MOVIE_RE = r"[a-z0-9+]+"
MAX_USER_ID = 2**63 - 1

WATCH_LINE = re.compile(
    rf"(?P<time>{TIME_RE}),(?P<user>{USER_RE}),"
    rf"GET /data/m/(?P<movie>{MOVIE_RE})/(?P<minute>\d+)\.mpg"
)
RATE_LINE = re.compile(
    rf"(?P<time>{TIME_RE}),(?P<user>{USER_RE}),GET /rate/(?P<movie>{MOVIE_RE})=(?P<rating>\d+)"
)
RECO_LINE = re.compile(
    rf"(?P<time>{TIME_RE}),(?P<user>{USER_RE}),recommendation request (?P<server>[^,\s]+), "
    rf"status (?P<status>\d{{1,3}}), result: (?P<result>(?:{MOVIE_RE}(?:, {MOVIE_RE})*)?), "
    r"(?P<ms>\d+) ms"
)
SLUG_WITH_YEAR = re.compile(r"[a-z0-9]+(?:\+[a-z0-9]+)*")

KINDS = ("watch", "rate", "reco")


def classify(line: bytes | str) -> str | None:
    """The event kind of a movielog line ('watch', 'rate', 'reco'), or None for a reject."""
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            return None
    for kind, pattern in (("watch", WATCH_LINE), ("rate", RATE_LINE), ("reco", RECO_LINE)):
        match = pattern.fullmatch(line)
        if match is None:
            continue
        user = int(match["user"])
        if not 0 < user <= MAX_USER_ID:
            return None
        if kind == "rate" and not 1 <= int(match["rating"]) <= 5:
            return None
        return kind
    return None


def parse(line: bytes | str) -> dict | None:
    """The fields of a valid line (with 'kind'), or None when the grammar rejects it."""
    kind = classify(line)
    if kind is None:
        return None
    if isinstance(line, bytes):
        line = line.decode("ascii")
    pattern = {"watch": WATCH_LINE, "rate": RATE_LINE, "reco": RECO_LINE}[kind]
    fields = pattern.fullmatch(line).groupdict()
    fields["kind"] = kind
    fields["user"] = int(fields["user"])
    return fields


def slug_words(title: str) -> str:
    """Lowercase ASCII words of a title joined by '+': accents dropped, other symbols removed."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    ascii_title = ascii_title.lower().replace("&", " and ").replace("'", "")
    return "+".join(re.findall(r"[a-z0-9]+", ascii_title))


UNKNOWN_YEAR = "0000"  # written where a source title has no year, e.g. MovieLens "Cosmos"


def unique_slugs(titles: list[str], years: list[int | None], fallbacks: list[str]) -> list[str]:
    """Movie ids `title+year`, made unique by a `+2`, `+3`… before the year.

    A title with no ASCII letters or digits uses its fallback (e.g. the IMDb id) as words. A
    movie without a known year gets UNKNOWN_YEAR, so its id still has the grammar's
    `title+year` shape (ingestion would otherwise reject every line about it as bad_movie_id).
    """
    seen: set[str] = set()
    out = []
    for title, year, fallback in zip(titles, years, fallbacks, strict=True):
        words = slug_words(title) or fallback
        tail = f"+{year:04d}" if year else f"+{UNKNOWN_YEAR}"
        slug = f"{words}{tail}"
        n = 1
        while slug in seen:
            n += 1
            slug = f"{words}+{n}{tail}"
        seen.add(slug)
        out.append(slug)
    return out


def reco_line(time: str, user: int, server: str, status: int, ids: list[str], ms: int) -> str:
    """A `recommendation request` line exactly as the grammar writes it (empty result allowed)."""
    return (
        f"{time},{user},recommendation request {server}, status {status}, "
        f"result: {', '.join(ids)}, {ms} ms"
    )
