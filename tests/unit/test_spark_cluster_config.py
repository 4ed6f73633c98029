"""The standalone cluster's command lines come from settings, and the code zip jobs/spark.py
ships to executors holds the project's packages and is enough to import a job from."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile

import pytest

from contracts import settings
from jobs import spark as spark_mod
from ops import spark_cluster

pytestmark = pytest.mark.unit


def test_daemons_follow_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SPARK_MASTER_PORT", "17077")
    monkeypatch.setenv("SPARK_MASTER_UI_PORT", "18070")
    monkeypatch.setenv("SPARK_WORKER_INSTANCES", "3")
    monkeypatch.setenv("SPARK_WORKER_MEMORY", "3g")
    monkeypatch.delenv("SPARK_WORKER_CORES", raising=False)
    master_argv = spark_cluster.master().argv()
    assert master_argv[0].endswith("pyspark/bin/spark-class")
    assert master_argv[1:] == [
        spark_cluster.MASTER_CLASS,
        *("--host", "127.0.0.1", "--port", "17077", "--webui-port", "18070"),
    ]
    workers = spark_cluster.workers()
    assert [w.name for w in workers] == ["spark-worker-1", "spark-worker-2", "spark-worker-3"]
    argv = workers[1].argv()
    assert argv[-1] == spark_cluster.master_url() == "spark://127.0.0.1:17077"
    assert argv[argv.index("--cores") + 1] == "1" and argv[argv.index("--memory") + 1] == "3g"
    assert argv[argv.index("--work-dir") + 1] == str(tmp_path / "spark-cluster/worker-2/work")
    assert workers[1].log == tmp_path / "log" / "spark-worker-2.log"


def test_workers_get_no_pythonpath(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(settings.REPO_ROOT))
    env = spark_cluster.daemon_env(tmp_path)
    assert "PYTHONPATH" not in env
    assert env["SPARK_LOCAL_DIRS"] == str(tmp_path) and env["SPARK_LOCAL_IP"] == "127.0.0.1"


def test_code_zip_is_built_once_and_imports_a_job(tmp_path):
    first = spark_mod.code_zip(tmp_path)
    built = first.stat().st_mtime_ns
    assert spark_mod.code_zip(tmp_path) == first and first.stat().st_mtime_ns == built
    names = zipfile.ZipFile(first).namelist()
    expected = {
        str(p.relative_to(settings.REPO_ROOT))
        for package in spark_mod.SHIPPED_PACKAGES
        for p in (settings.REPO_ROOT / package).rglob("*.py")
    }
    assert expected <= set(names) and not [n for n in names if "__pycache__" in n]
    # An interpreter that sees only the zip (not the checkout) imports the scoring job from it.
    probe = "import jobs.publish.score as s; print(s.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(first)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(first / "jobs" / "publish" / "score.py")


def test_up_refuses_a_port_held_by_another_process(monkeypatch, tmp_path):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SPARK_WORKER_INSTANCES", "2")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        monkeypatch.setenv("SPARK_MASTER_PORT", str(holder.getsockname()[1]))
        with pytest.raises(spark_cluster.ClusterError, match="is taken by a process"):
            spark_cluster.up(quiet=True)
    assert spark_cluster.status()["daemons"] == {
        "spark-master": None,
        "spark-worker-1": None,
        "spark-worker-2": None,
    }
