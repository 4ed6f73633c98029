"""The spam defence against the simulator's ledger, on real Kafka and Spark: the tiny world's
stream with the default rating-spam attack (30-80 fresh accounts rate one obscure movie 5
stars) goes through Kafka into a private lake; the detector must find the ledger's accounts
with precision and recall >= 0.8, and with its exclusion the attacked movies must be where a
clean run of the same seed puts them, in the popularity list unknown users are served and in
the item_knn lists of every regular user, while without it the attack visibly moves them."""

from __future__ import annotations

import pytest

from benchmarks import spam_defence as sd
from jobs import pipeline
from jobs.ingest import lake, snapshot
from jobs.online import provenance
from jobs.train import dataset, detect
from simulator.faults import read_ledger
from simulator.generator import SPAM_ACCOUNTS
from tests.conftest import fresh_topic
from tests.integration.test_ingest import backfill, private_state

pytestmark = [pytest.mark.integration]

DAYS, SPAM_RATE = 4, 0.004  # seed 42: two attacks in 384 windows
MODELS = {name: sd.MODELS[name] for name in ("popularity", "item_knn")}


@pytest.fixture(scope="module")
def measured(kafka, spark, tmp_path_factory):
    work = tmp_path_factory.mktemp("spam")
    with fresh_topic(kafka) as topic:
        run = sd.simulate_into_lake(kafka, topic, work / "lake", days=DAYS, spam_rate=SPAM_RATE)
    return run, sd.measure(run, work, spark, MODELS)


def test_clean_run_is_the_attacked_stream_without_the_spam_lines():
    assert sd.clean_is_unattacked("tiny", DAYS, 42, SPAM_RATE, SPAM_ACCOUNTS)


def test_detector_finds_the_ledger_accounts(measured):
    run, result = measured
    scores = result["detection"]
    print(f"spam detection: {scores}")
    assert len(run.attacked) >= 1 and scores["spam"] >= 30
    assert scores["precision"] >= 0.8 and scores["recall"] >= 0.8, scores
    assert set(result["detected_movies"]) == set(run.attacked)


def test_exclusion_is_recorded_in_the_dataset_manifest(measured):
    _, result = measured
    exclusion = result["exclusion"]
    assert exclusion["detector_version"] == "spam-burst-1"
    assert exclusion["flagged"] == result["detection"]["flagged"]
    assert exclusion["accounts_file"].endswith("accounts.parquet")


def test_defended_lists_put_attacked_movies_where_a_clean_run_does(measured):
    run, result = measured
    places = result["places"]
    for key, clean in places["clean"].items():
        assert places["defended"][key] == clean, (key, places["defended"][key], clean)
    # ...and the attack did move them: each is in the undefended popular list's top K.
    for movie in run.attacked:
        assert places["undefended"][f"popularity/{movie}"]["rank"] <= 20, movie
        clean_rank = places["clean"][f"popularity/{movie}"]["rank"]
        assert clean_rank is None or clean_rank > 20, (movie, clean_rank)


def test_pipeline_steps_detect_exclude_and_record_it(kafka, postgres, spark, tmp_path):
    """As train_and_publish runs them: detect_spam over the accepted snapshots (registered in a
    private schema), then build_dataset without the flagged accounts; provenance shows it."""
    ledger = tmp_path / "ledger.jsonl"
    with (
        fresh_topic(kafka) as topic,
        pytest.MonkeyPatch.context() as patch,
        private_state(postgres, tmp_path / "var", patch) as url,
    ):
        backfill(topic, kafka, "rating_spam=0.01", ledger=ledger, days=2)
        taken = snapshot.ingest(topic=topic)
        lake.set_status(taken.manifest["snapshot_id"], "accepted", database_url=url)
        detection = pipeline.detect_spam()
        path = pipeline.build_dataset(None, None, detection)
    truth = {r["user_id"] for r in read_ledger(ledger)[0] if r["kind"] == "rating_spam"}
    assert truth and set(detect.flagged_users(detection)) == truth
    assert not truth & set(dataset.load_interactions(path).user_id)
    manifest = dataset.read_manifest(path)
    assert manifest["exclusion"]["flagged"] == len(truth)
    data = provenance.data_part({"dataset_manifest": manifest, "dataset_path": path}, [])
    text = "\n".join(provenance._data_lines(data))
    assert f"spam exclusion: {len(truth)} accounts flagged by spam-burst-1" in text
