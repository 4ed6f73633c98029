"""Provenance of served answers, on one real run: the tiny simulated world's week through Kafka
-> ingest -> validate -> dataset -> train -> gate -> refit -> score -> publish (private
Postgres cluster and lake) -> real gunicorn -> GET /recommend with chosen request ids -> the
prediction log into the lake -> `python -m jobs.online.provenance`.

Every field is checked against what the run itself wrote: the lake's snapshot manifest (ids,
Kafka offsets, which equal the topic's watermarks, files and SHA-256), the artifact on disk,
git (HEAD, +dirty when tracked files differ), the registry and the serving pointer. A byte
appended to a snapshot file then shows up as `changed` with exit status 1; an unknown
request id exits 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg2
import pyarrow
import pytest

from jobs import pipeline
from jobs.ingest import lake, validate
from jobs.ingest import snapshot as ingest
from jobs.online import predictions
from jobs.train import registry
from ops import services
from tests.conftest import fresh_topic
from tests.integration.test_ingest import backfill
from tests.support.harness import PrivateDatabase, ServingProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KNOWN_REQUEST, UNKNOWN_REQUEST = "prov-known-1", "prov-unknown-1"
UNKNOWN_USER = 10**9
FAMILIES = ["item_knn"]
PARAMS = '{"item_knn": {"neighbours": 20}}'


def git(*args: str) -> str:
    argv = ["git", *args]  # git from PATH, as contracts.provenance runs it
    return subprocess.run(
        argv, cwd=services.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def git_state() -> tuple[str, bool]:
    """(HEAD, whether tracked files have changes), asked of git directly."""
    return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))


def recordable(before: tuple[str, bool], after: tuple[str, bool]) -> set[str]:
    """Every value the +dirty rule allows for a run between two git states: others commit in
    the same checkout meanwhile, so any commit from `before` to `after` may be the recorded one."""
    commits = {before[0], *git("rev-list", f"{before[0]}..{after[0]}").split()}
    return {c + ("+dirty" if dirty else "") for c in commits for dirty in {before[1], after[1]}}


def get(base_url: str, path: str, request_id: str) -> int:
    request = urllib.request.Request(base_url + path, headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.status


def ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def watermarks(kafka: str, topic: str) -> dict[str, list[int]]:
    """[low, high) offsets of each partition, as the broker reports them."""
    from contracts.kafka import watermarks as broker_watermarks

    return {str(p): list(marks) for p, marks in broker_watermarks(kafka, topic).items()}


def serve_and_log(db: PrivateDatabase, known_user: int, log_copy: Path) -> None:
    """Real gunicorn answers one known and one unknown user; its log is copied out."""
    server = ServingProcess(db.reader_url).start()
    try:
        wait_for(lambda: ready(server.base_url), 30, "serving ready")
        assert get(server.base_url, f"/recommend/{known_user}", KNOWN_REQUEST) == 200
        assert get(server.base_url, f"/recommend/{UNKNOWN_USER}", UNKNOWN_REQUEST) == 200

        def logged() -> int:
            files = server.log_dir.glob("predictions-*.jsonl")
            return sum(len(p.read_bytes().splitlines()) for p in files)

        wait_for(lambda: logged() == 2, 10, "both answers logged")
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=15)
        shutil.copytree(server.log_dir, log_copy)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def run(kafka, spark, tmp_path_factory):
    """The whole run in private state; what it wrote, for the tests to compare against."""
    tmp = tmp_path_factory.mktemp("provenance")
    db = PrivateDatabase().create()
    before = git_state()
    try:
        with fresh_topic(kafka) as topic, pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", db.owner_url)
            patch.setenv("RECS_VAR_DIR", str(tmp / "var"))
            patch.setenv("KAFKA_TOPIC", topic)
            backfill(topic, kafka, days=7)
            snap = ingest.ingest(topic=topic)
            validate.validate_snapshot(snap.snapshot_id)
            validate.mark(snap.snapshot_id)
            summary = pipeline.run_all(FAMILIES, PARAMS)
            offsets = watermarks(kafka, topic)
            prod = registry.production(db.owner_url)
            known_user = _a_known_user(db.owner_url, summary["reco_version"])
            serve_and_log(db, known_user, tmp / "log")
            predictions.ingest(tmp / "log")
            yield {
                "db": db.owner_url,
                "env": {**os.environ},
                "snapshot": snap,
                "watermarks": offsets,
                "summary": summary,
                "production": prod,
                "known_user": known_user,
                "commits": recordable(before, git_state()),
                "tmp": tmp,
            }
    finally:
        db.destroy()


def _a_known_user(url: str, reco_version: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT min(user_id) FROM recommendations WHERE reco_version = %s", (reco_version,)
        )
        (user,) = cur.fetchone()
    conn.close()
    return user


def provenance(run: dict, *args: str) -> subprocess.CompletedProcess:
    """`python -m jobs.online.provenance ARGS` against the run's private database and lake."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.online.provenance", *args],
        cwd=services.REPO,
        env=run["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def report(run: dict, *args: str) -> dict:
    done = provenance(run, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_data(run: dict, data: dict) -> None:
    """Snapshot ids, Kafka offsets and files (with hashes) equal what ingest wrote."""
    snap = run["snapshot"]
    manifest = lake.read_manifest(snap.path)  # the lake's own manifest, read from disk
    assert [s["snapshot_id"] for s in data["snapshots"]] == [snap.snapshot_id]
    (found,) = data["snapshots"]
    assert found["status"] == "accepted" and found["path"] == str(snap.path)
    assert found["offsets"] == manifest["offsets"] == run["watermarks"]
    assert found["registered_offsets"] == manifest["offsets"]
    trained = {f["path"]: f for f in manifest["files"] if f["table"] in ("watch", "rate")}
    assert {f["table"] for f in trained.values()} == {"watch", "rate"}
    assert {f["path"] for f in found["files"]} == set(trained)
    for file in found["files"]:
        on_disk = sha256(snap.path / file["path"])
        assert file["sha256"] == trained[file["path"]]["sha256"] == on_disk
        assert (file["sha256_now"], file["state"]) == (on_disk, "matches")
        assert file["rows"] == trained[file["path"]]["rows"]


def check_code(run: dict, code: dict) -> None:
    recorded = code["commit"] + ("+dirty" if code["dirty"] else "")
    assert recorded in run["commits"], (code, run["commits"])


def test_a_model_answer_leads_to_its_model_code_and_snapshot_files(run):
    got = report(run, "--request", KNOWN_REQUEST)
    prod, reco = run["production"], run["summary"]["reco_version"]
    assert got["request"]["user_id"] == run["known_user"]
    assert got["request"]["matching_rows"] == 1
    served = got["served"]
    assert (served["source"], served["fallback_reason"], served["variant"]) == ("model", None, None)
    assert (served["reco_version"], served["reco_status"]) == (reco, "published")
    assert served["model_version"] == prod["model_version"]
    assert served["stored_list"] == "matches" and got["popular"] is None

    model = got["model"]
    assert model["model_version"] == prod["model_version"] == run["summary"]["refit"]
    assert model["hyperparameters"] == prod["hyperparameters"]
    assert model["library_versions"] == prod["library_versions"]
    assert model["library_versions"]["pyarrow"] == pyarrow.__version__
    check_code(run, model["code"])
    artifact = model["artifact"]
    assert artifact["sha256"] == registry.artifact_sha256(prod["artifact_path"])
    assert (artifact["sha256_now"], artifact["state"]) == (artifact["sha256"], "matches")
    # A refit: the evaluated version it reproduces, trained on the training part only.
    assert model["evaluated_as"] == prod["evaluated_as"] == got["evaluated"]["model_version"]
    assert model["trained_on"]["part"] == "all interactions in the window"
    assert got["evaluated"]["trained_on"]["rows"] < model["trained_on"]["rows"]

    assert got["data"]["dataset_path"] == run["summary"]["dataset"]
    check_data(run, got["data"])
    assert got["all_hashes_match"] and got["hashes_checked"] == 1 + len(
        got["data"]["snapshots"][0]["files"]
    )


def test_a_popularity_answer_names_the_lists_provenance(run):
    got = report(run, "--request", UNKNOWN_REQUEST)
    served, popular = got["served"], got["popular"]
    assert (served["source"], served["reco_version"]) == ("popular", None)
    assert served["model_version"] == run["summary"]["popular_version"]
    assert popular["popular_version"] == run["summary"]["popular_version"]
    assert served["stored_list"] == "matches"
    scores = json.loads(
        (pipeline.run_dir(run["summary"]["dataset"]) / pipeline.SCORES_FILE).read_text()
    )
    assert popular["baseline_version"] == scores["popularity"] == got["model"]["model_version"]
    assert popular["dataset_path"] == run["summary"]["dataset"]
    check_code(run, popular["code"])
    check_data(run, got["data"])
    assert got["all_hashes_match"]


def test_user_and_time_find_the_same_answer_and_text_says_so(run):
    by_id = report(run, "--request", KNOWN_REQUEST)
    when = by_id["request"]["event_time"]
    by_time = report(run, "--user", str(run["known_user"]), "--at", when)
    assert by_time["request"]["request_id"] == KNOWN_REQUEST
    text = provenance(run, "--request", KNOWN_REQUEST)
    print(text.stdout)
    assert text.returncode == 0
    assert f"reco_version={run['summary']['reco_version']}" in text.stdout
    assert run["snapshot"].snapshot_id in text.stdout
    assert "every recomputed hash matches" in text.stdout
    popular = provenance(run, "--request", UNKNOWN_REQUEST)
    print(popular.stdout)
    assert "source=popular: popularity fallback" in popular.stdout


def test_an_unknown_request_exits_2(run):
    done = provenance(run, "--request", "no-such-request")
    assert done.returncode == 2 and done.stdout == ""
    assert "no request 'no-such-request'" in done.stderr
    early = provenance(run, "--user", str(run["known_user"]), "--at", "2000-01-01T00:00:00Z")
    assert early.returncode == 2 and "no answer to user" in early.stderr


def test_a_changed_snapshot_file_is_reported(run):
    snap = run["snapshot"]
    first = sorted(f["path"] for f in snap.manifest["files"] if f["table"] == "rate")[0]
    path = snap.path / first
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        done = provenance(run, "--request", KNOWN_REQUEST, "--json")
        assert done.returncode == 1, done.stderr
        got = json.loads(done.stdout)
        states = {f["path"]: f["state"] for f in got["data"]["snapshots"][0]["files"]}
        assert states.pop(first) == "changed"
        assert set(states.values()) == {"matches"} and not got["all_hashes_match"]
    finally:
        path.write_bytes(original)
    assert provenance(run, "--request", KNOWN_REQUEST).returncode == 0
