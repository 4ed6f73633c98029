"""Real data in, same stream out: replay movielog files, convert public rating data sets.

`import-ratings` turns each rating into a `GET /rate/<movie>=<stars>` line at the rating's
original time (Unix seconds written as ISO-8601 UTC, since the files carry no time zone),
preceded by a plausible run of one-minute watch lines ending 90 s before the rating.
Movie ids are `title+year` slugs made unique across the movie file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from contracts.grammar import (
    MINUTE_SEP,
    RATE_PREFIX,
    RATING_SEP,
    WATCH_PREFIX,
    WATCH_SUFFIX,
    YEAR_RE,
)
from simulator.generator import MINUTE_MS, Batch
from simulator.grammar import unique_slugs

FORMATS = ("movielens", "movietweetings")
WATCH_MINUTES_PER_STAR = 3
WATCH_END_GAP_MS = 90_000
CHUNK_RATINGS = 200_000
# "Heat (1995)", "Twin Peaks (1990/I)": the year is the one a movie id ends with.
_TITLE_YEAR = re.compile(rf"^(?P<title>.*?)\s*\((?P<year>{YEAR_RE})(?:[^)]*)\)\s*$")


def to_stars(value: np.ndarray | float, scale_max: float) -> np.ndarray:
    """THE mapping of a rating on a 0..scale_max scale onto 1..5 stars: ceil(5·value/max), clipped.

    MovieTweetings (0-10): 0-2 → 1, 3-4 → 2, 5-6 → 3, 7-8 → 4, 9-10 → 5.
    MovieLens (1-5, or 0.5-5 in half stars): whole stars unchanged, half stars round up.
    """
    raw = np.ceil(np.asarray(value, dtype=np.float64) * 5.0 / scale_max - 1e-9)
    return np.clip(raw, 1, 5).astype(np.int64)


@dataclass
class RatingTable:
    """Ratings as arrays (user id, movie index, stars, Unix seconds) plus the movie slugs."""

    user: np.ndarray
    movie: np.ndarray
    stars: np.ndarray
    ts: np.ndarray
    slugs: list[str]


def split_title(text: str) -> tuple[str, int | None]:
    """'Heat (1995)' -> ('Heat', 1995); a title without a year keeps None."""
    match = _TITLE_YEAR.match(text.strip())
    if match is None:
        return text.strip(), None
    return match["title"], int(match["year"])


def _movie_slugs(movie_ids: list[str], titles: dict[str, str], prefix: str) -> list[str]:
    """Slugs for `movie_ids` in order; ids missing from the movie file get `<prefix><id>`."""
    parsed = [split_title(titles.get(m, "")) for m in movie_ids]
    return unique_slugs(
        [t for t, _ in parsed], [y for _, y in parsed], [f"{prefix}{m}" for m in movie_ids]
    )


def _bad(path: Path, lineno: int, text: str, why: str) -> ValueError:
    return ValueError(f"{path}:{lineno}: {why}: {text[:120]!r}")


def _read_movies_dat(path: Path) -> dict[str, str]:
    titles = {}
    for lineno, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text.strip():
            parts = text.split("::")
            if len(parts) < 2:
                raise _bad(path, lineno, text, "expected imdb_id::Title (Year)::Genres")
            titles[parts[0]] = parts[1]
    return titles


def _table(users, movie_ids, values, ts, titles, scale_max, prefix) -> RatingTable:
    ids, movie = np.unique(np.asarray(movie_ids), return_inverse=True)
    return RatingTable(
        user=np.asarray(users, dtype=np.int64),
        movie=movie.astype(np.int64),
        stars=to_stars(np.asarray(values, dtype=np.float64), scale_max),
        ts=np.asarray(ts, dtype=np.int64),
        slugs=_movie_slugs(ids.tolist(), titles, prefix),
    )


def read_movietweetings(ratings: Path, movies: Path | None = None) -> RatingTable:
    """ratings.dat (`user::imdb_id::0-10::unix_ts`) with movies.dat (`imdb_id::Title (Year)::…`)."""
    movies = movies or ratings.with_name("movies.dat")
    titles = _read_movies_dat(movies) if movies.exists() else {}
    users, items, values, ts = [], [], [], []
    for lineno, text in enumerate(ratings.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        parts = text.split("::")
        if len(parts) != 4 or not (
            parts[0].isdigit() and parts[2].isdigit() and parts[3].isdigit()
        ):
            raise _bad(ratings, lineno, text, "expected user::imdb_id::0-10::unix_ts")
        users.append(int(parts[0]))
        items.append(parts[1])
        values.append(int(parts[2]))
        ts.append(int(parts[3]))
    return _table(users, items, values, ts, titles, 10.0, "tt")


def read_movielens(ratings: Path, movies: Path | None = None) -> RatingTable:
    """MovieLens 100K `u.data` (+ `u.item`) or `ratings.csv` (+ `movies.csv`)."""
    users, items, values, ts = [], [], [], []
    if ratings.suffix == ".csv":
        movies = movies or ratings.with_name("movies.csv")
        titles = {}
        if movies.exists():
            with movies.open(encoding="utf-8", newline="") as fh:
                titles = {row["movieId"]: row["title"] for row in csv.DictReader(fh)}
        with ratings.open(encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                try:
                    users.append(int(row["userId"]))
                    items.append(row["movieId"])
                    values.append(float(row["rating"]))
                    ts.append(int(row["timestamp"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise _bad(ratings, lineno, str(row), f"bad ratings.csv row ({exc})") from exc
    else:
        movies = movies or ratings.with_name("u.item")
        titles = {}
        if movies.exists():
            text = movies.read_bytes().decode("latin-1")
            for row in csv.reader(io.StringIO(text), delimiter="|"):
                if len(row) >= 2:
                    titles[row[0]] = row[1]
        for lineno, text in enumerate(ratings.read_text(encoding="latin-1").splitlines(), 1):
            parts = text.split("\t")
            if not text.strip():
                continue
            if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
                raise _bad(ratings, lineno, text, "expected user<TAB>item<TAB>rating<TAB>ts")
            users.append(int(parts[0]))
            items.append(parts[1].strip())
            values.append(int(parts[2]))
            ts.append(int(parts[3]))
    return _table(users, items, values, ts, titles, 5.0, "movie+")


def read_ratings(path: str | Path, fmt: str, movies: str | Path | None = None) -> RatingTable:
    """A rating file of one of FORMATS as a RatingTable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"rating file {path} does not exist")
    movies = Path(movies) if movies else None
    if fmt == "movietweetings":
        return read_movietweetings(path, movies)
    if fmt == "movielens":
        return read_movielens(path, movies)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def rating_batches(
    table: RatingTable, minutes_per_star: int = WATCH_MINUTES_PER_STAR
) -> Iterator[Batch]:
    """Movielog lines of the ratings, in event-time order, a chunk of ratings at a time.

    Lines after the next chunk's earliest possible watch line are held back, so the stream
    stays in time order (and so ordered per user) across chunks.
    """
    order = np.argsort(table.ts, kind="stable")
    user, movie, stars, ts = (a[order] for a in (table.user, table.movie, table.stars, table.ts))
    watch_prefix = [f"{WATCH_PREFIX}{s}{MINUTE_SEP}" for s in table.slugs]
    rate_prefix = [f"{RATE_PREFIX}{s}{RATING_SEP}" for s in table.slugs]
    lead_ms = 5 * minutes_per_star * MINUTE_MS + WATCH_END_GAP_MS
    held = None
    for lo in range(0, len(ts), CHUNK_RATINGS):
        hi = min(lo + CHUNK_RATINGS, len(ts))
        u, m, s, t_ms = user[lo:hi], movie[lo:hi], stars[lo:hi], ts[lo:hi] * 1000
        k = s * minutes_per_star
        rep = np.repeat(np.arange(len(u)), k)
        minute = np.arange(len(rep)) - (np.cumsum(k) - k)[rep]
        watch_t = t_ms[rep] - WATCH_END_GAP_MS - (k[rep] - 1 - minute) * MINUTE_MS
        arrays = {
            "time": np.concatenate([watch_t, t_ms]),
            "kind": np.concatenate([np.zeros(len(rep), np.int64), np.ones(len(u), np.int64)]),
            "user": np.concatenate([u[rep], u]),
            "movie": np.concatenate([m[rep], m]),
            "aux": np.concatenate([minute, s]),
        }
        if held is not None:
            arrays = {c: np.concatenate([held[c], arrays[c]]) for c in arrays}
        idx = np.lexsort((arrays["kind"], arrays["time"]))
        arrays = {c: v[idx] for c, v in arrays.items()}
        cut = (
            len(idx) if hi == len(ts) else np.searchsorted(arrays["time"], ts[hi] * 1000 - lead_ms)
        )
        held = {c: v[cut:] for c, v in arrays.items()}
        yield _format_batch({c: v[:cut] for c, v in arrays.items()}, watch_prefix, rate_prefix)


def _format_batch(a: dict, watch_prefix: list[str], rate_prefix: list[str]) -> Batch:
    stamps = np.datetime_as_string(a["time"].astype("datetime64[ms]"), unit="s").tolist()
    users = a["user"].astype(str).tolist()
    values = [
        f"{t},{u},{rate_prefix[m]}{x}" if k else f"{t},{u},{watch_prefix[m]}{x}{WATCH_SUFFIX}"
        for t, u, k, m, x in zip(
            stamps, users, a["kind"].tolist(), a["movie"].tolist(), a["aux"].tolist(), strict=True
        )
    ]
    end = int(a["time"][-1]) if len(a["time"]) else 0
    return Batch(users, values, end)


def replay_batches(path: str | Path, chunk: int = 10_000) -> Iterator[Batch]:
    """A movielog file as batches of raw lines (bytes, newline removed); key = user id field.

    Lines are sent as they are, malformed ones included: judging them is the platform's job.
    A line without a numeric second field gets no key (Kafka spreads those by itself).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"movielog file {path} does not exist")
    keys: list = []
    values: list[bytes] = []
    with path.open("rb") as fh, tqdm(desc=f"read {path.name}", unit="B", unit_scale=True) as bar:
        for raw in fh:
            bar.update(len(raw))
            line = raw.rstrip(b"\n").removesuffix(b"\r")
            parts = line.split(b",", 2)
            keys.append(parts[1] if len(parts) > 1 and parts[1].isdigit() else None)
            values.append(line)
            if len(values) >= chunk:
                yield Batch(keys, values, 0)
                keys, values = [], []
    if values:
        yield Batch(keys, values, 0)
