"""The simulator's side of the movielog grammar: checks and builders over contracts.grammar.

The patterns, shapes and ranges are the contract's (contracts/grammar.py), the ones the parser
reads with. The simulator checks its own output with `classify`, and re-checks every line it
injects as malformed, so a line the ledger calls a reject really is one.
"""

from __future__ import annotations

import re
import unicodedata

from contracts.grammar import (
    CONTROL_RE,
    LINE_RES,
    SLUG_WORD_RE,
    in_range,
    reco_line,
)

__all__ = ["KINDS", "classify", "parse", "reco_line", "slug_words", "unique_slugs"]

KINDS = tuple(LINE_RES)  # ('watch', 'rate', 'reco')

_CONTROL = re.compile(CONTROL_RE)
_SLUG_WORD = re.compile(SLUG_WORD_RE)


def _match(line: bytes | str) -> tuple[str, re.Match] | None:
    """(kind, match) of a valid line, or None when the grammar rejects it."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if _CONTROL.search(line) is not None:
        return None
    for kind, pattern in LINE_RES.items():
        match = pattern.fullmatch(line)
        if match is not None:
            return (kind, match) if in_range(kind, match) else None
    return None


def classify(line: bytes | str) -> str | None:
    """The event kind of a movielog line ('watch', 'rate', 'reco'), or None for a reject."""
    found = _match(line)
    return None if found is None else found[0]


def parse(line: bytes | str) -> dict | None:
    """The fields of a valid line as text (with 'kind', and 'user' as int), or None."""
    found = _match(line)
    if found is None:
        return None
    kind, match = found
    fields = match.groupdict()
    fields["kind"] = kind
    fields["user"] = int(fields["user"])
    return fields


def slug_words(title: str) -> str:
    """Lowercase ASCII words of a title joined by '+': accents dropped, other symbols removed."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    ascii_title = ascii_title.lower().replace("&", " and ").replace("'", "")
    return "+".join(_SLUG_WORD.findall(ascii_title))


UNKNOWN_YEAR = "0000"  # where a source has no usable year, e.g. MovieLens "Cosmos"


def unique_slugs(titles: list[str], years: list[int | None], fallbacks: list[str]) -> list[str]:
    """Movie ids `title+year`, made unique by a `+2`, `+3`… before the year.

    A title with no ASCII letters or digits uses its fallback (e.g. the IMDb id), slugged the
    same way, as words. A movie without a year of four digits gets UNKNOWN_YEAR, so every id
    has the contract's `title+year` shape (ingestion would otherwise reject its lines).
    """
    seen: set[str] = set()
    out = []
    for title, year, fallback in zip(titles, years, fallbacks, strict=True):
        words = slug_words(title) or slug_words(fallback)
        if not words:
            raise ValueError(f"movie {title!r} has no title words and no usable fallback")
        tail = f"+{year:04d}" if year and 0 < year <= 9999 else f"+{UNKNOWN_YEAR}"
        slug = f"{words}{tail}"
        n = 1
        while slug in seen:
            n += 1
            slug = f"{words}+{n}{tail}"
        seen.add(slug)
        out.append(slug)
    return out
