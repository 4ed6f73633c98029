"""The Responsible ML pages: the index lists every section and model card it finds, and the
reports site links to it and serves them (ops.reports_site.route on files in a tmp var dir)."""

from __future__ import annotations

import json

import pytest

from contracts import settings
from jobs.online import responsible_site
from jobs.train import model_card
from ops import reports_site

pytestmark = pytest.mark.unit

ROW = {
    "model_version": "item_knn-1",
    "family": "item_knn",
    "hyperparameters": {"neighbours": 20},
    "status": "production",
    "status_reason": "published as reco-item_knn-1",
    "created_at": "2025-01-01",
    "dataset_path": "/lake/datasets/ds-1",
    "evaluated_as": "item_knn-0",
    "git_commit": "abc",
    "artifact_sha256": "0" * 64,
    "library_versions": {"numpy": "2"},
    "metrics": {},
}
EVALUATED = {
    "model_version": "item_knn-0",
    "metrics": {
        "ndcg_at_20": 0.4,
        "users": 100,
        "by_group": {"gender": {"F": {"users": 50, "ndcg_at_20": 0.3}}},
    },
}
FAIRNESS = [
    {
        "source": "offline",
        "quality": {
            "gender": {
                "groups": {"F": {"units": 50, "value": 0.3}, "M": {"units": 4, "value": 0.5}},
                "ratio": None,
                "limit": 0.8,
                "min_units": 30,
                "met": None,
            }
        },
        "exposure": {"long_tail_share": 0.05, "long_tail_limit": 0.1},
        "violations": ["offline long-tail share 0.050 < 0.1"],
    }
]


def test_a_card_says_what_was_measured_and_what_was_not(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    gate = {"candidate": "item_knn-0", "passed": True, "reason": "beats popularity"}
    manifest = {"snapshots": [{"snapshot_id": "s000001"}], "evaluation": {"protocol": "global"}}
    data = model_card.card(ROW, EVALUATED, manifest, gate, FAIRNESS)
    assert data["evaluation"]["overall"] == {"ndcg_at_20": 0.4, "users": 100}
    assert data["training_data"]["snapshots"] == ["s000001"]
    assert data["training_data"]["provenance"]["doc"] == "docs/provenance.md"
    assert (
        "Fairness requirement violated: offline long-tail share 0.050 < 0.1"
        in (data["limitations"])
    )
    assert any("gender groups M have fewer than 30" in x for x in data["limitations"])
    path = model_card.write(data, model_card.cards_dir())
    page = path.with_suffix(".html").read_text()
    assert "PASSED" in page and "beats popularity" in page and "not judged" in page


def test_the_index_lists_sections_and_cards_and_the_site_links_to_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    cfg = settings.load()
    assert "Responsible ML" not in reports_site.route(cfg, "/reports/").body.decode()
    model_card.write(model_card.card(ROW, EVALUATED, None, None, []), model_card.cards_dir())
    section = responsible_site.section_dir("security")  # another analysis, written its own way
    (section / "report.html").write_text("<h1>threats</h1>")
    (section / "report.json").write_text(json.dumps({"violations": ["a", "b"]}))
    responsible_site.build()
    listing = json.loads((responsible_site.root() / "index.json").read_text())
    assert [s["section"] for s in listing["sections"]] == ["security"]
    assert listing["sections"][0]["violations"] == 2
    assert [c["model_version"] for c in listing["cards"]] == ["item_knn-1"]
    assert 'href="/reports/responsible/"' in reports_site.route(cfg, "/reports/").body.decode()
    index = reports_site.route(cfg, "/reports/responsible/").body.decode()
    assert 'href="security/report.html"' in index and "model_cards/item_knn-1.html" in index
    card = reports_site.route(cfg, "/reports/responsible/model_cards/item_knn-1.html")
    assert card.content_type.startswith("text/html") and b"Model card: item_knn-1" in card.body
    assert b"no gate decision recorded" in card.body
