"""Experiment report: report.html with PNG charts and its report.json twin, per experiment.

Written to settings.reports_dir/experiments/<name>/. The numbers come from
`jobs.online.experiment_analysis.analyse` on the user-level outcomes that
`jobs.online.experiment_outcomes` extracts from the lake (docs/experiments.md defines each).

`python -m jobs.online.experiment_report --name NAME [--window-minutes 60]`
"""

from __future__ import annotations

import argparse
import html
import json
import logging
from pathlib import Path
from typing import Any

from contracts import settings

log = logging.getLogger(__name__)

DEFINITIONS = {
    "users": "Distinct users with at least one stream line attributed to the variant.",
    "requests": "Recommendation request lines attributed to the variant (errors included).",
    "lists": "Served lists (status 200, non-empty).",
    "user_hit_rate": "Share of users with at least one list followed by a watch of a listed "
    "movie within the window; 95% Wilson interval. The primary metric, sized by the plan.",
    "online_accuracy": "Hits / lists as in online_metrics; 95% interval from the cluster "
    "bootstrap over users (a user's lists are not independent).",
    "primary": "Two-proportion z-test (pooled) on user hit rate when every arm expects at least "
    "10 hits and misses; else the cluster bootstrap's p-value.",
    "achieved_power_observed_effect": "Power of the z-test at these users if the observed rates "
    "were the truth (a function of the p-value: it says how surprising a replication would be).",
    "power_for_min_effect": "Power at these users for the plan's minimum effect.",
    "sequential": "mSPRT always-valid p-value (normal mixture, tau = the plan's minimum effect) "
    "over 20 looks in arrival order: valid however often it is read.",
}


def output_dir(name: str) -> Path:
    """Where experiment `name`'s report lives."""
    return settings.load().reports_dir / "experiments" / name


def charts(analysis: dict[str, Any], out: Path) -> list[str]:
    """Draw rates.png (per-variant rates with intervals) and sequential.png; their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(analysis["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("user_hit_rate", "online_accuracy"), strict=True):
        values = [analysis["variants"][v][metric] or 0.0 for v in names]
        cis = [analysis["variants"][v][f"{metric}_ci"] for v in names]
        low = [
            val - (ci[0] if ci[0] is not None else val) for val, ci in zip(values, cis, strict=True)
        ]
        high = [
            (ci[1] if ci[1] is not None else val) - val for val, ci in zip(values, cis, strict=True)
        ]
        ax.bar(names, values, yerr=[low, high], capsize=6, color="steelblue")
        ax.set_title(f"{metric.replace('_', ' ')} (95% interval)")
    fig.tight_layout()
    fig.savefig(out / "rates.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for v, comparison in analysis["comparisons"].items():
        path = comparison["sequential"]["path"]
        ax.plot([p["users"] for p in path], [p["p_value"] for p in path], marker="o", label=v)
    ax.axhline(analysis["alpha"], color="red", linestyle="--", label="alpha")
    ax.set_yscale("log")
    ax.set_xlabel("users seen (arrival order)")
    ax.set_title(f"always-valid p-value (mSPRT) vs control {analysis['control']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "sequential.png", dpi=90)
    plt.close(fig)
    return ["rates.png", "sequential.png"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _variants_html(analysis: dict[str, Any]) -> str:
    cols = ["users", "planned_users", "requests", "lists", "hits", "user_hit_rate",
            "online_accuracy"]  # fmt: skip
    head = "".join(f"<th>{c}</th>" for c in ["variant", *cols])
    rows = ""
    for v, s in analysis["variants"].items():
        cells = [_fmt(s[c] if s[c] is not None else "-") for c in cols]
        for i, metric in ((5, "user_hit_rate"), (6, "online_accuracy")):
            low, high = s[f"{metric}_ci"]
            if low is not None:
                cells[i] += f" [{low:.4f}, {high:.4f}]"
        rows += f"<tr><td>{_fmt(v)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return f"<table><tr>{head}</tr>{rows}</table>"


def _comparison_html(variant: str, c: dict[str, Any]) -> str:
    p, acc, seq = c["primary"], c["online_accuracy"], c["sequential"]
    return (
        f"<h2>{_fmt(variant)} vs control</h2><p><b>{_fmt(c['verdict'])}</b></p><ul>"
        f"<li>user hit rate difference {p['difference']:+.4f} [{p['low']:+.4f}, "
        f"{p['high']:+.4f}], {p['method']} p = {p['p_value']:.4g} (bootstrap p = "
        f"{c['user_hit_rate']['bootstrap']['p_value']:.4g})</li>"
        f"<li>online accuracy difference {acc['difference']:+.4f} [{acc['low']:+.4f}, "
        f"{acc['high']:+.4f}], cluster bootstrap p = {acc['p_value']:.4g}</li>"
        f"<li>achieved power for the observed effect {_fmt(c['achieved_power_observed_effect'])}"
        f"; power for the plan's minimum effect {_fmt(c['power_for_min_effect'])}</li>"
        f"<li>always-valid p-value (mSPRT, tau {seq['tau']:g}) {seq['p_value']:.4g}</li></ul>"
    )


def write_report(
    exp: dict[str, Any], analysis: dict[str, Any], notes: dict[str, Any], out: Path
) -> Path:
    """report.json, report.html and the charts into `out`; return `out`."""
    out.mkdir(parents=True, exist_ok=True)
    images = charts(analysis, out)
    report = {
        "experiment": {
            "name": exp["experiment_id"],
            "active": exp["active"],
            "started_at": exp["started_at"],
            "ended_at": exp["ended_at"],
            "variants": {
                v.variant: {"reco_version": v.reco_version, "share": v.share}
                for v in exp["variants"]
            },  # fmt: skip
        },
        "data": notes,
        "analysis": analysis,
        "definitions": DEFINITIONS,
        "charts": images,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    peeking = (
        "<p><b>Peeking:</b> read before every arm reached its planned users; use the "
        "always-valid p-value.</p>"
        if analysis["peeking"]
        else ""
    )
    comparisons = "".join(_comparison_html(v, c) for v, c in analysis["comparisons"].items())
    imgs = "".join(f'<p><img src="{n}" alt="{n}"></p>' for n in images)
    defs = "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS.items())
    name = html.escape(exp["experiment_id"])
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Experiment {name}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:12px}}dt{{font-weight:bold}}</style>
</head><body><h1>Experiment {name}</h1>
<p>Control {_fmt(analysis["control"])}; plan {_fmt(analysis["plan"] or "none")}; stream span
{_fmt(notes.get("span"))}; users dropped (seen in two arms) {_fmt(notes.get("dropped_users"))}.
Machine-readable twin: report.json.</p>{peeking}
{_variants_html(analysis)}{comparisons}{imgs}
<h2>Definitions</h2><dl>{defs}</dl></body></html>"""
    (out / "report.html").write_text(page)
    return out


def run(
    name: str,
    window_minutes: int = 60,
    database_url: str | None = None,
    out_dir: str | Path | None = None,
) -> str:
    """Extract experiment `name`'s outcomes from the lake, analyse them, write the report;
    return the report directory."""
    from jobs.ingest import lake
    from jobs.online import experiment_outcomes, predictions
    from jobs.online.experiment_analysis import analyse
    from jobs.publish import experiments
    from jobs.spark import get_spark

    exp = experiments.describe(name, database_url)
    if exp is None:
        raise ValueError(f"no experiment named {name!r}")
    snapshots = [r.path for r in lake.accepted_snapshots(database_url=database_url)]
    spark = get_spark("experiment_report", shuffle_partitions=4)
    outcomes, notes = experiment_outcomes.lake_outcomes(
        spark, snapshots, predictions.batch_dirs(), exp, window_minutes
    )
    notes["window_minutes"] = window_minutes
    analysis = analyse(outcomes, exp["plan"], exp["planned_users"], exp["control"])
    out = write_report(exp, analysis, notes, Path(out_dir) if out_dir else output_dir(name))
    log.info("experiment report for %s: %s", name, out)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--window-minutes", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = run(args.name, args.window_minutes)
    verdicts = json.loads((Path(out) / "report.json").read_text())["analysis"]["comparisons"]
    for variant, comparison in verdicts.items():
        print(f"{variant}: {comparison['verdict']}")
    print(json.dumps({"report": str(Path(out) / "report.html")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
