"""jobs.publish.score on real Spark and Postgres: every known user gets k distinct unseen movies,
the lists equal the model's own recommend(), and publishing is write-audit-publish."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from contracts.names import ITEM_COL, USER_COL
from jobs.publish import publish, score
from tests.conftest import platform_state, private_schema
from tests.support.topk_reference import naive_top_k

pytestmark = pytest.mark.integration

N_USERS, N_ITEMS, RANK = 240, 90, 6


def random_factor_model(seed: int = 0, scale: float = 1.0):
    """A SurpriseSVD-shaped model with random factors and random histories (no training)."""
    from jobs.models.svd_surprise import SurpriseSVD

    rng = np.random.default_rng(seed)
    model = SurpriseSVD()
    model.user_ids = np.arange(1, N_USERS + 1, dtype=np.int64) * 7
    model.item_ids = np.array([f"movie+{i:03d}+1999" for i in range(N_ITEMS)])
    model.user_factors = (rng.standard_normal((N_USERS, RANK)) * scale).astype(np.float32)
    model.item_factors = rng.standard_normal((N_ITEMS, RANK)).astype(np.float32)
    model.user_bias = rng.standard_normal(N_USERS)
    model.item_bias = rng.standard_normal(N_ITEMS) * 0.3
    # Histories of 0..N_ITEMS-20 items: the heaviest user has exactly 20 unseen movies left.
    sizes = rng.integers(0, N_ITEMS - 20 + 1, N_USERS)
    sizes[0] = N_ITEMS - 20
    rows = np.repeat(np.arange(N_USERS), sizes)
    cols = np.concatenate([rng.choice(N_ITEMS, s, replace=False) for s in sizes])
    model.seen = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(N_USERS, N_ITEMS))
    return model


def read_scored(path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(USER_COL).reset_index(drop=True)


@pytest.fixture(scope="module")
def factor_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "svd"
    random_factor_model().save(path)
    return path


def test_factor_scoring_matches_recommend_and_excludes_seen(spark, factor_model_dir, tmp_path):
    model = score.load_model(factor_model_dir)
    result = score.score(factor_model_dir, tmp_path / "scored", users_per_task=70, spark=spark)

    checks = score.audit(result.path, expected_users=N_USERS, spark=spark)
    scored = read_scored(result.path)

    assert result.kind == "factor" and result.n_users == N_USERS
    assert checks["users"] == N_USERS and checks["already_seen_items"] == 0
    assert scored[USER_COL].tolist() == sorted(model.user_ids.tolist())
    expected = (
        model.recommend(model.user_ids, k=20)
        .groupby(USER_COL)[ITEM_COL]
        .agg(list)
        .reindex(scored[USER_COL])
    )
    assert [list(x) for x in scored["items"]] == expected.tolist()
    for row, items in zip(model.seen, scored["items"], strict=True):
        assert len(set(items)) == 20
        assert not set(model.item_ids[row.indices]) & set(items)


def test_block_path_for_non_factor_models(spark, tmp_path):
    from jobs.models.popularity import PopularityRecommender

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            USER_COL: rng.integers(1, 60, 3000),
            ITEM_COL: [f"m{i}" for i in rng.zipf(1.3, 3000) % 80],
            "event_time": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 86400 * 40, 3000), unit="s"),
        }
    )
    model = PopularityRecommender(window_days=10).fit(frame)
    model.save(tmp_path / "pop")

    result = score.score(tmp_path / "pop", tmp_path / "scored", users_per_task=25, spark=spark)
    score.audit(result.path, expected_users=len(model.user_ids), spark=spark)
    scored = read_scored(result.path)

    assert result.kind == "block"
    # Reference: the family's own scores, seen removed, stable full sort (ties by item index).
    dense = model.score_block(np.arange(len(model.user_ids))).astype(np.float64)
    dense[model.seen.nonzero()] = -np.inf
    expected = model.item_ids[naive_top_k(dense, 20)]
    order = np.searchsorted(model.user_ids, scored[USER_COL])
    assert [list(x) for x in scored["items"]] == [list(x) for x in expected[order]]


def test_audit_refuses_seen_short_and_duplicate_rows(spark, tmp_path):
    good = [f"m{i}" for i in range(20)]
    rows = pd.DataFrame(
        {
            USER_COL: [1, 2, 3, 3],
            "items": [good, good[:19] + ["m0"], good, good],
            "n_items": [20, 20, 20, 20],
            "n_seen": [1, 0, 0, 0],
        }
    )
    spark.createDataFrame(rows, score.OUTPUT_SCHEMA).write.parquet(str(tmp_path / "bad"))
    with pytest.raises(score.ScoringError) as err:
        score.audit(tmp_path / "bad", expected_users=3, spark=spark)
    message = str(err.value)
    assert "1 duplicate user rows" in message
    assert "1 rows without k distinct items" in message
    assert "1 already seen items" in message


def served(url: str) -> tuple[str | None, str | None]:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT reco_version, previous_reco_version FROM serving_pointer")
        row = cur.fetchone()
    conn.close()
    return row


@pytest.fixture
def private_publish(postgres):
    """A private schema with its own serving_pointer, partitions and registry, dropped after
    the test; the platform's public.serving_pointer and versions are checked untouched."""
    before = platform_state(postgres)
    with private_schema(postgres) as url:
        yield url
    assert platform_state(postgres) == before


def test_publish_crash_rollback(spark, private_publish, factor_model_dir, tmp_path, monkeypatch):
    url = private_publish
    model = score.load_model(factor_model_dir)
    result = score.score(factor_model_dir, tmp_path / "scored", spark=spark)
    score.audit(result.path, expected_users=N_USERS, spark=spark)
    tag = uuid.uuid4().hex[:8]
    first, second, crashed = f"test-score-{tag}-a", f"test-score-{tag}-b", f"test-score-{tag}-c"
    catalog = model.item_ids.tolist()

    publish.load_and_publish(result.path, first, "m-a", N_USERS, catalog, url=url)
    assert served(url) == (first, None)
    publish.load_and_publish(result.path, second, "m-b", N_USERS, catalog, url=url)
    assert served(url) == (second, first)

    # A crash in the middle of the COPY stream: the served version must not move.
    original = score.read_rows

    def exploding_rows(path, batch_rows=65_536):
        for i, row in enumerate(original(path, batch_rows)):
            if i == N_USERS // 2:
                raise OSError("disk gone mid-load")
            yield row

    monkeypatch.setattr(score, "read_rows", exploding_rows)
    import psycopg2

    # psycopg2 reports an exception raised inside the COPY stream as QueryCanceled.
    with pytest.raises((OSError, psycopg2.Error), match="disk gone"):
        publish.load_and_publish(result.path, crashed, "m-c", N_USERS, catalog, url=url)
    assert served(url) == (second, first)
    versions = {v["reco_version"]: v["status"] for v in publish.status(url=url)["versions"]}
    assert versions == {first: "published", second: "published", crashed: "failed"}

    new, old = publish.rollback(url=url)
    assert (new, old) == (first, second)
    assert served(url) == (first, second)

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM recommendations WHERE reco_version = %s",
            (first,),
        )
        assert cur.fetchone() == (N_USERS, N_USERS)
        cur.execute("SELECT to_regclass(%s)", (publish.table_name(crashed),))
        assert cur.fetchone() == (None,)
    conn.close()
