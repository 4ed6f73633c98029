"""gunicorn settings for the serving tier (`gunicorn -c serving/gunicorn_conf.py …`).

Everything comes from the environment: SERVING_HOST (127.0.0.1), SERVING_PORT (8082),
SERVING_WORKERS (2), SERVING_WORKER_CLASS (serving.workers.DeadlineSyncWorker: gunicorn's sync
worker with a 1 s client deadline, SERVING_CLIENT_TIMEOUT_S; see serving/workers.py for why),
SERVING_THREADS (gthread only, 4), SERVING_ACCESS_LOG (unset = off; "-" = stdout).
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

_cfg = settings_mod.load()

bind = f"{os.environ.get('SERVING_HOST', '127.0.0.1')}:{_cfg.serving_port}"
workers = int(os.environ.get("SERVING_WORKERS", "2"))
worker_class = os.environ.get("SERVING_WORKER_CLASS", "serving.workers.DeadlineSyncWorker")
# Threads only mean something to gthread (gunicorn turns "sync" with threads > 1 into gthread).
threads = int(os.environ.get("SERVING_THREADS", "4")) if worker_class == "gthread" else 1
keepalive = 5  # keep-alive worker classes only; the sync worker closes after each answer
# Workers touch a heartbeat file on every request; keep it in memory, not on the disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
timeout = 30
graceful_timeout = 10
preload_app = True
reload = False
accesslog = os.environ.get("SERVING_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("SERVING_LOG_LEVEL", "info")
proc_name = "recs-serving"
# gunicorn's runtime control socket defaults to one path per user, shared by every instance;
# this tier needs none (a restart or SIGHUP is the interface).
control_socket_disable = True

# One metrics directory per master process, emptied at start (stale files would double-count).
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    tempfile.gettempdir(), f"recs-serving-metrics-{_cfg.serving_port}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
# Emptied here, not in on_starting: with preload_app the app (and its metrics) is imported
# before that hook runs.
shutil.rmtree(_metrics_dir, ignore_errors=True)
Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def _write_text_error(sock, status_int, reason, mesg) -> None:
    """gunicorn's own protocol errors (e.g. a request line over 4094 bytes) as one text line,
    like the app's, instead of its HTML page."""
    body = f"{status_int} {reason}: {' '.join(str(mesg).split())[:200]}".encode(
        "latin-1", "replace"
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn_util.write_error = _write_text_error


def post_worker_init(worker) -> None:
    """Open the pool, read the pointer and start the refresher before the first request."""
    state = worker.wsgi.extensions.get("recs_serving")
    if state is not None:
        state.ensure_started()


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
