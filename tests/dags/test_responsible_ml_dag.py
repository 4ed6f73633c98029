"""responsible_ml: DAG shape, and a real run with dag.test() on a private closed-loop state.

The simulator's tiny world asks the logging recommender for two days; its stream goes through
Kafka into an accepted snapshot, the prediction log into the lake, the users' demographics
(the metadata API's records) into a private `users` table. A real pipeline trains, gates,
refits, scores and promotes a model in a private registry. The DAG then measures fairness
offline and online, writes model cards and the Responsible ML index, and pushes its figures to
a Pushgateway of its own. The online counts are checked against a plain pandas reading of the
stream lines.
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.request
from datetime import timedelta
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from ops import services
from tests.conftest import private_schema
from tests.support.harness import free_port, wait_for

pytestmark = pytest.mark.dags

STEPS = {"fairness_offline", "fairness_online", "model_cards", "feedback_loops", "security"}
STEPS |= {"index"}
SCHEMA = ("020_snapshots.sql", "021_catalog.sql", "030_registry.sql", "085_fairness.sql")


def load():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(services.REPO / "dags" / "responsible_ml.py"))
    assert bag.import_errors == {}
    return bag.dags["responsible_ml"]


def test_responsible_ml_dag_shape():
    dag = load()
    assert dag.catchup is False and dag.timetable.delta == timedelta(days=1)
    assert "responsible-ml" in dag.tags and all(t.retries >= 1 for t in dag.tasks)
    assert {t.task_id for t in dag.tasks} == STEPS
    assert {"days", "window_minutes"} <= set(dag.params.keys())
    index = dag.get_task("index")
    assert index.upstream_task_ids == {
        "fairness_offline",
        "fairness_online",
        "model_cards",
        "feedback_loops",
        "security",
    }
    assert index.trigger_rule == "all_done" and dag.get_task("model_cards").trigger_rule == (
        "all_done"
    )
    assert dag.get_task("model_cards").upstream_task_ids == {"fairness_offline", "fairness_online"}


@pytest.fixture
def pushgateway(tmp_path):
    """A Pushgateway of the test's own on a free loopback port; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        ["/usr/bin/prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{url}/-/ready") is not None, 30, "the Pushgateway")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read().decode()
    except OSError:
        return None


def load_users(url: str, world, user_ids) -> None:
    """The metadata API's records of the stream's users, as the catalogue sync stores them."""
    rows = [world.user_json(int(u)) for u in sorted(set(user_ids))]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        for r in rows:
            cur.execute(
                "INSERT INTO users (user_id, status, age, occupation, gender) "
                "VALUES (%s, 'known', %s, %s, %s)",
                (r["user_id"], r["age"], r["occupation"], r["gender"]),
            )
    conn.close()


def publish_a_model(data: str) -> str:
    """Train, gate, refit, score and promote, as train_and_publish does; the refit's version."""
    from jobs import pipeline
    from jobs.train import registry

    versions = pipeline.train_candidates(data, ["item_knn"])
    decision = pipeline.gate(pipeline.evaluate_candidates(data, versions), min_users=5)
    refit = pipeline.refit(data, decision.candidate)
    pipeline.score_model(refit)
    registry.set_status(refit, "production", "published by the test")
    return refit


def stored(url: str) -> pd.DataFrame:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT model_version, source, window_end, measures FROM fairness_measures")
        rows = cur.fetchall()
    conn.close()
    return pd.DataFrame(rows, columns=["model_version", "source", "window_end", "measures"])


def list_lines_in(values: list[bytes], start, end) -> pd.DataFrame:
    """Served lists (status 200, non-empty) of [start, end] from the raw lines, grammar only."""
    from simulator import grammar

    parsed = [p for p in map(grammar.parse, values) if p and p["kind"] == "reco"]
    reco = pd.DataFrame(parsed)
    reco["t"] = pd.to_datetime(reco["time"], format="ISO8601")
    keep = (reco["status"] == "200") & (reco["result"] != "") & reco["t"].between(start, end)
    return reco[keep]


@pytest.mark.integration
def test_responsible_ml_on_a_closed_loop(
    kafka, kafka_topic, postgres, pushgateway, tmp_path, monkeypatch
):
    from jobs.ingest import lake, snapshot
    from jobs.online import predictions
    from jobs.train import dataset
    from simulator.world import World
    from tests.dags.test_online_evaluation_dag import closed_loop
    from tests.integration.test_ingest import produce

    logs = tmp_path / "log"
    values, _ = closed_loop(logs)
    produce(kafka_topic, kafka, values)
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PUSHGATEWAY_URL", pushgateway)
    monkeypatch.setenv("FAIRNESS_MIN_GROUP_USERS", "5")  # a tiny world has few users per group
    with private_schema(postgres, SCHEMA) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        taken = snapshot.ingest(topic=kafka_topic)
        lake.set_status(taken.snapshot_id, "accepted")
        predictions.ingest(logs)
        users = [int(v.split(b",")[1]) for v in values]
        load_users(url, World("tiny", 42), users)
        data = str(dataset.build_dataset([lake.snapshot_path(taken.snapshot_id)], window_days=None))
        model = publish_a_model(data)
        run = load().test(run_conf={"days": 1.0, "window_minutes": 60})
        states = {ti.task_id: str(ti.state).rsplit(".", 1)[-1] for ti in run.get_task_instances()}
        first = stored(url)
        load().test(run_conf={"days": 1.0, "window_minutes": 60})  # a rerun replaces its rows
        again = stored(url)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT model_card FROM model_registry WHERE model_version = %s", (model,))
            (card_path,) = cur.fetchone()
        conn.close()
    logging.getLogger("py4j").setLevel(logging.WARNING)
    assert states == dict.fromkeys(STEPS, "success")
    assert len(again) == len(first)
    # Offline: the published model, judged on its evaluation's users by group.
    offline = first[first.source == "offline"].set_index("model_version").loc[model, "measures"]
    assert set(offline["quality"]) == {"age", "gender", "history"}
    gender = offline["quality"]["gender"]
    assert set(gender["groups"]) <= {"F", "M"} and gender["ratio"] is not None
    assert offline["exposure"]["slots"] > 0 and 0 <= offline["exposure"]["long_tail_share"] <= 1
    # Online: the whole traffic's served lists equal a pandas count of the stream's list lines.
    online = first[(first.source == "online")].set_index("model_version")["measures"]
    whole = online["*"]
    start, end = (pd.Timestamp(t) for t in whole["window"])
    expected = list_lines_in(values, start, end)
    assert whole["lists"] == len(expected) > 0
    assert whole["exposure"]["slots"] == sum(len(r.split(", ")) for r in expected["result"])
    by_gender = whole["quality"]["gender"]["groups"]
    assert sum(g["units"] for g in by_gender.values()) == whole["lists"]
    assert {"m-taste", "popular-v1"} <= set(online.index)
    # The model card: in the registry, on disk, with every section.
    card = json.loads(Path(card_path).read_text())
    assert card["model_version"] == model and card["status"] == "production"
    assert {r["source"] for r in card["fairness"]} == {"offline"}  # online rows are per version
    assert card["gate"]["candidate"] == card["evaluation"]["evaluated_as"]
    assert card["training_data"]["snapshots"] == [taken.snapshot_id]
    assert "ndcg_at_20" in card["evaluation"]["overall"] and card["evaluation"]["by_group"]
    html_card = Path(card_path).with_suffix(".html").read_text()
    for heading in ("Intended use", "Training data", "Evaluation", "Fairness", "Gate decision"):
        assert f"<h2>{heading}</h2>" in html_card
    # The index lists the fairness section and the card; the figures reached the Pushgateway.
    index = (tmp_path / "var" / "reports" / "responsible" / "index.html").read_text()
    assert "fairness/report.html" in index and f"model_cards/{model}.html" in index
    assert "feedback_loops/report.html" in index  # jobs/online/feedback.py on the same stream
    pushed = _get(f"{pushgateway}/metrics")
    assert "recs_exposure_share{" in pushed and 'model_version="all"' in pushed
    assert 'job="responsible_fairness_offline"' in pushed
    print(f"\noffline {json.dumps({g: q['ratio'] for g, q in offline['quality'].items()})}")
    print(f"online lists {whole['lists']}, exposure {whole['exposure']}")
