"""Re-admit a quarantined snapshot after an operator has inspected it.

Validation quarantines a snapshot when any expectation fails (its reasons are in Postgres
`snapshots.reasons` and in the Data Docs). When inspection shows the data is fine (a planned
traffic spike, a catalogue launch that looks like drift), this command accepts it: it records
who, why and when in `snapshot_readmissions` and sets the status to `accepted` in the same
statement, so training reads it from the next run on. Only a `quarantined` snapshot can be
re-admitted; anything else is refused with its current status.

    python -m jobs.ingest.readmit s000042 --reason "launch-day spike, checked by hand" [--by NAME]
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from contracts import db
from jobs.ingest import lake

log = logging.getLogger(__name__)


class NotQuarantined(ValueError):
    """The snapshot is not registered, or its status is not `quarantined`."""


@dataclass(frozen=True)
class Readmission:
    """One re-admission as recorded: the snapshot, who, why, when and what validation said."""

    snapshot_id: str
    readmitted_by: str
    reason: str
    readmitted_at: datetime
    quarantine_reasons: str | None


def readmit(
    snapshot_id: str, reason: str, by: str | None = None, database_url: str | None = None
) -> Readmission:
    """Accept a quarantined snapshot and record who re-admitted it, why and when."""
    reason, by = reason.strip(), (by or getpass.getuser()).strip()
    if not reason or not by:
        raise ValueError("a re-admission needs a reason and an operator name")
    params = {"snapshot_id": snapshot_id, "by": by, "reason": reason}
    with db.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(db.read_sql("ingest/readmit.sql"), params)
        row = cur.fetchone()
    conn.close()
    if row is None:
        current = lake.snapshot_row(snapshot_id, database_url)
        status = current["status"] if current else "not registered"
        if current and current.get("removed_at"):
            status = f"removed by retention on {current['removed_at']:%Y-%m-%d}"
        raise NotQuarantined(f"snapshot {snapshot_id} is {status}; only quarantined ones")
    log.warning("snapshot %s re-admitted by %s: %s (was: %s)", snapshot_id, by, reason, row[2])
    return Readmission(snapshot_id, by, reason, row[1], row[2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot_id")
    parser.add_argument("--reason", required=True, help="why it is safe to train on")
    parser.add_argument("--by", help="operator name (default: the OS user)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        done = readmit(args.snapshot_id, args.reason, args.by)
    except NotQuarantined as exc:
        print(str(exc))
        return 2
    print(json.dumps(asdict(done), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
