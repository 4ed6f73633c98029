"""The popularity list kept on disk beside the server, in one format for both writers.

The pipeline writes it each time it publishes a popularity list, and every serving worker
rewrites it when it sees a newer one. A server that starts while the database is down answers
unknown and known users alike from it (`X-Rec-Source: cache`) instead of with nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_fallback(path: Path, version: str, items: str) -> None:
    """Store `items` (the served 'id1,…,idn' text) of popularity list `version`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"version": version, "items": items}))
    os.replace(tmp, path)


def read_fallback(path: Path) -> tuple[str, str] | None:
    """(version, items) of the stored list, or None when there is no usable one."""
    try:
        data = json.loads(Path(path).read_text())
        version, items = str(data["version"]), str(data["items"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (version, items) if items else None
