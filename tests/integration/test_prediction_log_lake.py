"""The real serving tier's prediction log lands in the lake: every answer once, no rejects.

gunicorn (2 workers) over a private Postgres answers known and unknown users; its workers
are stopped with SIGTERM, which leaves their active files unsealed (the lock goes with the
process), so ingestion seals them as orphans and takes them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from jobs.online import predictions
from jobs.publish import publish
from tests.support.harness import Client, PrivateDatabase, ServingProcess, seed_version, wait_for

pytestmark = pytest.mark.integration

USERS = range(1, 41)
UNKNOWN = [10**9, 10**9 + 1]
POPULAR = [f"pop{i}" for i in range(20)]


def _logged(log_dir) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in log_dir.glob("predictions-*.jsonl"))


def test_the_serving_tiers_log_lands_in_the_lake(tmp_path):
    db = PrivateDatabase().create()
    try:
        lists = seed_version(db.owner_url, "srv-v1", "model-a", USERS)
        popular = publish.publish_popular(POPULAR, datetime(2025, 1, 2, tzinfo=UTC), db.owner_url)
        server = ServingProcess(db.reader_url, extra_env={"SERVING_STATEMENT_TIMEOUT_MS": "2000"})
        server.start()
        try:
            client = Client(server.base_url)
            answers = [client.get(f"/recommend/{user}") for user in [*USERS, *UNKNOWN]]
            client.close()
            assert all(status == 200 for status, _, _ in answers)
            wait_for(lambda: _logged(server.log_dir) == len(answers), 10, "every answer logged")
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(timeout=15)
            shutil.copytree(server.log_dir, tmp_path / "log")
        finally:
            server.stop()
    finally:
        db.destroy()
    result = predictions.ingest(tmp_path / "log", tmp_path / "lake")
    assert (result.lines, result.rejects) == (len(answers), 0)
    assert list((tmp_path / "log").glob("predictions-*.jsonl")) == []
    files = [p for d in predictions.table_dirs(tmp_path / "lake") for p in d.rglob("*.parquet")]
    rows = {r["user_id"]: r for f in files for r in pq.read_table(f).to_pylist()}
    assert sorted(rows) == [*USERS, *UNKNOWN]
    for user in USERS:
        assert (rows[user]["source"], rows[user]["model_version"]) == ("model", "model-a")
        assert ",".join(rows[user]["items"]) == lists[user]
        assert rows[user]["reco_version"] == "srv-v1"
    for user in UNKNOWN:
        assert (rows[user]["source"], rows[user]["model_version"]) == ("popular", popular)
        assert rows[user]["items"] == POPULAR and rows[user]["reco_version"] is None
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert sum(f["lines"] for f in manifest["files"]) == len(answers)
