"""The reports site in a real headless Chromium, every host but 127.0.0.1 unreachable.

A private RECS_VAR_DIR and Postgres schema hold a small world: online metrics of two model
versions, snapshots with validation outcomes, registry rows, a Data Docs site that real GX
checkpoints built, a model comparison report and an alerts log. The status page is generated
by the pipeline function the DAG calls; `python -m ops.reports_site` serves it all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg2
import pytest
import requests
from psycopg2.extras import Json

from contracts import settings as settings_mod
from jobs import pipeline
from jobs.ingest import parse, validate
from jobs.train import report
from ops import services, web_assets
from tests.conftest import private_schema
from tests.data.test_ingest_suites import LINES, frames
from tests.support.chromium import Browser

pytestmark = pytest.mark.integration

HOUR0 = datetime(1998, 3, 1, 0, 0)
IMAGES_LOADED = (
    "document.images.length > 0 && [...document.images].every("
    "(i) => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0) && document.images.length"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_row(
    hour: datetime, version: str, variant: str, requests_: int, ok: int, lists: int, hits: int
) -> dict:
    return {
        "hour": hour,
        "model_version": version,
        "variant": variant,
        "requests": requests_,
        "ok_requests": ok,
        "availability": ok / requests_,
        "latency_p50_ms": 9.0,
        "latency_p95_ms": 30.0,
        "latency_p99_ms": 80.0,
        "answers": requests_,
        "personalised": lists,
        "personalised_share": lists / requests_,
        "lists": lists,
        "hits": hits,
        "online_accuracy": hits / lists,
        "accuracy_low": None,
        "accuracy_high": None,
        "window_minutes": 60,
        "deadline_ms": 800,
        "complete": True,
    }


def fill_database(url: str) -> None:
    """Twelve hours of online metrics (model A, then B), two snapshots, three model versions."""
    rows = []
    for n in range(12):
        hour, version = HOUR0 + timedelta(hours=n), "svd-a" if n < 6 else "item_knn-b"
        ok = 990 if n != 8 else 700  # hour 8: an outage
        rows += [
            metric_row(hour, "*", "*", 1000, ok, 950, 95 + n),
            metric_row(hour, version, "", 1000, ok, 950, 95 + n),
        ]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        columns = list(rows[0])
        for row in rows:
            cur.execute(
                f"INSERT INTO online_metrics ({', '.join(columns)}) "  # noqa: S608 - names above
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                [row[c] for c in columns],
            )
        for seq, status in ((1, "accepted"), (2, "quarantined")):
            cur.execute(
                "INSERT INTO snapshots (snapshot_id, topic, status, path, offsets, row_counts, "
                "manifest, reasons, validated_at, min_event_time, max_event_time) VALUES "
                "(%s, 'movielog', %s, '/lake', %s, %s, %s, %s, now(), %s, %s)",
                (
                    f"s00000{seq}",
                    status,
                    Json({"0": [0, 10]}),
                    Json({"watch": 10}),
                    Json({}),
                    "snapshot.rating_kl failed" if status == "quarantined" else None,
                    HOUR0,
                    HOUR0 + timedelta(hours=6 * seq),
                ),
            )
        for version, status, reason in (
            ("svd-a", "retired", "replaced"),
            ("item_knn-b", "production", "published as reco-item_knn-b"),
            ("hybrid-c", "rejected", "gate: NDCG@20 below production"),
        ):
            cur.execute(
                "INSERT INTO model_registry (model_version, family, metrics, artifact_path, "
                "artifact_sha256, status, status_reason) VALUES (%s, %s, %s, '/m', %s, %s, %s)",
                (
                    version,
                    version.split("-")[0],
                    Json({"ndcg_at_20": 0.3}),
                    "0" * 64,
                    status,
                    reason,
                ),
            )
    conn.close()


def fill_var(var: Path) -> None:
    """Data Docs from real GX checkpoints, validation outcomes, a model report, alerts."""
    tables = parse.parse_batch(LINES, np.zeros(len(LINES)), np.arange(len(LINES)))
    for snapshot_id in ("s000001", "s000002"):
        validate.run_checkpoints(snapshot_id, frames(tables), validate.thresholds(), var)
        outcome = validate.outcome_path(snapshot_id, var)
        outcome.parent.mkdir(parents=True, exist_ok=True)
        kl = 0.05 if snapshot_id == "s000001" else 0.9
        aggregates = {"rating_kl": kl, "new_user_share": 0.1, "new_movie_share": 0.02}
        outcome.write_text(
            json.dumps(
                {
                    "snapshot_id": snapshot_id,
                    "success": kl < 0.5,
                    "failures": [],
                    "aggregates": aggregates | {"reject_rate": 0.01},
                    "data_docs": "",
                }
            )
        )
    models = [
        {
            "model_version": f"{family}-x-1",
            "family": family,
            "hyperparameters": {},
            "metrics": {"ndcg_at_20": score, "users": 120},
        }
        for family, score in (("popularity", 0.1), ("item_knn", 0.3))
    ]
    report.build_report("ds-1", models, var / "reports" / "ds-1")
    alert("quarantined-1", "SnapshotQuarantined", "firing", var)


def alert(fingerprint: str, name: str, status: str, var: Path) -> None:
    """Append one record as the alert receiver writes it."""
    log = var / "log" / "alerts.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "received_at": "1998-03-01T12:00:00Z",
        "status": status,
        "alertname": name,
        "severity": "page",
        "labels": {"alertname": name},
        "annotations": {"summary": f"{name} summary"},
        "startsAt": "1998-03-01T11:59:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }
    with log.open("a") as out:
        out.write(json.dumps(record) + "\n")


@pytest.fixture(scope="module")
def database(settings) -> str:
    """Postgres alone (the site needs no Kafka, Airflow or monitoring), with the schema."""
    from contracts import db

    started = services.up(("postgres",), quiet=True)
    db.apply_schema(settings.database_url)
    yield settings.database_url
    if started and os.environ.get("RECS_KEEP_SERVICES") != "1":
        services.down(started, quiet=True)


@pytest.fixture(scope="module")
def site(database, tmp_path_factory):
    """The reports site serving a private world; its base URL and var dir."""
    var = tmp_path_factory.mktemp("var")
    web_assets.fetch()
    with private_schema(database) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("RECS_VAR_DIR", str(var))
        env.setenv("DATABASE_URL", url)
        fill_database(url)
        fill_var(var)
        pipeline.build_status_page()
        port = free_port()
        log = (var / "reports-site.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "ops.reports_site", "--port", str(port)],
            env={**os.environ, "RECS_VAR_DIR": str(var), "DATABASE_URL": url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            services.wait_until(
                lambda: requests.get(f"{base}/healthz", timeout=2).ok, 30, "reports site", None
            )
            yield base, var
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


@pytest.fixture(scope="module")
def browser():
    with Browser() as chromium:
        yield chromium


def only_local(page, base: str) -> None:
    """Every request of the page went to the site and was answered 200."""
    page.drain()
    assert page.requests.problems() == []
    assert all(u.startswith((base, "data:")) for u in page.requests.urls.values())


def test_status_page_renders_plots_tables_and_live_alerts(site, browser, tmp_path):
    base, var = site
    page = browser.open(f"{base}/")
    assert page.wait_for(IMAGES_LOADED) == 3  # availability, accuracy, drift
    text = page.evaluate("document.body.innerText")
    for fact in ("svd-a", "item_knn-b", "hybrid-c", "s000002", "SnapshotQuarantined summary"):
        assert fact in text
    assert "gate: NDCG@20 below production" in text and "rating_kl failed" in text
    assert "No data yet" not in text
    only_local(page, base)
    page.screenshot(tmp_path / "status.png")
    assert (tmp_path / "status.png").stat().st_size > 10_000

    # A new alert shows at once, without regenerating the page; a resolved one goes away.
    alert("availability-1", "AvailabilityLow", "firing", var)
    alert("quarantined-1", "SnapshotQuarantined", "resolved", var)
    text = browser.open(f"{base}/").evaluate("document.body.innerText")
    assert "AvailabilityLow summary" in text and "SnapshotQuarantined" not in text
    assert [a["alertname"] for a in requests.get(f"{base}/alerts", timeout=5).json()] == [
        "AvailabilityLow"
    ]


def test_data_docs_render_their_tables_offline(site, browser):
    base, var = site
    index = browser.open(f"{base}/data-docs/")
    rows = "table.ge-index-page-validation-results-table tbody tr td"
    index.wait_for(
        f"document.querySelector('.bootstrap-table') && document.querySelectorAll('{rows}').length"
    )
    assert "s000002" in index.evaluate("document.body.innerText")
    only_local(index, base)

    validation = next((var / "gx" / "data_docs" / "validations" / "rate").rglob("*.html"))
    relative = validation.relative_to(var / "gx" / "data_docs")
    page = browser.open(f"{base}/data-docs/{relative}")
    assert page.wait_for("document.querySelectorAll('.bootstrap-table tbody tr').length") > 3
    assert page.wait_for("document.fonts.check('900 1em \"Font Awesome 6 Free\"')")
    only_local(page, base)


def test_without_the_local_assets_the_validation_list_is_empty(site, browser):
    """The check above can fail: the raw page (CDN links) renders no validation row offline."""
    _, var = site
    raw = browser.open(f"file://{var / 'gx' / 'data_docs' / 'index.html'}")
    rows = "table.ge-index-page-validation-results-table tbody tr td"
    assert raw.evaluate(f"document.querySelectorAll('{rows}').length") == 0
    raw.drain()
    assert any("ERR_NAME_NOT_RESOLVED" in p for p in raw.requests.problems())


def test_model_reports_index_and_report(site, browser):
    base, _ = site
    index = browser.open(f"{base}/reports/")
    assert index.evaluate("document.querySelector('a[href*=\"ds-1\"]').textContent") == "ds-1"
    page = browser.open(f"{base}/reports/ds-1/report.html")
    assert page.wait_for(IMAGES_LOADED) >= 3
    only_local(page, base)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/data-docs/../log/alerts.jsonl", "climbs out"),
        ("/data-docs/%2e%2e/%2e%2e/etc/passwd", "climbs out"),
        ("/reports/.hidden", "hidden"),
        ("/vendor/left-pad@1.0.0/index.js", "not one of the packaged"),
        ("/plots/none.png", "no such file"),
        ("/nowhere", "no such page"),
    ],
)
def test_unsafe_or_unknown_paths_get_404_with_a_reason(site, path, reason):
    base, _ = site
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as raw:
        # A raw request: an HTTP client would normalise the `..` away before sending it.
        raw.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        answer = b"".join(iter(lambda: raw.recv(65536), b"")).decode()
    assert answer.startswith("HTTP/1.0 404") and reason in answer


def test_a_missing_page_is_said_not_generated(site, tmp_path):
    """Before the DAG's first run the site says so (settings are read per request)."""
    from ops import reports_site

    cfg = settings_mod.load()
    empty = reports_site.status_page(settings_mod.Settings(**{**cfg.__dict__, "var_dir": tmp_path}))
    assert b"has not been generated yet" in empty.body and b"No alert is firing" in empty.body
