"""The one local web page for people, on 127.0.0.1:REPORTS_PORT (8091).

`python -m ops.reports_site [--port N]` (supervised as `reports` by `make run`, ops/run.py):

- `/`: the status page jobs/online/status_page.py writes into settings.site_dir (the DAG
  online_evaluation regenerates it hourly), with its active-alerts slot filled from
  settings.alerts_log on every request; `/plots/…` its plots.
- `/data-docs/…`: the Great Expectations Data Docs (settings.data_docs_dir), every page's CDN
  CSS/JS rewritten to local copies under `/vendor/…` (ops/web_assets.py), so it renders offline.
- `/reports/`: an index of the model comparison reports (settings.reports_dir/<run>/report.html),
  newest first; `/reports/<run>/…` the reports themselves.
- `/alerts`: the active alerts as JSON; `/healthz`: 200 while it serves.

Every path is resolved inside its own root: `..`, hidden names, NUL bytes and symlinks that
leave the root get a 404 whose body says why. Binds loopback only.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import mimetypes
import signal
import sys
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from contracts import settings as settings_mod
from contracts import site
from ops import alert_receiver, web_assets

LOG = logging.getLogger("reports_site")
HOST = "127.0.0.1"
VENDOR_URL = web_assets.VENDOR_PREFIX
DATA_DOCS_LOGO = f"{site.DATA_DOCS_URL}static/images/logo-long.png"
# Types Python's table may lack on a slim machine (fonts of font-awesome, source maps).
EXTRA_TYPES = {
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}


# Browsers ask every site for /favicon.ico: a small mark instead of a 404 in every page's log.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#1f6feb"/></svg>'
)


class NotFound(Exception):
    """A request that names nothing we serve; the message is the reason given to the client."""


@dataclass(frozen=True)
class Reply:
    """A response body with its content type."""

    body: bytes
    content_type: str
    cache: str = "no-cache"  # revalidate: pages and plots change with every DAG run


# ---------------------------------------------------------------------------- paths
def resolve(root: Path, relative: str) -> Path:
    """The file `relative` names inside `root` (a directory: its index.html); NotFound if none.

    `relative` is the URL path after the route's prefix, still percent-encoded.
    """
    text = unquote(relative)
    if "\0" in text or "\\" in text:
        raise NotFound("the path holds a NUL byte or a backslash")
    parts = [p for p in text.split("/") if p]
    if any(p == ".." for p in parts):
        raise NotFound("the path climbs out of its folder (..)")
    if any(p.startswith(".") for p in parts):
        raise NotFound("hidden files are not served")
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base):
        raise NotFound("the path leaves its folder through a link")
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        raise NotFound(f"no such file: /{'/'.join(parts)}")
    return path


def content_type(path: Path) -> str:
    """The Content-Type of a file by its suffix (text in UTF-8)."""
    kind = EXTRA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    kind = kind or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


def file_reply(path: Path) -> Reply:
    return Reply(path.read_bytes(), content_type(path))


# ---------------------------------------------------------------------------- pages
def active_alerts(cfg: settings_mod.Settings) -> list[dict]:
    """The alerts firing now, by the alerts log (ops.alert_receiver defines `active`)."""
    return alert_receiver.active(alert_receiver.read_records(cfg.alerts_log))


def alerts_html(alerts: list[dict]) -> str:
    """The active alerts as an HTML table (or a sentence when none fires)."""
    if not alerts:
        return '<p class="none">No alert is firing.</p>'
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(str(a.get('alertname')))}</td>"
        f"<td>{html.escape(str(a.get('severity') or ''))}</td>"
        f"<td>{html.escape(str(a.get('startsAt')))}</td>"
        f"<td>{html.escape((a.get('annotations') or {}).get('summary', ''))}</td>"
        "</tr>"
        for a in alerts
    )
    head = "<tr><th>alert</th><th>severity</th><th>firing since</th><th>summary</th></tr>"
    return f'<table class="alerts">{head}{rows}</table>'


def status_page(cfg: settings_mod.Settings) -> Reply:
    """The generated page with the live alerts, or a stand-in until the DAG has written one."""
    path = cfg.site_dir / site.STATUS_PAGE
    try:
        page = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            "<title>Recommender status</title>"
            "</head><body><h1>Recommender status</h1><p>The status page has not been generated "
            "yet: the online_evaluation DAG writes it after its first run.</p>"
            f'<p><a href="{site.DATA_DOCS_URL}">Data Docs</a> · '
            f'<a href="{site.REPORTS_URL}">Model reports</a></p>'
            f"<h2>Active alerts</h2>{site.ALERTS_SLOT}</body></html>"
        )
    page = page.replace(site.ALERTS_SLOT, alerts_html(active_alerts(cfg)))
    return Reply(page.encode(), "text/html; charset=utf-8")


def report_runs(reports_dir: Path) -> list[tuple[str, datetime]]:
    """(run id, time written) of every run with a report.html, newest first."""
    found = [
        (p.parent.name, datetime.fromtimestamp(p.stat().st_mtime))
        for p in reports_dir.glob("*/report.html")
        if not p.parent.name.startswith(".")
    ]
    return sorted(found, key=lambda run: run[1], reverse=True)


def reports_index(cfg: settings_mod.Settings) -> Reply:
    """A list of the model comparison reports, newest first."""
    runs = report_runs(cfg.reports_dir)
    items = "".join(
        f'<li><a href="{site.REPORTS_URL}{quote(run)}/report.html">{html.escape(run)}</a>'
        f" ({written:%Y-%m-%d %H:%M})</li>"
        for run, written in runs
    )
    listing = f"<ul>{items}</ul>" if runs else "<p>No training run has written a report yet.</p>"
    responsible = (
        f'<p><a href="{site.REPORTS_URL}{site.RESPONSIBLE_DIR}/">Responsible ML</a>: fairness '
        "measures, model cards and the other analyses of the responsible_ml DAG.</p>"
        if (cfg.reports_dir / site.RESPONSIBLE_DIR / "index.html").is_file()
        else ""
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>Model reports</title></head>"
        '<body><p><a href="/">Status</a></p><h1>Model comparison reports</h1>'
        f"{responsible}<p>One per training run (dataset id), newest first.</p>{listing}"
        "</body></html>"
    )
    return Reply(page.encode(), "text/html; charset=utf-8")


def data_docs(cfg: settings_mod.Settings, relative: str) -> Reply:
    """A Data Docs file; HTML pages with their CDN references pointing at /vendor/."""
    # GX links its static files relative to each page, at any depth (a fresh site's validation
    # pages ask for validations/static/images/favicon.ico); they exist only at the root.
    if f"/{relative}".find("/static/") > 0:
        relative = relative[relative.index("static/") :]
    path = resolve(cfg.data_docs_dir, relative)
    if path.suffix != ".html":
        return file_reply(path)
    page = web_assets.rewrite(path.read_text(encoding="utf-8"), DATA_DOCS_LOGO)
    # GX writes the favicon as ./static/… on every page, deep ones too; static/ is at the root.
    page = page.replace('"./static/', f'"{site.DATA_DOCS_URL}static/')
    return Reply(page.encode(), "text/html; charset=utf-8")


def vendor(relative: str) -> Reply:
    """A file of one of the unpacked npm packages (immutable: the version is in the URL)."""
    found = web_assets.vendor_root(unquote(relative))
    if found is None:
        raise NotFound("not one of the packaged Data Docs assets (ops/web_assets.py)")
    root, inside = found
    if not root.is_dir():
        raise NotFound(f"{root.name} is not installed: run `make setup`")
    path = resolve(root, inside)
    return Reply(path.read_bytes(), content_type(path), "public, max-age=86400, immutable")


def route(cfg: settings_mod.Settings, url_path: str) -> Reply:
    """The reply for a GET of `url_path`; NotFound when it names nothing."""
    if url_path in ("/", "/" + site.STATUS_PAGE):
        return status_page(cfg)
    if url_path == "/healthz":
        return Reply(b"ok\n", "text/plain; charset=utf-8")
    if url_path == "/favicon.ico":
        return Reply(FAVICON, "image/svg+xml", cache="max-age=86400")
    if url_path == site.ALERTS_URL:
        return Reply(json.dumps(active_alerts(cfg)).encode(), "application/json")
    if url_path == site.REPORTS_URL:
        return reports_index(cfg)
    if url_path.startswith(site.REPORTS_URL):
        return file_reply(resolve(cfg.reports_dir, url_path[len(site.REPORTS_URL) :]))
    if url_path.startswith(site.DATA_DOCS_URL):
        return data_docs(cfg, url_path[len(site.DATA_DOCS_URL) :])
    if url_path.startswith(VENDOR_URL):
        return vendor(url_path[len(VENDOR_URL) :])
    if url_path.startswith(f"/{site.PLOTS_DIR}/"):
        return file_reply(resolve(cfg.site_dir, url_path))
    raise NotFound(f"no such page: {url_path}")


# ---------------------------------------------------------------------------- HTTP
class Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the routes above; settings are read per request (a test may move them)."""

    server_version = "recs-reports"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        try:
            reply = route(settings_mod.load(), path)
            status = HTTPStatus.OK
        except NotFound as exc:
            reply = Reply(f"404 not found: {exc}\n".encode(), "text/plain; charset=utf-8")
            status = HTTPStatus.NOT_FOUND
        self.send_response(status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", reply.cache)
        self.end_headers()
        if send_body:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args) -> None:
        LOG.info("%s %s", self.address_string(), format % args)


def make_server(port: int, host: str = HOST) -> ThreadingHTTPServer:
    """A threading HTTP server bound to host:port (not yet serving)."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    cfg = settings_mod.load()
    parser = argparse.ArgumentParser(prog="python -m ops.reports_site", description=__doc__)
    parser.add_argument("--port", type=int, default=cfg.reports_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    missing = web_assets.missing()
    if missing:
        LOG.warning("Data Docs assets not installed (run `make setup`): %s", ", ".join(missing))
    server = make_server(args.port)
    # supervisord stops programs with SIGTERM: leave serve_forever and close the socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    LOG.info("reports site on http://%s:%d/", HOST, args.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
