"""The status page: one HTML page with PNG plots of how the platform is doing, for people.

Sections: availability per event-time hour, online accuracy per model version over time (with
Wilson intervals and counts), data freshness (newest accepted snapshot and event time), drift
per snapshot against its quarantine limits, the active alerts (a slot the reports site fills
per request, contracts.site.ALERTS_SLOT) and the model history (registry: versions, gate
outcomes, publication). Sources: Postgres `online_metrics`, `snapshots`, `model_registry`,
`reco_versions`; the validation outcomes beside the GX stores (drift is recorded there per
snapshot). Each section says so when it has no data yet.

Written into settings.site_dir (plots first, index.html last, each renamed into place), so
the server never reads half a file. The DAG `online_evaluation` regenerates it every hour.

    python -m jobs.online.status_page [--site-dir DIR]
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import db, settings, site
from contracts.names import METRIC

HOURS = 7 * 24  # event-time hours the plots span, back from the newest evaluated hour
SNAPSHOTS = 200  # newest snapshots in the drift plot
MODELS = 30  # newest registry rows in the history table
# Drift statistics of the validation outcome, each with the threshold key that quarantines it.
DRIFT = (
    ("rating_kl", "max_rating_kl", "rating KL vs reference"),
    ("new_user_share", "max_new_user_share", "share of events from new users"),
    ("new_movie_share", "max_new_movie_share", "share of events on new movies"),
    ("reject_rate", "max_reject_rate", "reject rate"),
)


@dataclass
class StatusData:
    """Everything the page shows, read once."""

    hours: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    freshness: dict[str, Any] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------ read
def _query(cur, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    cur.execute(db.read_sql(f"status/{name}.sql"), args)
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def read_database(database_url: str | None = None) -> StatusData:
    """The page's Postgres rows (online metrics, snapshots, registry) in one connection."""
    conn = db.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            return StatusData(
                hours=_query(cur, "online_hours", {"hours": HOURS}),
                versions=_query(cur, "online_versions", {"hours": HOURS}),
                freshness=_query(cur, "freshness", {})[0],
                snapshots=_query(cur, "snapshots", {"limit": 10}),
                models=_query(cur, "model_history", {"metric": METRIC, "limit": MODELS}),
            )
    finally:
        conn.close()


def read_drift(limits: dict[str, Any], var_dir: Path | None = None) -> list[dict[str, Any]]:
    """The validation outcome of each of the newest snapshots: id, verdict, drift statistics
    and the retrain level of each statistic the retraining trigger watches (its usual value
    taken over the references read here: the oldest plotted snapshots may lack a few)."""
    from jobs.ingest import validate
    from jobs.train import triggers

    pattern = validate.outcome_path("*", var_dir)
    newest = SNAPSHOTS + int(limits["reference_snapshots"])  # the plotted and their references
    paths = sorted(pattern.parent.glob(pattern.name))[-newest:]
    outcomes = [json.loads(path.read_text()) for path in paths]
    known = {o["snapshot_id"]: o["aggregates"] for o in outcomes}
    rows = []
    for outcome in outcomes[-SNAPSHOTS:]:
        usual = triggers.usual_drift(outcome["aggregates"], known)
        rows.append(
            {"snapshot_id": outcome["snapshot_id"], "accepted": outcome["success"]}
            | {key: outcome["aggregates"].get(key) for key, _, _ in DRIFT}
            | {
                f"retrain_{stat}": triggers.retrain_level(stat, limits, usual)
                for stat in triggers.DRIFT_LEVELS
            }
        )
    return rows


def read_all(database_url: str | None = None, var_dir: Path | None = None) -> StatusData:
    """Every source of the page."""
    from jobs.ingest import validate

    data = read_database(database_url)
    data.limits = validate.thresholds()
    data.drift = read_drift(data.limits, var_dir)
    return data


# ------------------------------------------------------------------ plots
def _figure(rows: int = 1, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=(10, height * rows), sharex=True, squeeze=False)
    return fig, [row[0] for row in axes]


def _save(fig, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def plot_availability(hours: Sequence[dict[str, Any]], out: Path) -> None:
    """Availability per hour with its Wilson interval, and the request count below."""
    from jobs.online.evaluate import wilson

    fig, (top, bottom) = _figure(2, 2.6)
    x = [r["hour"] for r in hours]
    bands = [wilson(r["ok_requests"], r["requests"]) for r in hours]
    top.fill_between(x, [b[0] for b in bands], [b[1] for b in bands], alpha=0.25)
    top.plot(x, [r["availability"] for r in hours], marker=".", label="availability")
    top.set_ylabel("200 within deadline")
    top.set_title("Availability per event-time hour (95 % Wilson interval shaded)")
    bottom.bar(x, [r["requests"] for r in hours], width=1 / 24, color="gray")
    bottom.set_ylabel("requests")
    _save(fig, out)


def plot_accuracy(versions: Sequence[dict[str, Any]], out: Path) -> None:
    """Online accuracy per model version and hour, with Wilson intervals, and served lists."""
    from jobs.online.evaluate import wilson

    fig, (top, bottom) = _figure(2, 2.6)
    for version in sorted({r["model_version"] for r in versions}):
        rows = [r for r in versions if r["model_version"] == version and r["lists"] > 0]
        x = [r["hour"] for r in rows]
        bands = [wilson(r["hits"], r["lists"]) for r in rows]
        line = top.plot(x, [r["hits"] / r["lists"] for r in rows], marker=".", label=version)
        top.fill_between(x, [b[0] for b in bands], [b[1] for b in bands], alpha=0.2)
        bottom.plot(x, [r["lists"] for r in rows], color=line[0].get_color())
    top.set_ylabel("lists followed by a watch")
    top.set_title("Online accuracy per model version (95 % Wilson interval shaded)")
    top.legend(fontsize=7)
    bottom.set_ylabel("served lists")
    _save(fig, out)


def column(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    """`key` of each row, NaN where missing (a gap in the plot)."""
    return [math.nan if r[key] is None else r[key] for r in rows]


def plot_drift(drift: Sequence[dict[str, Any]], limits: dict[str, Any], out: Path) -> None:
    """Each drift statistic per snapshot, quarantined ones in red, its limit dashed, and the
    level past which it triggers retraining dotted (per snapshot: it follows the usual)."""
    fig, axes = _figure(len(DRIFT), 1.8)
    x = list(range(len(drift)))
    colours = ["tab:blue" if r["accepted"] else "tab:red" for r in drift]
    for ax, (key, limit, title) in zip(axes, DRIFT, strict=True):
        values = column(drift, key)
        ax.plot(x, values, color="lightgray", zorder=1)
        ax.scatter(x, values, c=colours, s=12, zorder=2)
        ax.axhline(limits[limit], color="tab:red", linestyle="--", linewidth=1)
        retrain, dotted = f"retrain_{key}", ""
        if retrain in drift[0]:
            ax.step(x, column(drift, retrain), where="mid", color="tab:orange", linestyle=":")
            dotted = "; retrain level dotted"
        ax.set_title(f"{title} (limit {limits[limit]}{dotted})", fontsize=9)
    step = max(1, len(drift) // 10)
    axes[-1].set_xticks(x[::step], [r["snapshot_id"] for r in drift][::step], fontsize=7)
    _save(fig, out)


# ------------------------------------------------------------------ render
def fmt(value: Any) -> str:
    """A cell: numbers to 4 significant digits, times to the second, None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return html.escape(str(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An HTML table of `columns` of `rows`."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def empty(what: str) -> str:
    return f'<p class="empty">No data yet: {html.escape(what)}.</p>'


def image(name: str, alt: str, stamp: str) -> str:
    # The stamp makes a browser fetch the new plot after each regeneration.
    return f'<img src="{site.PLOTS_DIR}/{name}?v={stamp}" alt="{html.escape(alt)}">'


def availability_section(data: StatusData, stamp: str) -> str:
    if not data.hours:
        return empty("the online_evaluation DAG has not evaluated any hour")
    latest = list(reversed(data.hours[-12:]))
    return image("availability.png", "availability per hour", stamp) + table(
        latest,
        ["hour", "requests", "ok_requests", "availability", "latency_p99_ms", "complete"],
    )


def accuracy_section(data: StatusData, stamp: str) -> str:
    from jobs.online.evaluate import wilson

    if not any(r["lists"] for r in data.versions):
        return empty("no served list has been matched to the stream yet")
    totals: dict[str, dict[str, Any]] = {}
    for r in data.versions:
        t = totals.setdefault(r["model_version"], {"model_version": r["model_version"]})
        t["first_hour"] = t.get("first_hour") or r["hour"]
        t["last_hour"] = r["hour"]
        t["lists"] = t.get("lists", 0) + r["lists"]
        t["hits"] = t.get("hits", 0) + r["hits"]
    for t in totals.values():
        t["accuracy"] = t["hits"] / t["lists"] if t["lists"] else None
        t["low"], t["high"] = wilson(t["hits"], t["lists"])
    columns = ["model_version", "first_hour", "last_hour", "lists", "hits", "accuracy"]
    return image("accuracy.png", "online accuracy per model version", stamp) + table(
        sorted(totals.values(), key=lambda t: t["last_hour"], reverse=True),
        [*columns, "low", "high"],
    )


def freshness_section(data: StatusData) -> str:
    f = data.freshness
    if not data.snapshots:
        return empty("no snapshot has been ingested")
    summary = (
        f"<p>Newest accepted snapshot <b>{fmt(f['newest_accepted'])}</b>, validated "
        f"{fmt(f['accepted_at'])}; newest accepted event time <b>{fmt(f['newest_event'])}</b>. "
        f"Snapshots: {f['accepted']} accepted, {f['quarantined']} quarantined, "
        f"{f['unjudged']} not yet judged.</p>"
    )
    columns = ["snapshot_id", "status", "validated_at", "min_event_time", "max_event_time"]
    return summary + table(data.snapshots, [*columns, "reasons"])


def drift_section(data: StatusData, stamp: str) -> str:
    if not data.drift:
        return empty("no snapshot has been validated")
    newest = list(reversed(data.drift[-5:]))
    return image("drift.png", "drift per snapshot", stamp) + table(
        newest, ["snapshot_id", "accepted", *(key for key, _, _ in DRIFT)]
    )


def models_section(data: StatusData) -> str:
    if not data.models:
        return empty("no model has been trained")
    columns = ["model_version", "family", "status", "status_reason", "score", "created_at"]
    return table(data.models, [*columns, "published_at"]).replace(
        "<th>score</th>", f"<th>{METRIC} (held out)</th>"
    )


PLOTS: dict[str, tuple[Callable[[StatusData], bool], Callable[[StatusData, Path], None]]] = {
    "availability.png": (lambda d: bool(d.hours), lambda d, p: plot_availability(d.hours, p)),
    "accuracy.png": (
        lambda d: any(r["lists"] for r in d.versions),
        lambda d, p: plot_accuracy(d.versions, p),
    ),
    "drift.png": (lambda d: bool(d.drift), lambda d, p: plot_drift(d.drift, d.limits, p)),
}

STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1000px; color: #222; }
nav a { margin-right: 1.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
img { max-width: 100%; } .empty { color: #777; font-style: italic; }
"""


def render(data: StatusData, generated_at: datetime) -> str:
    """The page's HTML (plots referenced under plots/)."""
    stamp = generated_at.strftime("%Y%m%dT%H%M%S")
    sections = [
        ("Availability", availability_section(data, stamp)),
        ("Online accuracy per model version", accuracy_section(data, stamp)),
        ("Data freshness", freshness_section(data)),
        ("Drift", drift_section(data, stamp)),
        ("Active alerts", site.ALERTS_SLOT),
        ("Model history", models_section(data)),
    ]
    body = "".join(f"<h2>{title}</h2>\n{content}\n" for title, content in sections)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>Recommender status</title>"
        f"<style>{STYLE}</style></head><body>"
        f'<nav><a href="/">Status</a><a href="{site.DATA_DOCS_URL}">Data Docs</a>'
        f'<a href="{site.REPORTS_URL}">Model reports</a>'
        f'<a href="{site.ALERTS_URL}">Alerts (JSON)</a></nav>'
        "<h1>Recommender status</h1>"
        f"<p>Generated {fmt(generated_at)} UTC by the online_evaluation DAG. Times of the "
        "metrics are event time (the stream's clock).</p>\n"
        f"{body}</body></html>"
    )


# ------------------------------------------------------------------ write
def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(temporary path) beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the page is for anyone on the host
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def build(
    site_dir: str | Path | None = None,
    database_url: str | None = None,
    var_dir: str | Path | None = None,
) -> Path:
    """Read every source, draw the plots and write the page; the page's path."""
    cfg = settings.load()
    out = Path(site_dir) if site_dir else cfg.site_dir
    data = read_all(database_url, Path(var_dir) if var_dir else None)
    for name, (has_data, draw) in PLOTS.items():
        if has_data(data):
            write_atomic(out / site.PLOTS_DIR / name, lambda p, draw=draw: draw(data, p))
    page = render(data, datetime.now(UTC).replace(tzinfo=None))
    index = out / site.STATUS_PAGE
    write_atomic(index, lambda p: p.write_text(page, encoding="utf-8"))
    return index


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m jobs.online.status_page [--site-dir DIR]`: write the page; print its path."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--site-dir", default=None)
    args = parser.parse_args(argv)
    print(build(args.site_dir))


if __name__ == "__main__":
    main()
