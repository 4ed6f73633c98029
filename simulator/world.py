"""The simulated world: a movie catalog and a user population with hidden tastes.

Everything is drawn with numpy from one seed, so the same (scale, seed) gives the same world
in every process (the generator, the metadata API, the tests). Tastes are linear: a user's
affinity for a movie is `user_vectors @ movie_vectors.T` (genre likes, latent factors, movie
quality), which is the ground truth a model's recommendations can be checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulator import names
from simulator.grammar import unique_slugs

N_GENRES = len(names.GENRES)
LATENT_DIM = 10
# Weights of the three parts of the affinity: genre match, latent match, movie quality.
W_GENRE, W_LATENT, W_QUALITY = 0.7, 0.6, 0.3
NEW_MOVIE_YEAR = 2025


@dataclass(frozen=True)
class Scale:
    """Size of a world: active users and movies released at the start."""

    users: int
    movies: int

    @property
    def reserve_movies(self) -> int:
        """Movies that exist (the metadata API knows them) but arrive later (cold start)."""
        return max(10, self.movies // 20)

    @property
    def reserve_users(self) -> int:
        """Fresh accounts that only appear in a rating-spam attack."""
        return max(100, self.users // 100)


SCALES = {
    "tiny": Scale(users=200, movies=100),
    "small": Scale(users=3_000, movies=1_000),
    "scenario": Scale(users=1_000_000, movies=27_000),
}


@dataclass
class Catalog:
    """All movies; indexes [0, n_initial) are released at the start, the rest arrive later."""

    slugs: list[str]
    titles: list[str]
    year: np.ndarray
    release_date: np.ndarray  # datetime64[D]
    runtime: np.ndarray
    popularity: np.ndarray
    vote_average: np.ndarray
    vote_count: np.ndarray
    tmdb_id: np.ndarray
    imdb_id: np.ndarray
    language: np.ndarray
    genres: np.ndarray  # bool (n, N_GENRES)
    quality: np.ndarray  # hidden
    latent: np.ndarray  # hidden (n, LATENT_DIM)
    n_initial: int

    def __len__(self) -> int:
        return len(self.slugs)

    @cached_property
    def index(self) -> dict[str, int]:
        """Movie slug -> catalog index."""
        return {slug: i for i, slug in enumerate(self.slugs)}


@dataclass
class Population:
    """All accounts; indexes [0, n_active) are the regular users, the rest spam reserve.

    User id = index + 1.
    """

    age: np.ndarray
    gender: np.ndarray  # 0 = M, 1 = F
    occupation: np.ndarray
    activity: np.ndarray  # mean sessions per day, long-tailed
    pop_sensitivity: np.ndarray
    genre_affinity: np.ndarray  # (n, N_GENRES)
    latent: np.ndarray  # (n, LATENT_DIM)
    n_active: int

    def __len__(self) -> int:
        return len(self.age)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream])))


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    adjectives = [w.capitalize() for w in names.ADJECTIVE_WORDS]
    nouns = [w.capitalize() for w in names.NOUN_WORDS]
    pattern = rng.choice(7, size=n, p=[0.22, 0.2, 0.14, 0.14, 0.1, 0.1, 0.1])
    a = rng.integers(0, len(adjectives), size=n)
    b = rng.integers(0, len(nouns), size=n)
    c = rng.integers(0, len(nouns), size=n)
    sequel = rng.random(n) < 0.06
    out = []
    for p, ai, bi, ci, seq in zip(
        pattern.tolist(), a.tolist(), b.tolist(), c.tolist(), sequel.tolist(), strict=True
    ):
        adj, noun, other = adjectives[ai], nouns[bi], nouns[ci]
        title = (
            f"The {adj} {noun}",
            f"{adj} {noun}",
            f"The {noun} of the {other}",
            f"{noun} and the {other}",
            f"The {noun}",
            f"{adj} {noun}s",
            f"A {noun} in {other}",
        )[p]
        out.append(f"{title} 2" if seq else title)
    return out


def build_catalog(scale: Scale, seed: int) -> Catalog:
    """The movie catalog (released + arriving later), vectorised and deterministic."""
    rng = _rng(seed, 1)
    n = scale.movies + scale.reserve_movies
    genre_p = np.array(names.GENRE_WEIGHTS, dtype=float)
    genre_p /= genre_p.sum()
    n_genres = rng.choice([1, 2, 3], size=n, p=[0.35, 0.45, 0.2])
    genres = np.zeros((n, N_GENRES), dtype=bool)
    for k in (1, 2, 3):
        rows = np.flatnonzero(n_genres >= k)
        genres[rows, rng.choice(N_GENRES, size=len(rows), p=genre_p)] = True

    quality = rng.standard_normal(n).astype(np.float32)
    latent = rng.standard_normal((n, LATENT_DIM)).astype(np.float32)
    log_pop = 1.0 + 1.3 * rng.standard_normal(n) + 0.3 * quality
    popularity = np.clip(np.exp(log_pop), 0.6, 900.0).round(3).astype(np.float32)
    vote_count = np.rint(popularity * rng.lognormal(3.0, 0.5, n)).astype(np.int32)
    vote_average = np.clip(6.2 + 0.9 * quality + 0.3 * rng.standard_normal(n), 1.0, 9.6)
    year = np.clip(2024 - np.floor(rng.exponential(15.0, n)), 1920, 2024).astype(np.int16)
    year[scale.movies :] = NEW_MOVIE_YEAR
    day_of_year = rng.integers(0, 365, n)
    release_date = (year.astype(np.int64) - 1970).astype("datetime64[Y]").astype(
        "datetime64[D]"
    ) + day_of_year.astype("timedelta64[D]")
    runtime = np.clip(rng.normal(105, 18, n), 70, 210)
    runtime = np.where(genres[:, 2] | genres[:, 7], runtime - 15, runtime).astype(np.int16)
    lang_p = np.array(names.LANGUAGE_WEIGHTS, dtype=float)
    language = rng.choice(len(names.LANGUAGES), size=n, p=lang_p / lang_p.sum()).astype(np.int8)
    tmdb_id = (rng.choice(1_500_000, size=n, replace=False) + 2).astype(np.int32)
    imdb_id = (rng.choice(9_000_000, size=n, replace=False) + 100_000).astype(np.int32)

    titles = _titles(rng, n)
    years = year.tolist()
    slugs = unique_slugs(titles, years, [f"tt{i:07d}" for i in imdb_id.tolist()])
    return Catalog(
        slugs=slugs,
        titles=titles,
        year=year,
        release_date=release_date,
        runtime=runtime,
        popularity=popularity,
        vote_average=vote_average.round(1).astype(np.float32),
        vote_count=vote_count,
        tmdb_id=tmdb_id,
        imdb_id=imdb_id,
        language=language,
        genres=genres,
        quality=quality,
        latent=latent,
        n_initial=scale.movies,
    )


def build_population(scale: Scale, seed: int) -> Population:
    """Users (plus spam-reserve accounts) with demographics and hidden tastes."""
    rng = _rng(seed, 2)
    n = scale.users + scale.reserve_users
    age = np.clip(rng.gamma(4.0, 8.0, n) + 13, 13, 90).astype(np.int8)
    gender = (rng.random(n) < 0.48).astype(np.int8)
    occ_p = np.array(names.OCCUPATION_WEIGHTS, dtype=float)
    occupation = rng.choice(len(names.OCCUPATIONS), size=n, p=occ_p / occ_p.sum()).astype(np.int8)
    # Sessions per day: long-tailed, capped so a heavy user's sessions still fit in a day.
    activity = np.minimum(0.8 * rng.lognormal(-0.5, 1.0, n), 6.0).astype(np.float32)
    activity[scale.users :] = 0.0
    pop_sensitivity = rng.uniform(0.0, 1.0, n).astype(np.float32)
    # Mild dislike of most genres, strong liking for two or three.
    genre_affinity = rng.normal(-0.3, 0.6, (n, N_GENRES)).astype(np.float32)
    rows = np.arange(n)
    for boost in (1.5, 1.5, 1.5 * (rng.random(n) < 0.5)):
        genre_affinity[rows, rng.integers(0, N_GENRES, n)] += boost
    latent = (rng.standard_normal((n, LATENT_DIM)) / np.sqrt(LATENT_DIM)).astype(np.float32)
    return Population(
        age=age,
        gender=gender,
        occupation=occupation,
        activity=activity,
        pop_sensitivity=pop_sensitivity,
        genre_affinity=genre_affinity,
        latent=latent,
        n_active=scale.users,
    )


class World:
    """Catalog + population of one (scale, seed), with the ground truth of tastes."""

    def __init__(self, scale: str | Scale = "tiny", seed: int = 42):
        self.scale_name = scale if isinstance(scale, str) else "custom"
        self.scale = SCALES[scale] if isinstance(scale, str) else scale
        self.seed = seed
        self.catalog = build_catalog(self.scale, seed)
        self.population = build_population(self.scale, seed)

    @cached_property
    def movie_vectors(self) -> np.ndarray:
        """(n_movies, dims) float32: the movie side of the affinity dot product."""
        c = self.catalog
        g = c.genres / np.sqrt(c.genres.sum(axis=1, keepdims=True))
        return np.hstack([W_GENRE * g, W_LATENT * c.latent, W_QUALITY * c.quality[:, None]]).astype(
            np.float32
        )

    def user_vectors(self, users: np.ndarray | None = None) -> np.ndarray:
        """(n, dims) float32: the user side of the affinity dot product (index, not id)."""
        p = self.population
        idx = slice(None) if users is None else np.asarray(users)
        g, q = p.genre_affinity[idx], p.latent[idx]
        return np.hstack([g, q, np.ones((len(g), 1), dtype=np.float32)])

    def true_affinity(self, users: np.ndarray, movies: np.ndarray | None = None) -> np.ndarray:
        """Hidden affinity (≈ standard normal) of user indexes × movie indexes."""
        mv = self.movie_vectors if movies is None else self.movie_vectors[np.asarray(movies)]
        return self.user_vectors(users) @ mv.T

    def top_true(self, users: np.ndarray, n: int = 20, released_only: bool = True) -> np.ndarray:
        """Indexes of each user's n truly favourite movies, best first (the ground truth)."""
        movies = np.arange(self.catalog.n_initial if released_only else len(self.catalog))
        aff = self.true_affinity(users, movies)
        n = min(n, aff.shape[1])
        part = np.argpartition(-aff, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(aff, part, axis=1), axis=1)
        return movies[np.take_along_axis(part, order, axis=1)]

    def user_json(self, user_id: int) -> dict | None:
        """Metadata API record of a user id, or None when unknown."""
        p = self.population
        if not 1 <= user_id <= len(p):
            return None
        i = user_id - 1
        return {
            "user_id": user_id,
            "age": int(p.age[i]),
            "occupation": names.OCCUPATIONS[p.occupation[i]],
            "gender": "F" if p.gender[i] else "M",
        }

    def movie_json(self, slug: str) -> dict | None:
        """Metadata API record of a movie id (slug), or None when unknown."""
        c = self.catalog
        i = c.index.get(slug)
        if i is None:
            return None
        return {
            "id": slug,
            "tmdb_id": int(c.tmdb_id[i]),
            "imdb_id": f"tt{c.imdb_id[i]:07d}",
            "title": c.titles[i],
            "original_title": c.titles[i],
            "adult": "False",
            "genres": [
                {"id": gid, "name": name}
                for (gid, name), on in zip(names.GENRES, c.genres[i], strict=True)
                if on
            ],
            "release_date": str(c.release_date[i]),
            "runtime": int(c.runtime[i]),
            "popularity": round(float(c.popularity[i]), 3),
            "vote_average": float(c.vote_average[i]),
            "vote_count": int(c.vote_count[i]),
            "original_language": names.LANGUAGES[c.language[i]],
            "status": "Released" if i < c.n_initial else "Post Production",
        }
