"""Every PromQL expression of the Grafana dashboard (ops/grafana/dashboards/recs.json) runs
against a real Prometheus fed by a short real run, and none errors or returns nothing.

The run: the monitoring stack (`ops.monitoring.start`, private RECS_VAR_DIR, free ports, 1 s
scrapes) scrapes a real gunicorn serving tier over a throwaway Postgres. The simulator's tiny
world writes a day into a fresh Kafka topic, which the pipeline ingests, validates and accepts
(jobs.pipeline, as the DAG calls it); its most-watched movies become the served lists. A
second simulated day runs in closed loop against the serving tier, is accepted too (with
drift statistics against the first), the serving tier's prediction log is ingested and online
evaluation runs (Spark). Each step pushes its batch figures through jobs.monitoring at its
own call site; the gate's figures come from the real gate on per-user scores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from contracts import settings as settings_mod
from contracts.names import ITEM_COL, USER_COL
from jobs import monitoring as pushes
from jobs import pipeline
from jobs.ingest import lake
from jobs.publish import publish
from jobs.train import gate
from ops import monitoring, services, supervise
from tests.support import metric_names
from tests.support.harness import PrivateDatabase, ServingProcess, free_port, wait_for

pytestmark = pytest.mark.integration

DASHBOARD = settings_mod.REPO_ROOT / "ops" / "grafana" / "dashboards" / "recs.json"
FAST = {
    "PROMETHEUS_SCRAPE_INTERVAL_S": "1",
    "PROMETHEUS_EVALUATION_INTERVAL_S": "1",
    "ALERTMANAGER_GROUP_WAIT_S": "1",
    "ALERTMANAGER_GROUP_INTERVAL_S": "1",
}
UNSET = ("PROMETHEUS_URL", "PUSHGATEWAY_URL", "ALERTMANAGER_URL")
FIRST_DAY, SECOND_DAY = "2025-03-01", "2025-03-02"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def query(expr: str) -> dict:
    """Prometheus' answer to an instant query (errors come back as status "error")."""
    base = settings_mod.load().prometheus_url
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422: a bad expression, with Prometheus' reason
        return json.loads(exc.read())


def backfill(topic: str, kafka: str, day: str, recommender: str | None = None) -> None:
    """One simulated day of the tiny world into `topic` (closed loop with a recommender)."""
    cmd = [
        sys.executable, "-m", "simulator", "backfill", "--scale", "tiny", "--days", "1",
        "--start", day, "--topic", topic, "--bootstrap", kafka,
    ]  # fmt: skip
    if recommender:
        cmd += ["--recommender", recommender]
    subprocess.run(cmd, check=True, capture_output=True, cwd=services.REPO, timeout=300)


def ingest_and_judge(topic: str) -> str:
    """The movielog_ingest DAG's three steps, as its tasks call them; the snapshot id."""
    snapshot = pipeline.ingest_snapshot(topic)
    assert snapshot is not None
    pipeline.validate_snapshot(snapshot)
    return pipeline.mark_snapshot(snapshot)


def serve_most_watched(snapshot_id: str, owner_url: str) -> None:
    """Publish the snapshot's 20 most-watched movies as every watcher's list, and as the
    popularity list for everyone else."""
    files = lake.table_files(lake.snapshot_path(snapshot_id), "watch")
    watch = pd.concat(pq.read_table(f, columns=[USER_COL, ITEM_COL]).to_pandas() for f in files)
    top = [movie for movie, _ in Counter(watch[ITEM_COL]).most_common(20)]
    users = sorted(set(watch[USER_COL].astype(int)))
    publish.load_recommendations([(u, top) for u in users], "reco-dash", "model-dash", owner_url)
    publish.audit("reco-dash", expected_users=len(users), url=owner_url)
    publish.publish("reco-dash", owner_url)
    publish.publish_popular(top, datetime(2025, 3, 2, tzinfo=UTC), url=owner_url)


def seal_prediction_logs(server: ServingProcess) -> None:
    """Restart the gunicorn workers (SIGHUP): the old workers' files become orphans that
    prediction ingestion seals, while the tier keeps answering."""
    files = list(server.log_dir.glob("predictions-*.jsonl"))
    pids = {int(f.stem.split("-")[1]) for f in files}
    assert pids, "the serving tier logged no predictions"
    os.kill(server.proc.pid, signal.SIGHUP)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(pid) for pid in pids), 30, "old workers gone", interval=0.2)


def push_a_gate_decision() -> None:
    """The real gate on per-user scores of 150 users (candidate better than both)."""
    rng = np.random.default_rng(1)
    users = np.arange(1, 151)

    def scores(mean: float) -> pd.DataFrame:
        noise = rng.normal(0, 0.02, len(users))
        return pd.DataFrame({gate.FOLD_COL: 0, USER_COL: users, gate.SCORE_COL: mean + noise})

    decision = gate.decide("cand", scores(0.3), "pop", scores(0.1), "prod", scores(0.29))
    assert pushes.report_gate(decision)


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """Kafka alone (not conftest's every service: this test runs a monitoring stack of its own,
    and the shared one's default Alertmanager port may be taken)."""
    started = services.up(("kafka",), quiet=True)
    yield settings_mod.load().kafka_bootstrap_servers
    if started and os.environ.get("RECS_KEEP_SERVICES") != "1":
        services.down(started, quiet=True)


@pytest.fixture(scope="module")
def fed_prometheus(kafka):
    """The stack running, fed by the run of the module docstring."""
    var = Path(tempfile.mkdtemp(prefix="recs-dashboard-"))
    db = PrivateDatabase().create()
    server = ServingProcess(db.reader_url, extra_env={"SERVING_STATEMENT_TIMEOUT_MS": "2000"})
    knobs = {
        "RECS_VAR_DIR": str(var),
        "DATABASE_URL": db.owner_url,
        "SERVING_PORT": str(server.port),
        "PROMETHEUS_PORT": str(free_port()),
        "PUSHGATEWAY_PORT": str(free_port()),
        "ALERTMANAGER_PORT": str(free_port()),
        "ALERT_RECEIVER_PORT": str(free_port()),
        **FAST,
    }
    topic = f"dash-{os.urandom(6).hex()}"
    services.create_topic(kafka, topic, partitions=3)
    with pytest.MonkeyPatch.context() as patch:
        for name in UNSET:
            patch.delenv(name, raising=False)
        for name, value in knobs.items():
            patch.setenv(name, value)
        try:
            backfill(topic, kafka, FIRST_DAY)
            first = ingest_and_judge(topic)
            serve_most_watched(first, db.owner_url)
            server.start()
            assert monitoring.start(quiet=True)
            pushes.report_model(db.owner_url)
            backfill(topic, kafka, SECOND_DAY, recommender=server.base_url)
            ingest_and_judge(topic)
            seal_prediction_logs(server)
            assert pipeline.ingest_predictions(str(server.log_dir))
            assert pipeline.evaluate_online(hours=24)
            push_a_gate_decision()
            yield
        finally:
            monitoring.stop(quiet=True)
            supervise.shutdown()
            server.stop()
            db.destroy()
            shutil.rmtree(var, ignore_errors=True)
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": kafka})
            for future in admin.delete_topics([topic], operation_timeout=10).values():
                future.result()


def test_the_dashboard_reads_only_metrics_the_code_exports_or_pushes():
    exported = metric_names.exported()
    for title, expr in dashboard_queries():
        assert metric_names.used(expr) <= exported, f"{title}: {expr}"


def test_the_dashboard_uses_the_provisioned_datasource():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}


def test_every_dashboard_query_answers_on_a_real_run(fed_prometheus):
    def failures() -> list[str]:
        bad = []
        for title, expr in dashboard_queries():
            answer = query(expr)
            if answer["status"] != "success":
                bad.append(f"{title}: {expr} -> {answer.get('error')}")
            elif not answer["data"]["result"]:
                bad.append(f"{title}: {expr} -> nothing")
        return bad

    # Rates need two scrapes and pushed groups one scrape of the gateway: poll, then say which.
    try:
        wait_for(lambda: not failures(), 60, "every dashboard query answered", interval=1)
    except services.ServiceError:
        pytest.fail("\n".join(failures()))
