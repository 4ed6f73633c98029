"""The gunicorn worker class the serving tier runs: gunicorn's sync worker with a client
deadline, a corked socket and an immediate close after each answer; and gunicorn's own
protocol errors written as one text line.

Two of these replace gunicorn internals (`util.close_graceful` in each worker,
`util.write_error` from gunicorn_conf.py); tests/unit/test_gunicorn_patches.py fails when a
gunicorn upgrade renames, re-signs or stops calling what is replaced here.

Why sync (measured in `make bench BENCH=bench_serving`, which runs both side by side): a sync
worker takes one request at a time from the shared listen queue and closes the connection
after answering, so every request goes to whichever worker is free. Keep-alive workers
(gthread, gevent) keep a connection on the worker that accepted it; with 16 client
connections we saw splits of 2/14 and 16/0 between two workers, one saturated while the other
idled, which is where their p99 went.

The one thing a sync worker cannot afford is a client that connects and then sends nothing
(or dribbles its request): it would hold one of the two workers until gunicorn's `timeout`
kills it. SERVING_CLIENT_TIMEOUT_S (1 s) bounds every read and write on a client socket, so
such a connection is dropped instead (one warning line, no traceback). A real client sends its
request immediately after connecting; a deployment facing slow clients belongs behind a
buffering proxy, as any sync-worker server does.
"""

from __future__ import annotations

import logging
import socket
import struct

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

from contracts import settings as settings_mod


def client_timeout_s() -> float:
    """SERVING_CLIENT_TIMEOUT_S (default 1 s), which must be positive."""
    value = settings_mod.serving_client_timeout_s()
    if value <= 0:
        raise ValueError(f"SERVING_CLIENT_TIMEOUT_S={value:g} must be > 0")
    return value


class _DeadlineLogFilter(logging.Filter):
    """gunicorn logs a socket error with its traceback; a missed deadline is not a bug."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (BlockingIOError, TimeoutError)):
            record.msg = "dropped a client that sent no complete request within %g s"
            record.args = (self.seconds,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def close_after_answer(sock, max_drain: int = 65536) -> None:
    """Close a client connection once its answer is written, without lingering.

    gunicorn's `util.close_graceful` half-closes and then waits (up to 2 s) for the client's
    FIN, so that unread request bytes cannot turn the close into a RST that truncates the
    answer. A sync worker waits there once per request for the client to be scheduled: that
    wait cost 14 % of throughput and 3 ms of p99 here (bench_serving, same machine, side by
    side). This sends the FIN, discards whatever the client already sent and was not read
    (a GET has no body, so nothing more is due), and closes at once.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        drained = 0
        while drained < max_drain:
            data = sock.recv(4096, socket.MSG_DONTWAIT)
            if not data:
                break
            drained += len(data)
    except OSError:  # nothing buffered (EAGAIN) or the client is already gone
        pass
    finally:
        sock.close()


def write_text_error(sock, status_int, reason, mesg) -> None:
    """gunicorn's own protocol errors (e.g. a request line over 4094 bytes) as one text line,
    like the app's, instead of its HTML page (replaces gunicorn.util.write_error)."""
    body = f"{status_int} {reason}: {' '.join(str(mesg).split())[:200]}".encode(
        "latin-1", "replace"
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class DeadlineSyncWorker(SyncWorker):
    """gunicorn's sync worker; each client socket gets a read/write deadline."""

    def init_process(self) -> None:
        seconds = client_timeout_s()
        # Kernel-side deadlines (SO_RCVTIMEO/SO_SNDTIMEO) on a blocking socket: unlike
        # socket.settimeout they cost no extra poll() per read.
        self.client_deadline = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
        self.log.error_log.addFilter(_DeadlineLogFilter(seconds))
        # SyncWorker.handle closes through this module attribute; this process only.
        util.close_graceful = close_after_answer
        super().init_process()

    def accept(self, listener) -> None:
        client, addr = listener.accept()
        client.setblocking(True)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self.client_deadline)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self.client_deadline)
        # gunicorn writes the head and the body with two calls; corked, they leave as one
        # segment together with the FIN when close_after_answer shuts the socket down.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        util.close_on_exec(client)
        self.handle(listener, client, addr)
