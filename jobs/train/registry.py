"""Model registry in Postgres (sql/schema/030_registry.sql): register, get, list, set_status.

A model version is `<family>-<YYYYmmddHHMMSS of the newest training event>-<hash8>`, hash8 =
the first 8 hex digits of sha256 over (artifact sha256, hyperparameters, dataset id): the same
model trained on the same data gets the same name (registering again updates its metrics),
and the name never comes from the wall clock.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from contracts import provenance
from contracts.db import connect

STATUSES = ("candidate", "production", "rejected", "retired")
COLUMNS = (
    "model_version",
    "family",
    "hyperparameters",
    "metrics",
    "dataset_manifest",
    "dataset_path",
    "data_newest_event",
    "git_commit",
    "library_versions",
    "artifact_path",
    "artifact_sha256",
    "training_seconds",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "evaluated_as",
    "trained_on",
)
JSON_COLUMNS = (
    "hyperparameters",
    "metrics",
    "dataset_manifest",
    "library_versions",
    "trained_on",
)


def artifact_sha256(path: str | Path) -> str:
    """sha256 over an artifact directory: each file's relative path and bytes, in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        digest.update(b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def make_version(
    family: str, newest_event: datetime, sha256: str, params: dict[str, Any], dataset_id: str
) -> str:
    """`<family>-<YYYYmmddHHMMSS newest data>-<hash8>` (deterministic, see module docstring)."""
    key = json.dumps(
        {"sha256": sha256, "params": params, "dataset": dataset_id}, sort_keys=True, default=str
    )
    return f"{family}-{newest_event:%Y%m%d%H%M%S}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def register(
    model_version: str,
    family: str,
    hyperparameters: dict[str, Any],
    metrics: dict[str, Any],
    dataset_manifest: dict[str, Any],
    dataset_path: str | Path,
    artifact_path: str | Path,
    artifact_sha256: str,
    training_seconds: float,
    data_newest_event: datetime | None = None,
    database_url: str | None = None,
    *,
    evaluated_as: str | None = None,
    trained_on: dict[str, Any] | None = None,
) -> str:
    """Insert a candidate (or refresh metrics of the same version); return model_version.

    A refit names the evaluated version it reproduces (`evaluated_as`); `trained_on` records
    which part of the dataset the artifact was fitted on.
    """
    from psycopg2 import sql
    from psycopg2.extras import Json

    row = {
        "model_version": model_version,
        "family": family,
        "hyperparameters": Json(hyperparameters),
        "metrics": Json(metrics),
        "dataset_manifest": Json(dataset_manifest),
        "dataset_path": str(dataset_path),
        "data_newest_event": data_newest_event,
        "git_commit": provenance.git_commit(),
        "library_versions": Json(provenance.library_versions()),
        "artifact_path": str(artifact_path),
        "artifact_sha256": artifact_sha256,
        "training_seconds": float(training_seconds),
        "evaluated_as": evaluated_as,
        "trained_on": Json(trained_on or {}),
    }
    names = sql.SQL(", ").join(map(sql.Identifier, row))
    values = sql.SQL(", ").join(map(sql.Placeholder, row))
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO model_registry ({}) VALUES ({}) "
                "ON CONFLICT (model_version) DO UPDATE SET metrics = EXCLUDED.metrics, "
                "training_seconds = EXCLUDED.training_seconds, git_commit = EXCLUDED.git_commit, "
                "library_versions = EXCLUDED.library_versions, updated_at = now()"
            ).format(names, values),
            row,
        )
    conn.close()
    return model_version


def set_status(
    model_version: str, status: str, reason: str | None = None, database_url: str | None = None
) -> dict[str, Any]:
    """Set a version's status (with a reason); promoting retires the old production atomically."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("LOCK TABLE model_registry IN SHARE ROW EXCLUSIVE MODE")
        cur.execute("SELECT 1 FROM model_registry WHERE model_version = %s", (model_version,))
        if cur.fetchone() is None:
            raise KeyError(f"no model version {model_version!r} in the registry")
        if status == "production":
            promote_in(cur, model_version, reason, f"replaced by {model_version}")
        else:
            _set_in(cur, model_version, status, reason)
    conn.close()
    return get(model_version, database_url)


def _set_in(cur, model_version: str, status: str, reason: str | None) -> None:
    cur.execute(
        "UPDATE model_registry SET status = %s, status_reason = %s, updated_at = now() "
        "WHERE model_version = %s",
        (status, reason, model_version),
    )


def promote_in(cur, model_version: str | None, reason: str | None, retired_reason: str) -> bool:
    """On the caller's transaction: retire the production model (unless it is `model_version`)
    and make `model_version` production; True when it is a registered version.

    Publish and rollback call it with the pointer switch, so the registry's production model
    is always the one served. An unregistered (or None) version leaves no production model.
    """
    cur.execute("LOCK TABLE model_registry IN SHARE ROW EXCLUSIVE MODE")
    cur.execute(
        "UPDATE model_registry SET status = 'retired', updated_at = now(), "
        "status_reason = %s WHERE status = 'production' AND model_version IS DISTINCT FROM %s",
        (retired_reason, model_version),
    )
    cur.execute("SELECT 1 FROM model_registry WHERE model_version = %s", (model_version,))
    if cur.fetchone() is None:
        return False
    _set_in(cur, model_version, "production", reason)
    return True


def _rows(query: str, args: tuple, database_url: str | None) -> list[dict[str, Any]]:
    with connect(database_url) as conn, conn.cursor() as cur:
        # `query` is one of this module's own clauses; values travel as parameters.
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM model_registry {query}", args)  # noqa: S608
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]
    conn.close()
    return rows


def get(model_version: str, database_url: str | None = None) -> dict[str, Any]:
    """One registry row as a dict (KeyError when absent)."""
    rows = _rows("WHERE model_version = %s", (model_version,), database_url)
    if not rows:
        raise KeyError(f"no model version {model_version!r} in the registry")
    return rows[0]


def production(database_url: str | None = None) -> dict[str, Any] | None:
    """The production model's row, or None when nothing has been promoted yet."""
    rows = _rows("WHERE status = 'production'", (), database_url)
    return rows[0] if rows else None


def list_versions(
    status: str | None = None, family: str | None = None, database_url: str | None = None
) -> list[dict[str, Any]]:
    """Registry rows, newest first, optionally filtered by status and/or family."""
    where, args = [], []
    if status:
        where.append("status = %s")
        args.append(status)
    if family:
        where.append("family = %s")
        args.append(family)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return _rows(f"{clause} ORDER BY created_at DESC, model_version", tuple(args), database_url)


# `list` is the name the issue uses; list_versions avoids shadowing the builtin inside here.
list = list_versions
