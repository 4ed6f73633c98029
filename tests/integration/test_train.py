"""End to end on a planted-taste lake: dataset -> train every family -> evaluate -> registry ->
report. The best model must beat popularity on NDCG@20 and recover the hidden tastes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jobs.models import families
from jobs.train import dataset, registry, report, train
from tests.integration.test_dataset import GENRES, planted_world, write_snapshot
from tests.integration.test_registry import private_registry

pytestmark = pytest.mark.integration

PARAMS = {
    "popularity": {"window_days": 30},
    "svd_surprise": {"n_factors": 8, "n_epochs": 20},
    "als_spark": {"rank": 8, "max_iter": 8, "implicit_prefs": True, "alpha": 5.0, "blocks": 2},
    "item_knn": {"neighbours": 20, "shrink": 5.0},
    "ease": {"reg": 50.0},
    "hybrid": {"neighbours": 20, "shrink": 5.0},
}


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    watch, rate, tastes, genres = planted_world(users=200, per_user=15, seed=11)
    root = tmp_path_factory.mktemp("lake")
    snap = write_snapshot(root, "s1", watch, rate)
    path = dataset.build_dataset([snap], root / "ds", window_days=None, spark=spark)
    return path, tastes, genres


@pytest.fixture(scope="module")
def trained(world, postgres, tmp_path_factory):
    """Every family trained once on the world, registered in a private registry schema."""
    path, _, _ = world
    models = tmp_path_factory.mktemp("models")
    with private_registry(postgres) as url:
        versions = {
            family: train.train(path, family, params, database_url=url, models_dir=models)
            for family, params in PARAMS.items()
        }
        yield versions, url


def test_best_model_beats_popularity_and_recovers_tastes(world, trained):
    path, tastes, genres = world
    versions, url = trained
    rows = {f: registry.get(v, url) for f, v in versions.items()}
    ndcg = {f: r["metrics"]["ndcg_at_20"] for f, r in rows.items()}
    best = max((f for f in ndcg if f != "popularity"), key=ndcg.get)
    assert ndcg[best] > ndcg["popularity"], ndcg

    model = families.load(best, rows[best]["artifact_path"])
    _, test = dataset.load_split(path)
    users = np.unique(test.user_id)
    recs = model.recommend(users, k=10)
    share_own = recs.movie_id.map(genres).to_numpy() == tastes.reindex(recs.user_id).to_numpy()
    # Chance: a random unseen movie is of the user's genre about 1 time in GENRES.
    assert share_own.mean() > 2.0 / GENRES, (best, share_own.mean())


def test_registry_rows_carry_provenance_and_measurements(world, trained):
    path, _, _ = world
    versions, url = trained
    for family, version in versions.items():
        row = registry.get(version, url)
        assert version.startswith(f"{family}-19980")
        assert row["artifact_sha256"] == registry.artifact_sha256(row["artifact_path"])
        assert row["dataset_manifest"]["snapshots"][0]["snapshot_id"] == "s1"
        assert row["dataset_path"] == str(path)
        m = row["metrics"]
        assert m["fit_seconds"] > 0 and m["recommend_users_per_second"] > 0
        assert m["disk_bytes"] > 0 and m["memory_bytes"] > 0
        assert m["by_group"]["history"] and set(m["by_group"]["history"]) <= {
            "new",
            "medium",
            "heavy",
        }
    assert "rmse" in registry.get(versions["svd_surprise"], url)["metrics"]
    assert "rmse" not in registry.get(versions["item_knn"], url)["metrics"]


def test_report_has_html_pngs_and_json_twin(trained, tmp_path):
    versions, url = trained
    out = report.build_report(
        "run-test", [registry.get(v, url) for v in versions.values()], out_dir=tmp_path / "report"
    )
    data = json.loads((out / "report.json").read_text())
    assert data["baseline"] == versions["popularity"]
    assert len(data["models"]) == len(versions)
    assert "fit_seconds" in data["definitions"]
    page = (out / "report.html").read_text()
    for name in data["charts"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
        assert name in page


@pytest.mark.unit
def test_timeline_of_test_split_is_after_train(world):
    path, _, _ = world
    train_df, test_df = dataset.load_split(path)
    joined = pd.concat(
        [
            train_df.groupby("user_id").event_time.max().rename("a"),
            test_df.groupby("user_id").event_time.min().rename("b"),
        ],
        axis=1,
    ).dropna()
    assert (joined.a <= joined.b).all()
