"""online_evaluation: DAG shape, and a real run with dag.test() on a closed-loop lake.

The simulator's tiny world asks a recommender (tests/support/logging_recommender.py) that
logs every answer through the real PredictionLog; its stream goes through Kafka into a
snapshot; the DAG ingests the prediction log and writes online_metrics into a private schema.
The hourly totals are checked against a plain pandas reading of the stream lines.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pandas as pd
import pytest

from jobs import pipeline
from ops import services
from tests.conftest import private_schema

pytestmark = pytest.mark.dags

START = "2025-03-14"
STEPS = ["ingest_predictions", "evaluate", "flag_accuracy_drop", "status_page"]


def load():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(services.REPO / "dags" / "online_evaluation.py"))
    assert bag.import_errors == {}
    return bag.dags["online_evaluation"]


def test_online_evaluation_dag_shape():
    dag = load()
    assert dag.catchup is False and dag.timetable.delta == timedelta(hours=1)
    assert "monitoring" in dag.tags and all(t.retries >= 1 for t in dag.tasks)
    assert not dag.is_paused_upon_creation  # make run's live loop has it scheduled hourly
    flag = dag.get_task("flag_accuracy_drop")
    assert [asset.name for asset in flag.outlets] == [pipeline.ACCURACY_DROP_ASSET]
    assert {"hours", "window_minutes", "log_dir"} <= set(dag.params.keys())
    order = [t.task_id for t in dag.topological_sort()]
    assert order[:2] == STEPS[:2] and set(order) == set(STEPS)
    assert dag.get_task("status_page").upstream_task_ids == {"evaluate"}
    assert dag.get_task("status_page").trigger_rule == "all_done"


def closed_loop(log_dir) -> tuple[list[bytes], int]:
    """Two simulated days asking the logging recommender; (stream lines, answers logged)."""
    from simulator.generator import Simulation, collect
    from simulator.loop import RecommenderClient
    from simulator.world import World
    from tests.support.logging_recommender import LoggingRecommender

    world = World("tiny", 42)
    with LoggingRecommender(world, log_dir) as recommender:
        client = RecommenderClient(recommender.url, workers=4)
        _, values = collect(Simulation(world, START, recommender=client), days=2)
        client.close()
    return [v.encode() if isinstance(v, str) else v for v in values], recommender.answered


def reference_totals(values: list[bytes], window_minutes: int = 60) -> pd.DataFrame:
    """Per hour, from the raw lines with the grammar only: requests, ok, lists, hits."""
    from simulator import grammar

    parsed = [p for p in map(grammar.parse, values) if p]
    reco = pd.DataFrame([p for p in parsed if p["kind"] == "reco"])
    watch = pd.DataFrame([p for p in parsed if p["kind"] == "watch"])
    reco["t"] = pd.to_datetime(reco["time"], format="ISO8601")
    watch["t"] = pd.to_datetime(watch["time"], format="ISO8601")
    seen = watch.groupby(["user", "movie"])["t"].apply(list).to_dict()
    follow = pd.Timedelta(minutes=window_minutes)

    def hit(row) -> float:
        if row["status"] != "200" or not row["result"]:
            return float("nan")
        listed = row["result"].split(", ")
        times = (t for m in listed for t in seen.get((row["user"], m), ()))
        return float(any(row["t"] <= t <= row["t"] + follow for t in times))

    reco["hit"] = reco.apply(hit, axis=1)
    reco["ok"] = (reco["status"] == "200") & (reco["ms"].astype(int) <= 800)
    reco["hour"] = reco["t"].dt.floor("h")
    return reco.groupby("hour").agg(
        requests=("ok", "size"), ok=("ok", "sum"), lists=("hit", "count"), hits=("hit", "sum")
    )


def metrics_rows(url: str) -> pd.DataFrame:
    from contracts import db

    engine = db.engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql("SELECT * FROM online_metrics ORDER BY 1, 2, 3", conn)
    finally:
        engine.dispose()


@pytest.mark.integration
def test_closed_loop_lake_to_online_metrics(kafka, kafka_topic, postgres, tmp_path, monkeypatch):
    from jobs.ingest import lake, snapshot
    from jobs.online import predictions
    from tests.integration.test_ingest import produce
    from tests.support.logging_recommender import MODEL, POPULAR

    logs = tmp_path / "log"
    values, answered = closed_loop(logs)
    produce(kafka_topic, kafka, values)
    with private_schema(postgres) as url:  # every table: the status page reads the registry too
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
        taken = snapshot.ingest(topic=kafka_topic)
        lake.set_status(taken.snapshot_id, "accepted")
        conf = {"log_dir": str(logs), "hours": 72, "window_minutes": 60}
        run = load().test(run_conf=conf)
        assert {
            ti.task_id: str(ti.state).rsplit(".", 1)[-1] for ti in run.get_task_instances()
        } == {**dict.fromkeys(STEPS, "success"), "flag_accuracy_drop": "skipped"}
        first = metrics_rows(url)
        run = load().test(run_conf=conf)  # a rerun: no new file, the same rows
        again = metrics_rows(url)
    # The task's Spark session lives until exit, when py4j logs after pytest closed its streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # The prediction log: every answer in the lake once, the raw files gone.
    assert predictions.sealed_files(logs) == []
    (batch,) = predictions.completed_batches()
    assert batch["row_counts"] == {"predictions": answered, "rejects": 0}
    numbers = [c for c in first.columns if c != "computed_at"]
    pd.testing.assert_frame_equal(first[numbers], again[numbers])
    # Hourly totals equal a plain pandas reading of the stream.
    totals = first[(first.model_version == "*") & (first.variant == "*")].set_index("hour")
    expected = reference_totals(values)
    assert totals["requests"].tolist() == expected["requests"].tolist()
    assert totals["ok_requests"].tolist() == expected["ok"].tolist()
    assert totals["lists"].tolist() == expected["lists"].tolist()
    assert totals["hits"].tolist() == expected["hits"].astype(int).tolist()
    # Every answered line was attributed; a fifth of the users get the popularity list.
    versions = first[(first.model_version != "*")].groupby("model_version")[["lists", "hits"]].sum()
    assert set(versions.index) <= {MODEL, POPULAR, ""}
    share = totals["personalised"].sum() / totals["answers"].sum()
    assert 0.7 < share < 0.9
    # Both versions served lists and were measured; users who always get a 500 are nobody's.
    accuracy = versions["hits"] / versions["lists"]
    assert versions.loc[[MODEL, POPULAR], "lists"].min() > 20
    assert 0 < accuracy[POPULAR] <= 1 and 0 < accuracy[MODEL] <= 1
    assert versions.loc["", "lists"] == 0  # a 500 carries no list
    print(
        f"\nonline accuracy {accuracy.round(3).to_dict()} over {versions['lists'].to_dict()} lists"
    )
