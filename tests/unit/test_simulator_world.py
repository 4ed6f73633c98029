"""The simulated world: deterministic catalog and population, hidden tastes, metadata API."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simulator.grammar import classify, reco_line, slug_words, unique_slugs
from simulator.metadata_api import create_app
from simulator.world import SCALES, World

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def world() -> World:
    return World("tiny", 42)


def test_same_seed_same_world_and_other_seed_differs(world):
    again, other = World("tiny", 42), World("tiny", 43)
    assert again.catalog.slugs == world.catalog.slugs
    assert np.array_equal(again.population.genre_affinity, world.population.genre_affinity)
    assert other.catalog.slugs != world.catalog.slugs


def test_sizes_follow_the_scale(world):
    scale = SCALES["tiny"]
    assert world.catalog.n_initial == scale.movies
    assert len(world.catalog) == scale.movies + scale.reserve_movies
    assert world.population.n_active == scale.users
    assert (world.population.activity[scale.users :] == 0).all()


def test_slugs_are_unique_title_plus_year(world):
    slugs = world.catalog.slugs
    assert len(set(slugs)) == len(slugs)
    for slug, year in zip(slugs, world.catalog.year.tolist(), strict=True):
        assert re.fullmatch(r"[a-z0-9]+(\+[a-z0-9]+)*\+\d{4}", slug), slug
        assert slug.endswith(f"+{year}")


def test_top_true_is_the_highest_affinity(world):
    users = np.arange(5)
    top = world.top_true(users, n=10)
    aff = world.true_affinity(users, np.arange(world.catalog.n_initial))
    for row, u in enumerate(users):
        expected = np.sort(aff[u])[::-1][:10]
        assert np.allclose(aff[u, top[row]], expected)
    assert top.max() < world.catalog.n_initial


def test_affinity_is_roughly_standardised(world):
    aff = world.true_affinity(np.arange(world.population.n_active))
    assert -0.5 < aff.mean() < 0.5
    assert 0.6 < aff.std() < 1.4


def test_slug_helpers():
    assert (
        slug_words("Fantômas - À l'ombre de la guillotine") == "fantomas+a+lombre+de+la+guillotine"
    )
    assert unique_slugs(["Heat", "Heat", "東京"], [1995, 1995, 2001], ["a", "b", "tt01"]) == [
        "heat+1995",
        "heat+2+1995",
        "tt01+2001",
    ]
    # no year in the source: still a grammar-valid id, which ingestion parses
    slugs = unique_slugs(["Cosmos", "Cosmos"], [None, None], ["a", "b"])
    assert slugs == ["cosmos+0000", "cosmos+2+0000"]
    assert all(classify(f"2025-03-14T09:26:53,12,GET /data/m/{s}/0.mpg") == "watch" for s in slugs)


def test_grammar_classifies_lines():
    assert classify("2025-03-14T09:26:53,12,GET /data/m/heat+1995/3.mpg") == "watch"
    assert classify("2025-03-14T09:26:53.123,12,GET /rate/heat+1995=5") == "rate"
    assert classify("2025-03-14T09:26:53,12,GET /rate/heat+1995=6") is None
    assert classify("2025-03-14T09:26:53,0,GET /rate/heat+1995=3") is None
    assert classify(b"2025-03-14T09:26:53,1\xff2,GET /rate/heat+1995=3") is None
    assert classify("") is None
    ok = reco_line("2025-03-14T09:26:53", 7, "h:8082", 200, ["a+1999", "b+2000"], 23)
    assert ok.endswith("status 200, result: a+1999, b+2000, 23 ms")
    failed = reco_line("2025-03-14T09:26:53", 7, "h:8082", 0, [], 800)
    assert failed.endswith("recommendation request h:8082, status 0, result: , 800 ms")
    assert classify(ok) == "reco" and classify(failed) == "reco"
    assert classify(ok + ",web") is None


def test_metadata_api(world):
    client = create_app(world).test_client()
    user = client.get("/user/1").get_json()
    assert set(user) == {"user_id", "age", "occupation", "gender"} and user["user_id"] == 1
    slug = world.catalog.slugs[0]
    movie = client.get(f"/movie/{slug}").get_json()
    assert movie["id"] == slug and movie["genres"] and {"id", "name"} <= set(movie["genres"][0])
    for key in ("tmdb_id", "imdb_id", "title", "release_date", "runtime", "popularity"):
        assert key in movie
    later = world.catalog.slugs[-1]  # arrives during a run (cold start) but is known already
    assert client.get(f"/movie/{later}").status_code == 200
    assert client.get("/user/999999").status_code == 404
    assert client.get("/user/abc").status_code == 404
    assert client.get("/movie/no+such+movie+1900").get_json()["error"]


def test_metadata_api_misbehaves_on_request(world):
    limited = create_app(world, rate_limit=2).test_client()
    codes = [limited.get("/user/1").status_code for _ in range(6)]
    assert 429 in codes and codes[0] == 200
    broken = create_app(world, error_rate=1.0).test_client()
    assert broken.get("/user/1").status_code == 500
