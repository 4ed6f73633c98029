"""jobs.pipeline's small pure helpers: hyperparameter parsing and data-keyed names."""

from __future__ import annotations

import pytest

from jobs import pipeline
from jobs.train import train

pytestmark = pytest.mark.unit


def test_hyperparameters_from_json_or_dict():
    assert train.parse_hyperparameters('{"item_knn": {"neighbours": 100}}') == {
        "item_knn": {"neighbours": 100}
    }
    assert train.parse_hyperparameters({"svd_surprise": {"n_factors": 8}}) == {
        "svd_surprise": {"n_factors": 8}
    }
    assert train.parse_hyperparameters("") == {}
    assert train.parse_hyperparameters(None) == {}


@pytest.mark.parametrize("raw", ['{"item_knn": 5}', "[1, 2]"])
def test_bad_hyperparameters_say_what_is_expected(raw):
    with pytest.raises(ValueError, match="family"):
        train.parse_hyperparameters(raw)


def test_reco_version_is_keyed_on_the_model_version():
    name = pipeline.reco_version_for("item_knn-19980101000000-abcd1234")
    assert name == "reco-item_knn-19980101000000-abcd1234"
    from jobs.publish import publish

    assert publish.check_version(name) == name


def test_run_dir_is_keyed_on_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    assert pipeline.run_dir("/x/datasets/ds-1998-abc") == tmp_path / "reports" / "ds-1998-abc"
