"""Model registry round trip in a private Postgres schema (never touches the shared rows)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime

import pytest

from jobs.train import registry
from tests.conftest import private_schema

pytestmark = pytest.mark.integration


@contextmanager
def private_registry(postgres: str):
    """DATABASE_URL whose search_path is a fresh schema holding only 030_registry.sql."""
    with private_schema(postgres, ("030_registry.sql",)) as url:
        yield url


@pytest.fixture
def registry_url(postgres):
    with private_registry(postgres) as url:
        yield url


def register_one(url, family="svd_surprise", sha="a" * 64, params=None):
    newest = datetime(1998, 3, 14, 9, 26, 53)
    params = params or {"n_factors": 8}
    version = registry.make_version(family, newest, sha, params, "ds-1")
    manifest = {
        "dataset_id": "ds-1",
        "snapshots": [{"snapshot_id": "s1", "manifest": {"offsets": {"0": [0, 9]}}}],
    }
    return registry.register(
        version,
        family,
        params,
        {"ndcg_at_20": 0.1},
        manifest,
        "/d/ds-1",
        f"/m/{version}",
        sha,
        1.5,
        newest,
        database_url=url,
    )


def test_register_get_round_trip_with_provenance(registry_url, monkeypatch):
    monkeypatch.delenv("GIT_COMMIT", raising=False)  # from the checkout, not an override
    version = register_one(registry_url)
    assert version.startswith("svd_surprise-19980314092653-")
    row = registry.get(version, registry_url)
    assert row["status"] == "candidate"
    assert row["hyperparameters"] == {"n_factors": 8}
    assert row["metrics"]["ndcg_at_20"] == 0.1
    assert row["dataset_manifest"]["snapshots"][0]["manifest"]["offsets"] == {"0": [0, 9]}
    assert row["library_versions"]["numpy"]
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", row["git_commit"]), row["git_commit"]
    assert row["artifact_sha256"] == "a" * 64
    # Same model on the same data: same version, registering again is an update, not a dupe.
    assert register_one(registry_url) == version
    assert len(registry.list_versions(database_url=registry_url)) == 1
    monkeypatch.setenv("GIT_COMMIT", "image-build-42")  # a deployed image has no .git
    register_one(registry_url)
    assert registry.get(version, registry_url)["git_commit"] == "image-build-42"


def test_promotion_keeps_exactly_one_production(registry_url):
    first = register_one(registry_url, sha="b" * 64)
    second = register_one(registry_url, sha="c" * 64)
    assert first != second
    assert registry.production(registry_url) is None
    registry.set_status(first, "production", "beat popularity", registry_url)
    registry.set_status(second, "production", "better ndcg", registry_url)
    assert registry.production(registry_url)["model_version"] == second
    old = registry.get(first, registry_url)
    assert old["status"] == "retired" and second in old["status_reason"]
    rejected = register_one(registry_url, sha="d" * 64)
    registry.set_status(rejected, "rejected", "below popularity", registry_url)
    assert [
        r["model_version"] for r in registry.list_versions("rejected", database_url=registry_url)
    ] == [rejected]


def test_bad_status_and_unknown_version_are_clear_errors(registry_url):
    with pytest.raises(ValueError, match="status must be one of"):
        registry.set_status("x", "live", database_url=registry_url)
    with pytest.raises(KeyError, match="no model version"):
        registry.set_status("nope", "production", database_url=registry_url)
    with pytest.raises(KeyError, match="no model version"):
        registry.get("nope", registry_url)


@pytest.mark.unit
def test_artifact_sha256_covers_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"123")
    first = registry.artifact_sha256(tmp_path / "a")
    (tmp_path / "a" / "x.bin").write_bytes(b"124")
    assert registry.artifact_sha256(tmp_path / "a") != first
