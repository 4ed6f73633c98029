"""The scale run's measuring parts (ops/scenario.py, jobs/scale.py), without a scale run."""

from __future__ import annotations

import subprocess
import sys

from contracts import settings
from jobs import scale
from ops import scenario
from tests.support.harness import wait_for
from tests.unit.test_ingest_derive import day, make_snapshot

ALLOCATE = "import sys, time; block = bytearray(300 * 2**20); sys.stdout.write('ok\\n'); "
ALLOCATE += "sys.stdout.flush(); time.sleep(30)"


def test_peak_rss_counts_a_watched_process_tree():
    """A parent whose child holds 300 MB peaks above 300 MB: children are summed in."""
    sampler = scenario.PeakRSS()
    sampler.start()
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {ALLOCATE!r}])"
    proc = subprocess.Popen([sys.executable, "-c", child])
    try:
        sampler.watch("tree", proc.pid)
        wait_for(lambda: sampler.peaks.get("tree", 0) > 300 * 2**20, 30, "the child's 300 MB")
    finally:
        for member in scenario.psutil.Process(proc.pid).children(recursive=True):
            member.kill()
        proc.kill()
        sampler.stop()
    assert scenario.gb(sampler.peaks["tree"]) >= 0.29


def test_the_table_and_the_verdict_name_what_missed():
    stages = [
        scenario.Stage("simulate", 50.0, 13.5, None, 58_000_000, "success"),
        scenario.Stage("snapshot", 300.0, 2.25, 58_000_000, 58_000_000, "success"),
        scenario.Stage("score", 900.0, 12.5, None, 1_000_000, "success"),
    ]
    text = scenario.table(stages)
    assert "| snapshot | 300 | 2.25 | 58,000,000 | 58,000,000 | success |" in text
    verdict = scenario.verdict(21.0, stages)
    # the simulator is not part of the platform's stages: its 13.5 GB does not count
    assert "21.0 min (target 20: missed)" in verdict
    assert "12.50 GB (score; target 12: missed)" in verdict
    assert "met" in scenario.verdict(19.0, stages[:2]).split(";")[0]


def test_snapshot_rows_come_from_its_manifest(tmp_path, monkeypatch):
    """Lines read -> rows written, rejects included (read back, not recounted)."""
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    lines = day("2025-03-01", range(1, 11), 4) + ["not a line", "2025-03-01T10:00:00,x,GET"]
    path = make_snapshot(settings.load().lake_dir, 1, lines)
    assert scale.stage_rows("snapshot", path.name) == (len(lines), len(lines))
    assert scale.stage_rows("gate", "anything") == (None, None)
    assert scale.stage_rows("snapshot", None) == (None, None)


def test_the_report_says_how_much_of_the_world_the_dataset_holds():
    stages = [scenario.Stage("publish", 10.0, 0.5, None, 1_000_000, "success")]
    counts = {"users": 1_000_000, "movies": 23_342, "interactions": 2_100_000}
    text = scenario.report(stages, 12.0, counts)
    assert "dataset: 1,000,000 users, 23,342 movies, 2,100,000 interactions" in text
    assert "12.0 min (target 20: met)" in text
    assert "dataset: none built" in scenario.report(stages, 12.0, {})
