"""The local end of Alertmanager's webhook: every alert it delivers becomes one JSON line.

`python -m ops.alert_receiver [--host H] [--port N] [--log FILE]` (supervised as
`alert-receiver` by ops/monitoring.py; `compose:alert-receiver` in docker-compose.yml) listens
on 127.0.0.1:ALERT_RECEIVER_PORT:

- `POST /alerts` takes Alertmanager's webhook document (version 4) and appends one line per
  alert in it to `.var/log/alerts.jsonl` (`settings.alerts_log`): `received_at` (UTC, ISO
  8601), `status` (firing|resolved), `alertname`, `severity`, `labels`, `annotations`,
  `startsAt`, `endsAt`, `fingerprint`. A document is checked whole before anything is written;
  a bad one gets 400 with the reason (and is logged), never a crash. Appends are serialised
  and flushed, so concurrent deliveries never interleave lines.
- `GET /alerts/active`: the alerts firing now, by the log (the last line of each fingerprint
  says `firing`), as a JSON list of those lines.
- `GET /healthz`: 200 while it serves.

`read_records` and `active` are the readers the status page uses on the file itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from contracts import settings as settings_mod

LOG = logging.getLogger("alert_receiver")
MAX_BODY = 1 << 20  # Alertmanager truncates a group long before 1 MB
STATUSES = ("firing", "resolved")
RECORD_FIELDS = (  # the line format, in order (the status page reads it)
    "received_at",
    "status",
    "alertname",
    "severity",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "fingerprint",
)


class BadPayload(ValueError):
    """A webhook document that is not Alertmanager's version 4; the message says what is wrong."""


# ---------------------------------------------------------------------------- parsing
def _string_map(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadPayload(f"{what} must be an object of strings")
    return value


def _record(alert: object, index: int, received_at: str) -> dict:
    """One alert of the document as a log record (raises BadPayload naming the alert)."""
    where = f"alerts[{index}]"
    if not isinstance(alert, dict):
        raise BadPayload(f"{where} is not an object")
    if alert.get("status") not in STATUSES:
        raise BadPayload(f"{where}.status must be firing or resolved, not {alert.get('status')!r}")
    labels = _string_map(alert.get("labels"), f"{where}.labels")
    if not labels.get("alertname"):
        raise BadPayload(f"{where}.labels has no alertname")
    annotations = _string_map(alert.get("annotations", {}), f"{where}.annotations")
    for key in ("startsAt", "endsAt", "fingerprint"):
        if not isinstance(alert.get(key), str):
            raise BadPayload(f"{where}.{key} must be a string")
    record = {
        "received_at": received_at,
        "status": alert["status"],
        "alertname": labels["alertname"],
        "severity": labels.get("severity"),
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert["startsAt"],
        "endsAt": alert["endsAt"],
        "fingerprint": alert["fingerprint"],
    }
    return {key: record[key] for key in RECORD_FIELDS}


def parse_webhook(body: bytes, received_at: datetime) -> list[dict]:
    """Alertmanager's webhook document (version 4) → one record per alert, in its order."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadPayload("the document is not a JSON object")
    if doc.get("version") != "4":
        raise BadPayload(
            f'version must be "4" (Alertmanager\'s webhook), not {doc.get("version")!r}'
        )
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("alerts must be a list")
    stamp = received_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [_record(alert, i, stamp) for i, alert in enumerate(alerts)]


# ---------------------------------------------------------------------------- the log
class AlertLog:
    """The JSON-lines file, appended to by one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: list[dict]) -> None:
        """Append the records as lines in one write, flushed to the OS before returning."""
        if not records:
            return
        text = "".join(json.dumps(r) + "\n" for r in records).encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab+") as out:
                # A line cut short (a crash mid-write) is ended first, or the next record
                # would be glued to it and lost to readers too.
                if out.seek(0, 2) > 0 and out.seek(-1, 2) >= 0 and out.read(1) != b"\n":
                    text = b"\n" + text
                out.write(text)
                out.flush()


def read_records(path: Path) -> list[dict]:
    """Every record of an alerts log, oldest first; lines that are not records are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash while writing
        if isinstance(record, dict) and "fingerprint" in record:
            records.append(record)
    return records


def active(records: Iterable[dict]) -> list[dict]:
    """The alerts firing now: the last record of each fingerprint, where it says `firing`."""
    last: dict[str, dict] = {}
    for record in records:
        last.pop(record["fingerprint"], None)  # keep the order of the latest news
        last[record["fingerprint"]] = record
    return [record for record in last.values() if record.get("status") == "firing"]


# ---------------------------------------------------------------------------- HTTP
class Handler(BaseHTTPRequestHandler):
    """POST /alerts, GET /alerts/active, GET /healthz."""

    server_version = "recs-alert-receiver"
    log: AlertLog  # set on the subclass make_server builds

    def _reply(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reject(self, status: int, reason: str) -> None:
        LOG.warning(
            "rejected %s %s from %s: %s", self.command, self.path, self.client_address[0], reason
        )
        self._reply(status, {"error": reason})

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/alerts/active":
            self._reply(HTTPStatus.OK, active(read_records(self.log.path)))
        else:
            self._reject(HTTPStatus.NOT_FOUND, f"no such page: {self.path}")

    def do_POST(self) -> None:
        if self.path != "/alerts":
            self._reject(HTTPStatus.NOT_FOUND, f"no such page: {self.path}")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reject(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            return
        if not 0 <= length <= MAX_BODY:
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
            return
        try:
            records = parse_webhook(self.rfile.read(length), datetime.now(UTC))
        except BadPayload as exc:
            self._reject(HTTPStatus.BAD_REQUEST, str(exc))
            return
        self.log.append(records)
        LOG.info(
            "%d alert(s): %s",
            len(records),
            ", ".join(f"{r['alertname']} {r['status']}" for r in records),
        )
        self._reply(HTTPStatus.OK, {"recorded": len(records)})

    def log_message(self, format: str, *args) -> None:
        LOG.debug(format, *args)  # one line per request is noise; outcomes are logged above


def make_server(port: int, log_path: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A threading HTTP server bound to host:port, writing to `log_path` (not yet serving)."""
    handler = type("BoundHandler", (Handler,), {"log": AlertLog(log_path)})
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    cfg = settings_mod.load()
    parser = argparse.ArgumentParser(prog="python -m ops.alert_receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container")
    parser.add_argument("--port", type=int, default=cfg.alert_receiver_port)
    parser.add_argument(
        "--log", type=Path, default=cfg.alerts_log, help="the alerts JSON-lines file"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = make_server(args.port, args.log, args.host)
    # supervisord stops it with SIGTERM: finish the requests in hand (server_close joins their
    # threads), so no line is cut short. shutdown() must run outside the serving thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    LOG.info("listening on %s:%d, writing %s", args.host, args.port, args.log)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
