"""The gunicorn internals serving/ replaces or re-implements, checked against the installed
gunicorn: an upgrade that renames, re-signs or stops calling one of them fails here, instead of
silently dropping a speed-up (the close after each answer) or a contract (text-only errors).

What serving/ depends on:
- `util.close_graceful(sock)`: replaced per worker by `workers.close_after_answer`; it only
  takes effect while `SyncWorker.handle` calls it through the `util` module attribute.
- `util.write_error(sock, status_int, reason, mesg)`: replaced by `workers.write_text_error`
  in gunicorn_conf.py; only effective while `Worker.handle_error` calls it through `util`.
- `SyncWorker.accept(listener)`: re-implemented by `DeadlineSyncWorker.accept`, which must
  keep doing what gunicorn's does (accept, blocking, close-on-exec, handle) plus its options.
- `glogging.Logger.error_log` and the socket-error log line the deadline filter rewrites.
- the setting names and hook signatures in gunicorn_conf.py (gunicorn ignores unknown names).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import socket
import subprocess
import sys
import textwrap

import gunicorn
import pytest
from gunicorn import config as gunicorn_config
from gunicorn import glogging, util
from gunicorn.workers import base, sync

from contracts import settings
from serving import workers

pytestmark = pytest.mark.unit

REPO = settings.REPO_ROOT
CONF = REPO / "serving" / "gunicorn_conf.py"
KNOWN = {s.name: s for s in gunicorn_config.KNOWN_SETTINGS}


def params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def pinned(name: str) -> str:
    """The version `name` is pinned to with == in requirements.txt."""
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(rf"{re.escape(name)}==(\S+)", line.split("#")[0].strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned with == in requirements.txt")


def calls(func) -> list[ast.Call]:
    """Every call in `func`'s source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def dotted(call: ast.Call) -> str:
    """'util.close_graceful' for util.close_graceful(…), 'super().init_process' for …"""
    return ast.unparse(call.func)


def calls_to(func, name: str) -> list[ast.Call]:
    return [call for call in calls(func) if dotted(call) == name]


def test_installed_gunicorn_is_the_pinned_one():
    # Moving the pin? Re-read every check below against the new gunicorn's source first.
    assert gunicorn.__version__ == pinned("gunicorn")


def test_close_graceful_is_still_the_sync_workers_close():
    assert sync.util is util, "SyncWorker must reach close_graceful through gunicorn.util"
    assert params(util.close_graceful)[0] == "sock"
    found = calls_to(sync.SyncWorker.handle, "util.close_graceful")
    assert found, "SyncWorker.handle no longer closes through util.close_graceful"
    replacement = inspect.signature(workers.close_after_answer)
    for call in found:
        assert not call.keywords
        replacement.bind(*(object() for _ in call.args))  # TypeError if it cannot take them


def assigned(func) -> set[str]:
    """The targets `func` assigns to, as source text."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return {
        ast.unparse(target)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
    }


def test_init_process_installs_the_close_then_runs_gunicorns():
    assert "util.close_graceful" in assigned(workers.DeadlineSyncWorker.init_process)
    assert params(base.Worker.init_process) == ["self"]
    assert calls_to(workers.DeadlineSyncWorker.init_process, "super().init_process")


def test_write_error_is_still_how_workers_answer_protocol_errors():
    assert base.util is util, "Worker must reach write_error through gunicorn.util"
    expected = ["sock", "status_int", "reason", "mesg"]
    assert params(util.write_error) == expected
    assert params(workers.write_text_error) == expected
    found = calls_to(base.Worker.handle_error, "util.write_error")
    assert found and all(len(c.args) == 4 and not c.keywords for c in found)
    assert params(util.write_nonblock)[:2] == ["sock", "data"]


def test_accept_reimplements_the_sync_workers_accept():
    assert params(sync.SyncWorker.accept) == params(workers.DeadlineSyncWorker.accept)
    assert params(sync.SyncWorker.accept) == ["self", "listener"]
    assert params(sync.SyncWorker.handle) == ["self", "listener", "client", "addr"]
    assert params(util.close_on_exec) == ["fd"]
    upstream = [dotted(c) for c in calls(sync.SyncWorker.accept)]
    # A new step in gunicorn's accept() would be missing from ours: look at it, then update.
    assert upstream == [
        "listener.accept",
        "client.setblocking",
        "util.close_on_exec",
        "self.handle",
    ]
    ours = {dotted(c) for c in calls(workers.DeadlineSyncWorker.accept)}
    assert set(upstream) <= ours


def test_deadline_log_filter_still_has_its_logger_and_its_line():
    init = inspect.getsource(glogging.Logger.__init__)
    assert "self.error_log = logging.getLogger(" in init
    # The deadline's BlockingIOError/TimeoutError is an OSError that SyncWorker.handle logs
    # with its traceback; the filter turns that record into one warning line.
    assert 'self.log.exception("Socket error processing request.")' in inspect.getsource(
        sync.SyncWorker.handle
    )


def test_gunicorn_conf_names_only_known_settings_and_hooks():
    tree = ast.parse(CONF.read_text())
    names = [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and not target.id.startswith("_")
    ]
    hooks = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    unknown = [n for n in names + [h.name for h in hooks] if n not in KNOWN]
    assert not unknown, f"gunicorn ignores these silently: {unknown}"
    for hook in hooks:
        assert len(hook.args.args) == len(params(KNOWN[hook.name].default)), hook.name


def load_conf(tmp_path, **env: str) -> dict:
    """Run gunicorn_conf.py in a fresh interpreter (it sets the environment and patches
    gunicorn); return its settings and whether util.write_error was replaced."""
    code = textwrap.dedent(
        f"""
        import json, runpy
        from gunicorn import util
        from serving import workers
        ns = runpy.run_path({str(CONF)!r})
        out = {{k: ns[k] for k in ("bind", "workers", "worker_class", "threads", "loglevel",
                                 "accesslog")}}
        out["patched"] = util.write_error is workers.write_text_error
        out["worker"] = util.load_class(ns["worker_class"]).__name__
        print(json.dumps(out))
        """
    )
    full_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_gunicorn_conf_installs_the_text_errors_and_the_deadline_worker(tmp_path):
    got = load_conf(tmp_path)
    assert got == {
        "bind": "127.0.0.1:8082",
        "workers": 2,
        "worker_class": "serving.workers.DeadlineSyncWorker",
        "threads": 1,
        "loglevel": "info",
        "accesslog": None,
        "patched": True,
        "worker": "DeadlineSyncWorker",
    }


def test_gunicorn_conf_reads_the_serving_knobs(tmp_path):
    got = load_conf(
        tmp_path,
        SERVING_HOST="0.0.0.0",  # noqa: S104 - only read back, never bound
        SERVING_PORT="9000",
        SERVING_WORKERS="3",
        SERVING_WORKER_CLASS="gthread",
        SERVING_THREADS="8",
        SERVING_LOG_LEVEL="debug",
        SERVING_ACCESS_LOG="-",
    )
    assert (got["bind"], got["workers"], got["worker_class"], got["threads"]) == (
        "0.0.0.0:9000",
        3,
        "gthread",
        8,
    )
    assert (got["loglevel"], got["accesslog"], got["worker"]) == ("debug", "-", "ThreadWorker")


def test_write_text_error_answers_one_text_line():
    client, server = socket.socketpair()
    try:
        workers.write_text_error(server, 400, "Bad Request", "Invalid request line\n  'x y'")
        server.close()
        client.settimeout(5)
        raw = b""
        while chunk := client.recv(4096):
            raw += chunk
    finally:
        client.close()
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "Content-Type: text/plain; charset=utf-8" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert body == b"400 Bad Request: Invalid request line 'x y'"
