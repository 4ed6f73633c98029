"""The security section of the Responsible ML pages: the newest rating-spam detection.

Reads the newest detection directory the train_and_publish task `detect_spam` wrote
(lake_dir/flagged/<detection id>/, jobs/train/detect.py) and writes `security/report.json`
and `security/report.html` (jobs/online/responsible_site.py): detector version, what it read,
the flagged accounts by reason, and each attacked movie with its accounts and burst times. An
attacked movie is listed under `violations`, so the index shows how many attacks the last
detection found (docs/responsible-ml.md, "Threat model").
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from contracts import settings
from contracts.names import ITEM_COL, USER_COL
from jobs.train import detect

SECTION = "security"
SHOWN_ACCOUNTS = 50


def newest_detection(root: Path | None = None) -> Path | None:
    """The most recently written detection directory under lake_dir/flagged (None: none yet)."""
    base = root or settings.load().lake_dir / detect.FLAGGED_DIR
    found = [p.parent for p in base.glob(f"*/{detect.DETECTION_FILE}")]
    return max(found, key=lambda p: (p / detect.DETECTION_FILE).stat().st_mtime, default=None)


def summary(path: Path) -> dict[str, Any]:
    """report.json: the detection record, reason counts, attacked movies, first accounts."""
    record = detect.read_detection(path)
    accounts = pd.read_parquet(path / detect.ACCOUNTS_FILE)
    movies = pd.read_parquet(path / detect.MOVIES_FILE)
    reasons = accounts["reasons"].str.split(",").explode().value_counts()
    return {
        **record,
        "reasons": {str(k): int(v) for k, v in reasons.items()},
        "movies": json.loads(movies.to_json(orient="records", date_format="iso")),
        "accounts": json.loads(
            accounts.head(SHOWN_ACCOUNTS).to_json(orient="records", date_format="iso")
        ),
        "violations": [
            f"rating spam on {m[ITEM_COL]}: {m['accounts']} accounts"
            for m in movies.to_dict("records")
        ],
    }


def page(report: dict[str, Any]) -> str:
    """report.html: the same facts, as a page."""
    esc = html.escape
    movie_rows = "".join(
        f"<tr><td>{esc(str(m[ITEM_COL]))}</td><td>{m['accounts']}</td>"
        f"<td>{esc(str(m['start']))}</td><td>{esc(str(m['end']))}</td></tr>"
        for m in report["movies"]
    )
    account_rows = "".join(
        f"<tr><td>{a[USER_COL]}</td><td>{esc(a['reasons'])}</td><td>{esc(a['movies'])}</td>"
        f"<td>{a['burst_size']}</td></tr>"
        for a in report["accounts"]
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>Security: rating spam</title></head><body>"
        '<p><a href="../index.html">Responsible ML</a></p><h1>Rating spam</h1>'
        f"<p>Detection {esc(report['detection_id'])} by {esc(report['detector_version'])} "
        f"over {len(report['snapshots'])} snapshots ({report['ratings']} ratings, "
        f"{report['rating_accounts']} rating accounts, watch data: {report['watch_data']}): "
        f"<b>{report['flagged']} accounts flagged</b> and left out of training; "
        f"reasons {esc(json.dumps(report['reasons']))}. List: "
        f"{esc(report['accounts_file'])}. Rule: {esc(json.dumps(report['thresholds']))}.</p>"
        "<h2>Attacked movies</h2><table><tr><th>movie</th><th>accounts</th><th>first</th>"
        f"<th>last</th></tr>{movie_rows}</table>"
        f"<h2>Flagged accounts (first {SHOWN_ACCOUNTS})</h2><table><tr><th>user</th>"
        f"<th>reasons</th><th>movies</th><th>burst</th></tr>{account_rows}</table>"
        "</body></html>"
    )


def run(root: Path | None = None) -> str | None:
    """Write the security section from the newest detection; its report.json (None: no
    detection yet)."""
    from jobs.online import responsible_site

    path = newest_detection(root)
    if path is None:
        return None
    report = summary(path)
    out = responsible_site.section_dir(SECTION)
    (out / responsible_site.REPORT_HTML).write_text(page(report))
    target = out / responsible_site.REPORT_JSON
    target.write_text(json.dumps(report, indent=2, default=str))
    return str(target)
