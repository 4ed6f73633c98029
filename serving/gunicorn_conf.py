"""gunicorn settings for the serving tier (`gunicorn -c serving/gunicorn_conf.py …`).

Everything comes from the environment, read through contracts.settings: SERVING_HOST
(127.0.0.1), SERVING_PORT (8082), SERVING_WORKERS (2), SERVING_WORKER_CLASS
(serving.workers.DeadlineSyncWorker: gunicorn's sync worker with a 1 s client deadline,
SERVING_CLIENT_TIMEOUT_S; see serving/workers.py for why), SERVING_THREADS (gthread only, 4),
SERVING_ACCESS_LOG (unset = off; "-" = stdout), SERVING_LOG_LEVEL (info).
Prometheus multiprocess mode needs PROMETHEUS_MULTIPROC_DIR set before prometheus_client is
imported; this file is read before the app is loaded, so it sets it here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from gunicorn import util as gunicorn_util

from contracts import settings as settings_mod
from serving.workers import write_text_error

_cfg = settings_mod.load()

bind = f"{settings_mod.serving_host()}:{_cfg.serving_port}"
workers = settings_mod.serving_workers()
worker_class = settings_mod.serving_worker_class()
# Threads only mean something to gthread (gunicorn turns "sync" with threads > 1 into gthread).
threads = settings_mod.serving_threads() if worker_class == "gthread" else 1
keepalive = 5  # keep-alive worker classes only; the sync worker closes after each answer
# Workers touch a heartbeat file on every request; keep it in memory, not on the disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's advice
timeout = 30
graceful_timeout = 10
preload_app = True
reload = False
accesslog = settings_mod.serving_access_log()
errorlog = "-"
loglevel = settings_mod.serving_log_level()
proc_name = "recs-serving"
# gunicorn's runtime control socket defaults to one path per user, shared by every instance;
# this tier needs none (a restart or SIGHUP is the interface).
control_socket_disable = True

# One metrics directory per master process, emptied at start (stale files would double-count).
_metrics_dir = settings_mod.prometheus_multiproc_dir() or os.path.join(
    tempfile.gettempdir(), f"recs-serving-metrics-{_cfg.serving_port}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
# Emptied here, not in on_starting: with preload_app the app (and its metrics) is imported
# before that hook runs.
shutil.rmtree(_metrics_dir, ignore_errors=True)
Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


# gunicorn's protocol errors (a request line over 4094 bytes, …) as one text line, like the
# app's: a replaced gunicorn internal, guarded by tests/unit/test_gunicorn_patches.py.
gunicorn_util.write_error = write_text_error


def post_worker_init(worker) -> None:
    """Open the pool, read the pointer and start the refresher before the first request."""
    # serving.app.STATE_KEY, spelled out: importing serving.app here would load the app's
    # modules into workers of any other app run with this config (the benchmarks' variants).
    state = worker.wsgi.extensions.get("recs_serving")
    if state is not None:
        state.ensure_started()


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
