"""Model comparison report per training run: report.html with PNG charts and report.json twin.

Written to settings.reports_dir/<run_id>/. Input: registry rows (or dicts of the same shape:
model_version, family, hyperparameters, metrics) of the models trained in the run; the metrics
come from jobs.train.train, which measured them exactly as DEFINITIONS says.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts import settings
from contracts.names import K

GATE_MARK = "<!-- gate -->"
DEFINITIONS = {
    "users": "Distinct test users the ranking metrics average over.",
    "test_units": "(fold, user) pairs averaged over: equal to users with one global cut, more "
    "with rolling cuts, where a user can be tested after several cuts.",
    f"ndcg_at_{K}": "Mean over held-out test units (fold, user) of binary-relevance DCG@20 / "
    "ideal DCG@20; a test movie is relevant; users without recommendations count as 0 "
    "(jobs.train.metrics).",
    f"precision_at_{K}": "Mean over test users of (relevant movies in the top 20) / 20.",
    f"recall_at_{K}": "Mean over test users of (relevant movies in the top 20) / |relevant|.",
    f"map_at_{K}": "Mean over test users of average precision at 20, normalised by "
    "min(|relevant|, 20).",
    f"hit_rate_at_{K}": "Share of test users with at least one relevant movie in the top 20.",
    "catalog_coverage": "Distinct movies in any test user's top 20 / distinct training movies.",
    "popularity_bias": "Mean over recommended (user, movie) rows of the movie's popularity "
    "percentile: share of training movies with at most as many distinct training users.",
    "rmse": "Root mean squared error of predicted vs true 1..5 ratings on the test rows that "
    "carry a rating (rating models only).",
    "mae": "Mean absolute error on the same rows (rating models only).",
    "fit_seconds": "Wall-clock seconds of model.fit(train) measured with time.perf_counter in "
    "the training process, Spark work included, Spark session start-up excluded.",
    "recommend_users_per_second": "Users divided by wall seconds of one "
    "model.recommend(users, k=20, exclude_seen=True) call on the first min(2048, known users) "
    "known users sorted by ID, after one warm-up call on 16 users.",
    "disk_bytes": "Total bytes of the files model.save(dir) writes (arrays.npz + model.json).",
    "memory_bytes": "Sum of .nbytes of the numpy arrays (CSR: data + indices + indptr) held by "
    "the fitted model, i.e. the state a scoring process keeps in RAM; interpreter and library "
    "overhead excluded.",
}
ACCURACY = [
    f"ndcg_at_{K}",
    f"precision_at_{K}",
    f"recall_at_{K}",
    f"map_at_{K}",
    f"hit_rate_at_{K}",
]
COSTS = [
    ("fit_seconds", "fit time (s)", 1.0),
    ("recommend_users_per_second", "users/s", 1.0),
    ("disk_bytes", "disk (MB)", 1e6),
    ("memory_bytes", "memory (MB)", 1e6),
]


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A registry row reduced to what the report shows (JSON-serialisable)."""
    return {
        "model_version": row["model_version"],
        "family": row["family"],
        "hyperparameters": row.get("hyperparameters", {}),
        "metrics": row.get("metrics", {}),
        "status": row.get("status"),
    }


def charts(models: list[dict[str, Any]], out: Path) -> list[str]:
    """Draw accuracy.png, costs.png and groups.png; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [m["model_version"].rsplit("-", 2)[0] for m in models]
    x = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(ACCURACY)
    for n, metric in enumerate(ACCURACY):
        ax.bar(x + n * width, [m["metrics"].get(metric, 0.0) for m in models], width, label=metric)
    ax.set_xticks(x + 0.4 - width / 2, names)
    ax.set_title("Ranking accuracy on the held-out test split")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(COSTS), figsize=(12, 3.5))
    for ax, (metric, label, scale) in zip(axes, COSTS, strict=True):
        ax.bar(names, [m["metrics"].get(metric, 0.0) / scale for m in models], color="gray")
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "costs.png", dpi=90)
    plt.close(fig)

    bands = ["new", "medium", "heavy"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(models))
    for n, m in enumerate(models):
        history = m["metrics"].get("by_group", {}).get("history", {})
        ax.bar(
            np.arange(len(bands)) + n * width,
            [history.get(b, {}).get(f"ndcg_at_{K}", 0.0) for b in bands],
            width,
            label=names[n],
        )
    ax.set_xticks(np.arange(len(bands)) + 0.4 - width / 2, bands)
    ax.set_title("NDCG@20 by user history (training interactions: new <= 5 < medium <= 20 < heavy)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "groups.png", dpi=90)
    plt.close(fig)
    return ["accuracy.png", "costs.png", "groups.png"]


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits, everything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def build_report(
    run_id: str,
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path | None = None,
    dataset: dict[str, Any] | None = None,
) -> Path:
    """Write <reports_dir>/<run_id>/report.{html,json} + PNGs; return the report directory."""
    if not rows:
        raise ValueError("a report needs at least one model")
    out = Path(out_dir) if out_dir else settings.load().reports_dir / run_id
    out.mkdir(parents=True, exist_ok=True)
    models = [plain(r) for r in rows]
    baseline = next((m for m in models if m["family"] == "popularity"), None)
    base_ndcg = baseline["metrics"].get(f"ndcg_at_{K}") if baseline else None
    for m in models:
        ndcg = m["metrics"].get(f"ndcg_at_{K}")
        m["ndcg_vs_popularity"] = (ndcg / base_ndcg) if base_ndcg and ndcg is not None else None
    images = charts(models, out)
    report = {
        "run_id": run_id,
        "dataset": dataset or models[0]["metrics"].get("dataset"),
        "definitions": DEFINITIONS,
        "baseline": baseline["model_version"] if baseline else None,
        "models": models,
        "charts": images,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))

    columns = (
        ACCURACY
        + ["users", "test_units", "catalog_coverage", "popularity_bias", "rmse", "mae"]
        + [c for c, _, _ in COSTS]
    )
    table = table_html(models, columns)
    defs = "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS.items())
    params = "".join(
        f"<li>{fmt(m['model_version'])}: <code>{html.escape(json.dumps(m['hyperparameters']))}"
        "</code></li>"
        for m in models
    )
    imgs = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in images)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Model comparison {html.escape(run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:12px}}dt{{font-weight:bold}}</style>
</head><body><h1>Model comparison: {html.escape(run_id)}</h1>
<p>Baseline: {fmt(report["baseline"] or "none")}. Machine-readable twin: report.json.</p>
{protocol_html(report["dataset"])}
{table}{imgs}
{GATE_MARK}
<h2>Hyperparameters</h2><ul>{params}</ul>
<h2>Definitions (how to re-measure each number)</h2><dl>{defs}</dl></body></html>"""
    (out / "report.html").write_text(page)
    return out


def table_html(models: list[dict[str, Any]], columns: list[str]) -> str:
    """One row per model: version, family, every column, and NDCG relative to popularity."""
    head = "".join(f"<th>{c}</th>" for c in ["model_version", "family", *columns, "ndcg / pop"])
    body = "".join(
        "<tr>"
        + f"<td>{fmt(m['model_version'])}</td><td>{fmt(m['family'])}</td>"
        + "".join(f"<td>{fmt(m['metrics'].get(c, ''))}</td>" for c in columns)
        + f"<td>{fmt(m['ndcg_vs_popularity'] if m['ndcg_vs_popularity'] is not None else '')}</td>"
        + "</tr>"
        for m in models
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def protocol_html(dataset: dict[str, Any] | None) -> str:
    """One paragraph: which evaluation protocol the numbers come from, and why."""
    plan = (dataset or {}).get("evaluation") if isinstance(dataset, dict) else None
    if not plan:
        return ""
    cuts = f" Cuts: {', '.join(plan['cuts'])}." if plan.get("cuts") else ""
    return (
        f"<p>Evaluation protocol: <b>{fmt(plan['protocol'])}</b>, because "
        f"{fmt(plan.get('reason', ''))}.{fmt(cuts)} <code>users</code> = distinct test users, "
        "<code>test_units</code> = (fold, user) pairs averaged over.</p>"
    )


def fairness_line(fairness: dict[str, Any] | None) -> str:
    """The gate's fairness record in one line: each grouping's worst/best ratio, violations."""
    if not fairness:
        return "not measured"
    ratios = ", ".join(
        f"{grouping} {q['ratio']:.3f} (≥ {q['limit']})"
        if q.get("ratio") is not None
        else f"{grouping} not judged"
        for grouping, q in fairness["quality"].items()
    )
    broken = "; ".join(fairness["violations"]) or "no requirement violated"
    return fmt(f"worst/best NDCG@20 by {ratios}; {broken}")


def add_gate(out_dir: str | Path, decision: dict[str, Any]) -> Path:
    """Put the gate's decision (intervals, users) into an existing report and its JSON twin."""
    out = Path(out_dir)
    data = json.loads((out / "report.json").read_text())
    data["gate"] = decision
    (out / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True, default=str))

    def interval(name: str) -> str:
        value = decision.get(name)
        if not value:
            return "not computed"
        return (
            f"{value['estimate']:+.4f} (95% interval {value['low']:+.4f} .. {value['high']:+.4f})"
        )

    verdict = "PASSED" if decision["passed"] else "REJECTED"
    section = (
        f"<h2>Gate: {verdict}</h2><p>{fmt(decision['reason'])}</p><ul>"
        f"<li>candidate {fmt(decision['candidate'])}: {fmt(decision['candidate_score'])} over "
        f"{decision['users']} users ({decision['test_units']} test units)</li>"
        f"<li>minus popularity: {interval('vs_popularity')}</li>"
        f"<li>minus production {fmt(decision['production'] or 'none')}: "
        f"{interval('vs_production')}</li>"
        f"<li>published: {fmt(decision['publish'] or 'nothing, production stays')}</li>"
        f"<li>fairness ({fmt(decision.get('fairness_mode') or 'record')}): "
        f"{fairness_line(decision.get('fairness'))}</li></ul>"
    )
    page = (out / "report.html").read_text().replace(GATE_MARK, section)
    (out / "report.html").write_text(page)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    """Report on registered versions, or train families on a dataset first and report on them."""
    from jobs.train import registry, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--version", action="append", default=[], help="registered model version")
    parser.add_argument("--dataset", type=Path, help="train these families on it first")
    parser.add_argument("--family", action="append", default=[])
    args = parser.parse_args(argv)
    versions = list(args.version)
    if args.dataset:
        versions += [train.train(args.dataset, family) for family in args.family]
    path = build_report(args.run_id, [registry.get(v) for v in versions])
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
