"""Provenance of a served recommendation: which list, model, code and data answered a request.

1. The request's row is read from the lake table `predictions` (jobs/online/predictions.py),
   by request id, or as a user's latest answer at or before a time.
2. `sql/provenance/recommendation.sql` joins, in Postgres, what that row names: the reco
   version, the model registry row (or, for a popularity answer, the popularity list and the
   evaluated baseline behind it), the evaluated twin of a refit, the experiment of its
   variant, and the training snapshots (offsets, Parquet files with their hashes) from the
   dataset manifest stored with the model.
3. The artifact's and the snapshot files' SHA-256 are recomputed and compared.

    python -m jobs.online.provenance --request ID [--json]
    python -m jobs.online.provenance --user 42 --at 2025-03-14T12:00:00Z [--json]

Exit status: 0 found and every hash matches; 1 found, but a file changed or is gone;
2 no such request (or no answer to that user by then).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.db import connect, read_sql
from contracts.names import REQUEST_ID_COL, TIME_COL, USER_COL
from jobs.online import predictions

QUERY = "provenance/recommendation.sql"
# psql's quoted variable, :'name', becomes a psycopg2 parameter: one file serves both.
_PSQL_VARIABLE = re.compile(r":'([a-z_]+)'")
NOT_FOUND, CHANGED = 2, 1
REMOVED = "removed by retention"


class NotFound(LookupError):
    """No prediction row answers the question (unknown request id, or no answer by then)."""


# ------------------------------------------------------------------ the lake row
def prediction_files(root: str | Path | None = None) -> list[Path]:
    """Every Parquet part of the complete batches of the `predictions` table."""
    return sorted(p for d in predictions.table_dirs(root) for p in d.rglob("*.parquet"))


def find_prediction(
    request_id: str | None = None,
    user_id: int | None = None,
    at: datetime | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """The prediction row of `request_id`, or `user_id`'s latest answer at or before `at`."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    files = prediction_files(root)
    if not files:
        raise NotFound("the lake table `predictions` has no batch yet (ingest the log first)")
    table = ds.dataset([str(f) for f in files], schema=predictions.SCHEMA, format="parquet")
    if request_id is not None:
        where = pc.field(REQUEST_ID_COL) == request_id
        missing = f"no request {request_id!r} in the lake table `predictions`"
    else:
        where = (pc.field(USER_COL) == user_id) & (pc.field(TIME_COL) <= pc.scalar(at))
        missing = f"no answer to user {user_id} at or before {at.isoformat()}"
    rows = table.to_table(filter=where).to_pylist()
    if not rows:
        raise NotFound(missing)
    # A client may reuse an id: the latest answer is the one asked about; say how many.
    rows.sort(key=lambda r: (r[TIME_COL], r[predictions.FILE_COL], r[predictions.LINE_COL]))
    return {**rows[-1], "matching_rows": len(rows)}


# ------------------------------------------------------------------ Postgres
def bind_psql(text: str) -> str:
    """The psql file with each :'name' as a %(name)s parameter."""
    return _PSQL_VARIABLE.sub(r"%(\1)s", text)


def lookup(row: dict[str, Any], database_url: str | None = None) -> dict[str, Any]:
    """The SQL file's one row for a prediction row, as a dict of its columns."""
    params = {
        "model_version": row["model_version"],
        "reco_version": row["reco_version"] or "",
        "user_id": row[USER_COL],
        "event_time": row[TIME_COL],
    }
    conn = connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(bind_psql(read_sql(QUERY)), params)
            names = [c.name for c in cur.description]
            return dict(zip(names, cur.fetchone(), strict=True))
    finally:
        conn.close()


# ------------------------------------------------------------------ recomputed hashes
def check_artifact(model: dict[str, Any] | None) -> dict[str, Any] | None:
    """The artifact's recorded and recomputed SHA-256, and whether they match."""
    from jobs.train import registry

    if model is None:
        return None
    path = Path(model["artifact_path"])
    removed = model.get("artifact_removed_at")  # retention's mark (jobs/publish/retention.py)
    now = registry.artifact_sha256(path) if path.exists() and not removed else None
    return {
        "path": str(path),
        "sha256": model["artifact_sha256"],
        "sha256_now": now,
        "state": REMOVED if removed else _state(model["artifact_sha256"], now),
        "removed_at": removed,
    }


def check_snapshots(snapshots: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Each training snapshot with its files' recomputed SHA-256 beside the manifest's."""
    from jobs.ingest import lake

    checked = []
    for snap in snapshots or []:
        files = []
        for entry in snap.get("files") or []:
            path = Path(snap["path"]) / entry["path"]
            now = lake.sha256_file(path) if path.is_file() else None
            files.append({**entry, "sha256_now": now, "state": _state(entry["sha256"], now)})
        checked.append({**snap, "files": files})
    return checked


def _state(recorded: str | None, now: str | None) -> str:
    if now is None:
        return "missing"
    return "matches" if now == recorded else "changed"


def code_state(commit: str | None) -> dict[str, Any]:
    """A recorded commit as {commit, dirty}: '+dirty' marks uncommitted tracked changes."""
    if not commit or commit == "unknown":
        return {"commit": commit, "dirty": None}
    return {"commit": commit.removesuffix("+dirty"), "dirty": commit.endswith("+dirty")}


# ------------------------------------------------------------------ the report
def explain(
    request_id: str | None = None,
    user_id: int | None = None,
    at: datetime | None = None,
    database_url: str | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """The whole provenance of one served answer (the module docstring's three steps)."""
    row = find_prediction(request_id, user_id, at, root)
    found = lookup(row, database_url)
    model, evaluated = found["model"], found["evaluated"]
    snapshots = check_snapshots(found["snapshots"])
    artifact = check_artifact(model)
    states = [artifact["state"]] if artifact else []
    states += [f["state"] for s in snapshots for f in s["files"]]
    return {
        "request": _jsonable(row),
        "served": served_part(row, found),
        "popular": popular_part(found["popular"]),
        "model": model_part(model, artifact),
        "evaluated": evaluated and _pick(evaluated, EVALUATED_FIELDS),
        "data": data_part(model, snapshots),
        "all_hashes_match": bool(states) and all(s == "matches" for s in states),
        "hashes_checked": len(states),
    }


def served_part(row: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """How the answer was served: source, variant, fallback, versions, the stored list."""
    stored = found["stored_items"]
    reco = found["reco"] or {}
    return {
        "source": row["source"],
        "variant": row["variant"],
        "fallback_reason": row["fallback_reason"],
        "model_version": row["model_version"],
        "reco_version": row["reco_version"],
        "reco_status": reco.get("status"),
        "reco_published_at": reco.get("published_at"),
        "experiment": found["experiment"],
        "stored_list": "gone" if stored is None else _same(stored, row["items"]),
    }


def _same(stored: str, served: list[str]) -> str:
    return "matches" if stored.split(",") == list(served) else "differs"


def popular_part(popular: dict[str, Any] | None) -> dict[str, Any] | None:
    """The popularity list behind a popularity or cache answer, with its code state."""
    if popular is None:
        return None
    keys = ("popular_version", "window_end", "created_at", "baseline_version", "dataset_path")
    return {
        **{k: popular.get(k) for k in keys},
        "code": code_state(popular.get("git_commit")),
        "library_versions": popular.get("library_versions"),
    }


MODEL_FIELDS = (
    "model_version",
    "family",
    "status",
    "status_reason",
    "hyperparameters",
    "evaluated_as",
    "trained_on",
    "library_versions",
    "dataset_path",
    "created_at",
)
OFFLINE_SHOWN = ("protocol", "ndcg_at_20", "users", "test_units")  # the rest: --json
EVALUATED_FIELDS = ("model_version", "family", "status", "hyperparameters", "trained_on")


def model_part(model: dict[str, Any] | None, artifact: dict[str, Any] | None) -> dict | None:
    """The registry row's provenance fields, its code state and its checked artifact."""
    if model is None:
        return None
    metrics = model.get("metrics") or {}
    return {
        **_pick(model, MODEL_FIELDS),
        "code": code_state(model.get("git_commit")),
        "offline": metrics.get("offline") or _pick(metrics, ("ndcg_at_20", "users")),
        "artifact": artifact,
    }


def data_part(model: dict[str, Any] | None, snapshots: list[dict[str, Any]]) -> dict | None:
    """The dataset (id, window, counts) and its snapshots with offsets and checked files."""
    if model is None:
        return None
    manifest = model.get("dataset_manifest") or {}
    return {
        "dataset_id": manifest.get("dataset_id"),
        "dataset_path": model.get("dataset_path"),
        "window": manifest.get("window"),
        "counts": manifest.get("counts"),
        "exclusion": manifest.get("exclusion"),
        "snapshots": snapshots,
    }


def _pick(row: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: row.get(k) for k in keys}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


# ------------------------------------------------------------------ text
def render(report: dict[str, Any]) -> str:
    """The report as text for a person: served, popular list, model, data, verdict."""
    lines = _served_lines(report["request"], report["served"])
    lines += _popular_lines(report["popular"])
    title = "baseline" if report["popular"] else "model"
    lines += _model_lines(report["model"], report["evaluated"], title)
    lines += _data_lines(report["data"])
    verdict = (
        f"every recomputed hash matches ({report['hashes_checked']} checked)"
        if report["all_hashes_match"]
        else f"SOME FILES CHANGED OR ARE GONE (see 'changed', 'missing', '{REMOVED}' above)"
    )
    return "\n".join([*lines, f"verdict    {verdict}"])


def _served_lines(request: dict[str, Any], served: dict[str, Any]) -> list[str]:
    how = {
        "model": "the model's precomputed list",
        "popular": "popularity fallback (no personal list for this user)",
        "cache": "in-process popularity copy (the database did not answer)",
    }[served["source"]]
    lines = [
        f"request    {request['request_id']} at {request['event_time']} for user "
        f"{request['user_id']} ({request['matching_rows']} matching row(s); "
        f"log {request['log_file']} line {request['line_no']})",
        f"served     source={served['source']}: {how}",
        f"           variant={served['variant'] or '-'} "
        f"fallback_reason={served['fallback_reason'] or '-'} "
        f"latency={request['latency_ms']} ms",
        f"           model_version={served['model_version']} "
        f"reco_version={served['reco_version'] or '-'}"
        + (f" ({served['reco_status']})" if served["reco_status"] else ""),
        f"           stored list for this user now: {served['stored_list']}",
    ]
    if served["experiment"]:
        lines.append(f"           experiment {json.dumps(served['experiment'], default=str)}")
    return lines


def _popular_lines(popular: dict[str, Any] | None) -> list[str]:
    if popular is None:
        return []
    lines = [
        f"popular    {popular['popular_version']} (window end {popular['window_end']}), "
        f"published by code {_code(popular['code'])}",
    ]
    if popular["baseline_version"]:
        lines.append(
            f"           = the configuration of {popular['baseline_version']} fitted on every "
            f"interaction of {popular['dataset_path']}"
        )
    else:
        lines.append("           (published before lists recorded their baseline and dataset)")
    return lines


def _model_lines(
    model: dict[str, Any] | None, evaluated: dict[str, Any] | None, title: str
) -> list[str]:
    if model is None:
        return [f"{title:<10} not in the registry"]
    artifact = model["artifact"]
    trained = model["trained_on"] or {}
    lines = [
        f"{title:<10} {model['model_version']} (family {model['family']}, {model['status']})",
        f"           hyperparameters {json.dumps(model['hyperparameters'], sort_keys=True)}",
        f"           trained on {trained.get('part', '?')}: {trained.get('rows', '?')} rows, "
        f"{trained.get('users', '?')} users, newest event {trained.get('newest_event', '?')}",
        f"           code {_code(model['code'])}",
        "           libraries "
        + ", ".join(f"{k} {v}" for k, v in sorted((model["library_versions"] or {}).items())),
        f"           artifact {artifact['path']}",
        f"             sha256 {artifact['sha256']}: {artifact['state']}",
    ]
    if evaluated:
        lines.append(
            f"           refit of {evaluated['model_version']} (evaluated on "
            f"{(evaluated['trained_on'] or {}).get('part', '?')}); offline "
            f"{json.dumps(_pick(model['offline'] or {}, OFFLINE_SHOWN), default=str)}"
        )
    return lines


def _data_lines(data: dict[str, Any] | None) -> list[str]:
    if data is None:
        return []
    window = data["window"] or {}
    lines = [
        f"data       dataset {data['dataset_id']} ({data['dataset_path']})",
        f"           window {window.get('start')} .. {window.get('newest_event')}, "
        f"counts {json.dumps(data['counts'], sort_keys=True)}",
        _exclusion_line(data.get("exclusion")),
    ]
    for snap in data["snapshots"]:
        offsets = " ".join(
            f"p{p}=[{a},{b})" for p, (a, b) in sorted((snap["offsets"] or {}).items())
        )
        lines.append(
            f"  snapshot {snap['snapshot_id']} ({snap['status'] or 'not registered'}) "
            f"topic {snap['topic']} offsets {offsets}"
        )
        lines += [
            f"    {f['path']} {f['rows']} rows sha256 {f['sha256'][:16]}…: {f['state']}"
            for f in snap["files"]
        ]
    return lines


def _exclusion_line(exclusion: dict[str, Any] | None) -> str:
    if not exclusion:
        return "           spam exclusion: none (built without a detection)"
    return (
        f"           spam exclusion: {exclusion['flagged']} accounts flagged by "
        f"{exclusion['detector_version']} ({exclusion['detection_id']}), attacked movies "
        f"{exclusion['attacked_movies']}, list {exclusion['accounts_file']}"
    )


def _code(code: dict[str, Any]) -> str:
    if code["dirty"] is None:
        return str(code["commit"] or "unknown")
    return f"{code['commit']} ({'dirty' if code['dirty'] else 'clean'})"


# ------------------------------------------------------------------ command line
def parse_time(text: str) -> datetime:
    """An ISO-8601 time; one without an offset is UTC (the log's clock)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """`--request ID` or `--user U --at TIME`; text, or JSON with --json; exit code as above."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", help="the request id (X-Request-ID, or the server's)")
    parser.add_argument("--user", type=int, help="a user id, with --at")
    parser.add_argument("--at", type=parse_time, help="ISO time: the user's latest answer then")
    parser.add_argument("--json", action="store_true", help="one JSON object, for machines")
    parser.add_argument("--lake", default=None, help="lake directory (default: settings)")
    args = parser.parse_args(argv)
    if (args.request is None) == (args.user is None or args.at is None):
        parser.error("give --request ID, or --user U with --at TIME")
    try:
        report = explain(args.request, args.user, args.at, root=args.lake)
    except NotFound as exc:
        print(f"provenance: {exc}", file=sys.stderr)
        return NOT_FOUND
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0 if report["all_hashes_match"] else CHANGED


if __name__ == "__main__":
    sys.exit(main())
