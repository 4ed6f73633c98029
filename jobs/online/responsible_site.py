"""The Responsible ML pages of the reports site: reports_dir/responsible/index.html (+ index.json).

Each analysis of the responsible_ml DAG writes its own folder here, `<section>/report.html` and
`<section>/report.json` (fairness: jobs/online/fairness.py; the security and feedback-loop
analyses add theirs the same way), and the model cards go to `model_cards/<version>.html|json`.
The index lists whatever sections and cards it finds, so a new analysis needs no change here.
The reports index (/reports/, ops/reports_site.py) links to this page.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import settings, site

REPORT_HTML, REPORT_JSON = "report.html", "report.json"
INDEX = "index.html"


def root() -> Path:
    """reports_dir/responsible."""
    return settings.load().reports_dir / site.RESPONSIBLE_DIR


def section_dir(name: str) -> Path:
    """The folder an analysis writes its report.html + report.json into (created)."""
    out = root() / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def sections(base: Path) -> list[dict[str, Any]]:
    """Every section folder with a report.html, by name, with its JSON's top-level summary."""
    found = []
    for page in sorted(base.glob(f"*/{REPORT_HTML}")):
        if page.parent.name == site.MODEL_CARDS_DIR:
            continue
        found.append(
            {
                "section": page.parent.name,
                "html": f"{page.parent.name}/{REPORT_HTML}",
                "json": f"{page.parent.name}/{REPORT_JSON}",
                "written": datetime.fromtimestamp(page.stat().st_mtime, UTC).isoformat(),
                "violations": _violations(page.parent / REPORT_JSON),
            }
        )
    return found


def _violations(path: Path) -> int | None:
    """How many requirements the section's JSON says are violated (None: it does not say)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    items = data if isinstance(data, list) else [data]
    counts = [len(i["violations"]) for i in items if isinstance(i, dict) and "violations" in i]
    return sum(counts) if counts else None


def cards(base: Path) -> list[dict[str, Any]]:
    """Every model card: version, status, and the page."""
    out = []
    for path in sorted((base / site.MODEL_CARDS_DIR).glob("*.json"), reverse=True):
        data = json.loads(path.read_text())
        out.append(
            {
                "model_version": data["model_version"],
                "status": data["status"],
                "html": f"{site.MODEL_CARDS_DIR}/{path.with_suffix('.html').name}",
                "json": f"{site.MODEL_CARDS_DIR}/{path.name}",
            }
        )
    return out


def index_html(listing: dict[str, Any]) -> str:
    """The index page: the analyses, then the model cards."""
    rows = "".join(
        f'<li><a href="{html.escape(s["html"])}">{html.escape(s["section"])}</a> '
        f'(<a href="{html.escape(s["json"])}">JSON</a>, {html.escape(s["written"])}; '
        f"violations: {'—' if s['violations'] is None else s['violations']})</li>"
        for s in listing["sections"]
    )
    card_rows = "".join(
        f'<li><a href="{html.escape(c["html"])}">{html.escape(c["model_version"])}</a> '
        f'({html.escape(c["status"])}, <a href="{html.escape(c["json"])}">JSON</a>)</li>'
        for c in listing["cards"]
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>Responsible ML</title></head><body>"
        f'<p><a href="/">Status</a> · <a href="{site.REPORTS_URL}">Model reports</a></p>'
        "<h1>Responsible ML</h1><p>Written by the responsible_ml DAG; the requirements and "
        "findings are in docs/responsible-ml.md.</p>"
        f"<h2>Analyses</h2><ul>{rows or '<li>none yet</li>'}</ul>"
        f"<h2>Model cards</h2><ul>{card_rows or '<li>none yet</li>'}</ul></body></html>"
    )


def build() -> str:
    """Regenerate index.html + index.json from the sections and cards found; the HTML path."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    listing = {"sections": sections(base), "cards": cards(base)}
    (base / "index.json").write_text(json.dumps(listing, indent=2))
    (base / INDEX).write_text(index_html(listing))
    return str(base / INDEX)
