"""Model cards: one HTML + JSON page per published model, generated from what the platform
already recorded, and its path kept in the model's registry row (`model_card`).

A card says: what the model is for and not for; what it was trained on (the dataset's window,
counts and snapshots, with the provenance pointers of docs/provenance.md); how it was
evaluated (the dataset's protocol, the evaluated twin's metrics overall and by group); the
fairness measures of docs/responsible-ml.md (the newest stored offline and online results);
the gate's decision on its evaluated twin; and its known limitations, fixed ones and those the
numbers show (violated requirements, groups too small to judge).

    python -m jobs.train.model_card [--model VERSION]
"""

from __future__ import annotations

import argparse
import html
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contracts import settings, site
from contracts.names import METRIC

log = logging.getLogger(__name__)

INTENDED_USE = (
    "Ranks up to 20 unseen movies for each known user of the streaming service, precomputed in "
    "batch and served by key lookup at GET /recommend/<user id>. For suggesting what to watch "
    "next, nothing more."
)
NOT_FOR = (
    "Decisions about people (credit, employment, eligibility), inferring a user's age, gender "
    "or occupation, users the training window never saw (they get the popularity list), or "
    "ranking movies for catalogue purchasing."
)
LIMITATIONS = (
    "Trained on implicit watching and explicit ratings only: it learns what the service already "
    "showed, so popular movies are over-represented (docs/responsible-ml.md, feedback loops).",
    "Offline figures are from a time-split test of users with training history; cold-start "
    "users and movies are outside them.",
    "Group figures use the demographics the metadata API reports; users without them are "
    "'unknown' and never judged.",
    "Online accuracy counts a watch of a listed movie within 60 minutes; it cannot tell a watch "
    "the list caused from one that would have happened anyway.",
)
PROVENANCE_DOC = "docs/provenance.md"


def cards_dir() -> Path:
    """reports_dir/responsible/model_cards: where the cards are written and served from."""
    return settings.load().reports_dir / site.RESPONSIBLE_DIR / site.MODEL_CARDS_DIR


def training_data(row: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> dict[str, Any]:
    """The training data section: dataset, window, counts, snapshots, provenance pointers."""
    manifest = manifest or {}
    return {
        "dataset": Path(str(row["dataset_path"])).name,
        "dataset_path": str(row["dataset_path"]),
        "window": manifest.get("window"),
        "counts": manifest.get("counts"),
        "strength": manifest.get("strength"),
        "trained_on": row.get("trained_on"),
        "snapshots": [s.get("snapshot_id") for s in manifest.get("snapshots", [])],
        "provenance": {
            "doc": PROVENANCE_DOC,
            "how": "python -m jobs.online.provenance --request ID (or --user U --at TIME) traces "
            "a served list to this model, its git commit, artifact hash and these snapshots' "
            "Kafka offsets and files",
            "git_commit": row.get("git_commit"),
            "artifact_sha256": row.get("artifact_sha256"),
        },
    }


def evaluation(
    row: Mapping[str, Any], evaluated: Mapping[str, Any] | None, manifest: Mapping | None
) -> dict[str, Any]:
    """Protocol and results overall and by group, from the evaluated twin's registry row."""
    metrics = dict((evaluated or row).get("metrics") or {})
    by_group = metrics.pop("by_group", {})
    overall = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    manifest = manifest or {}
    return {
        "evaluated_as": (evaluated or row)["model_version"],
        "metric": METRIC,
        "protocol": manifest.get("evaluation"),
        "split": (manifest.get("split") or {}).get("rule"),
        "overall": overall,
        "by_group": by_group,
    }


def known_limitations(fairness: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fixed limitations plus what the stored fairness results show."""
    found = list(LIMITATIONS)
    for result in fairness:
        found += [f"Fairness requirement violated: {v}" for v in result.get("violations", [])]
        for grouping, q in result.get("quality", {}).items():
            small = [
                label for label, g in q["groups"].items() if g["units"] < q.get("min_units", 0)
            ]
            if small:
                found.append(
                    f"{result['source']}: {grouping} groups {', '.join(small)} have fewer than "
                    f"{q['min_units']} users or lists and are not judged"
                )
    return found


def card(
    row: Mapping[str, Any],
    evaluated: Mapping[str, Any] | None,
    manifest: Mapping[str, Any] | None,
    gate: Mapping[str, Any] | None,
    fairness: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The model card of one registry row, as JSON-ready data."""
    return {
        "model_version": row["model_version"],
        "family": row["family"],
        "hyperparameters": row.get("hyperparameters"),
        "status": row["status"],
        "status_reason": row.get("status_reason"),
        "created_at": str(row.get("created_at")),
        "intended_use": INTENDED_USE,
        "not_for": NOT_FOR,
        "training_data": training_data(row, manifest),
        "evaluation": evaluation(row, evaluated, manifest),
        "fairness": list(fairness),
        "gate": dict(gate) if gate else None,
        "limitations": known_limitations(fairness),
        "library_versions": row.get("library_versions"),
    }


def _table(mapping: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in mapping.items()
    )
    return f"<table>{rows}</table>"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return _table(value)
    if isinstance(value, list | tuple):
        return html.escape(", ".join(map(str, value)))
    return html.escape(str(value))


def groups_html(by_group: Mapping[str, Any]) -> str:
    """One table per grouping: each label's users and NDCG@20."""
    parts = []
    for grouping, labels in by_group.items():
        rows = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{g.get('users')}</td>"
            f"<td>{_value(g.get(METRIC))}</td></tr>"
            for label, g in labels.items()
        )
        parts.append(
            f"<h3>by {html.escape(grouping)}</h3><table><tr><th>group</th><th>users</th>"
            f"<th>{METRIC}</th></tr>{rows}</table>"
        )
    return "".join(parts) or "<p>No breakdown recorded.</p>"


def _ratio(value: float | None) -> str:
    return "not judged" if value is None else f"{value:.3f}"


def fairness_html(results: Sequence[Mapping[str, Any]]) -> str:
    """Each stored result: the worst/best ratios and exposure shares with their verdicts."""
    if not results:
        return "<p>Not measured yet (the responsible_ml DAG measures every published model).</p>"
    items = []
    for r in results:
        ratios = "; ".join(
            f"{g}: {_ratio(q['ratio'])} (≥ {q['limit']})" for g, q in r["quality"].items()
        )
        ex = r.get("exposure") or {}
        shares = ", ".join(
            f"{kind} {ex[f'{kind}_share']:.3f} (≥ {ex[f'{kind}_limit']})"
            for kind in ("long_tail", "new_movie")
            if ex.get(f"{kind}_share") is not None
        )
        broken = "; ".join(r.get("violations", [])) or "none"
        items.append(
            f"<li><b>{html.escape(r['source'])}</b>: worst/best {html.escape(ratios)}; exposure "
            f"{html.escape(shares or 'not measured')}; violations: {html.escape(broken)}</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def card_html(data: Mapping[str, Any]) -> str:
    """The card as a self-contained HTML page."""
    ev, gate = data["evaluation"], data["gate"]
    gate_text = (
        f"{'PASSED' if gate['passed'] else 'REJECTED'} (fairness mode: "
        f"{gate.get('fairness_mode') or 'none, decided before the fairness rule'}): "
        f"{gate['reason']}"
        if gate
        else "no gate decision recorded for its evaluated twin"
    )
    limitations = "".join(f"<li>{html.escape(x)}</li>" for x in data["limitations"])
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>Model card {html.escape(data['model_version'])}</title>"
        "<style>td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
        "table{border-collapse:collapse}</style></head><body>"
        '<p><a href="../index.html">Responsible ML</a></p>'
        f"<h1>Model card: {html.escape(data['model_version'])}</h1>"
        f"<p>{html.escape(data['family'])} · status {html.escape(data['status'])} "
        f"({html.escape(str(data['status_reason']))})</p>"
        f"<h2>Intended use</h2><p>{html.escape(data['intended_use'])}</p>"
        f"<p>Not for: {html.escape(data['not_for'])}</p>"
        f"<h2>Training data</h2>{_table(data['training_data'])}"
        f"<h2>Evaluation</h2><p>Evaluated as {html.escape(ev['evaluated_as'])}; split: "
        f"{html.escape(str(ev['split']))}</p>{_table(ev['protocol'] or {})}"
        f"<h3>Overall</h3>{_table(ev['overall'])}{groups_html(ev['by_group'])}"
        f"<h2>Fairness</h2>{fairness_html(data['fairness'])}"
        f"<h2>Gate decision</h2><p>{html.escape(gate_text)}</p>"
        f"<h2>Known limitations</h2><ul>{limitations}</ul>"
        f"<h2>Hyperparameters and libraries</h2>{_table(data['hyperparameters'] or {})}"
        f"{_table(data['library_versions'] or {})}</body></html>"
    )


def gate_of(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The gate decision of the run that evaluated this model (None: none names it)."""
    from jobs import pipeline

    path = pipeline.run_dir(row["dataset_path"]) / pipeline.DECISION_FILE
    if not path.exists():
        return None
    decision = json.loads(path.read_text())
    evaluated = row["evaluated_as"] or row["model_version"]
    return decision if evaluated in (decision.get("candidate"), decision.get("publish")) else None


def write(data: Mapping[str, Any], out: Path) -> Path:
    """<version>.json and <version>.html in `out`; the JSON path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{data['model_version']}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    path.with_suffix(".html").write_text(card_html(data))
    return path


def record(model_version: str, path: Path, database_url: str | None = None) -> None:
    """Keep the card's path in the model's registry row."""
    from contracts import db

    conn = db.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                db.read_sql("responsible/set_model_card.sql"),
                {"path": str(path), "model": model_version},
            )
    finally:
        conn.close()


def build(row: Mapping[str, Any], database_url: str | None = None) -> Path:
    """Generate, write and register one model's card; the JSON path."""
    from jobs.online import fairness
    from jobs.train import dataset, registry

    evaluated = registry.get(row["evaluated_as"], database_url) if row["evaluated_as"] else None
    try:
        manifest = dataset.read_manifest(row["dataset_path"])
    except FileNotFoundError:  # removed by retention: the card says what the registry kept
        manifest = row.get("dataset_manifest")
    data = card(row, evaluated, manifest, gate_of(row), fairness.stored(row["model_version"]))
    path = write(data, cards_dir())
    record(row["model_version"], path, database_url)
    return path


def build_all(database_url: str | None = None) -> list[str]:
    """A card for every published model (production now, or retired); their JSON paths."""
    from jobs.online import fairness

    return [str(build(row, database_url)) for row in fairness.published_models(database_url)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="one model version (default: all published)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.model:
        from jobs.train import registry

        print(build(registry.get(args.model)))
    else:
        print(json.dumps(build_all()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
