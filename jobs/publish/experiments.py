"""A/B experiment admin: start, stop and show the experiment the serving tier routes by.

`python -m jobs.publish.experiments start --name NAME --variant a=RECO_VERSION:0.5 \
--variant b=…:0.5`
`python -m jobs.publish.experiments stop [--name NAME]` · `python -m jobs.publish.experiments show`

Servers pick a change up within seconds (their pointer refresh). A user's variant is a stable
hash of (salt, user id) over the variants' shares, so it is the same in every process.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from dataclasses import dataclass

import psycopg2

from contracts.db import connect
from jobs.publish.publish import ATTACHED, check_version, query

_VARIANT = re.compile(r"([A-Za-z0-9_-]{1,32})=([^:]+):([0-9.]+)", re.ASCII)
SHARE_TOLERANCE = 1e-6


class ExperimentError(RuntimeError):
    """An experiment change was refused; the message says why."""


@dataclass(frozen=True)
class VariantSpec:
    """One arm: its name, the reco version it serves and its share of traffic."""

    variant: str
    reco_version: str
    share: float


def parse_variant(text: str) -> VariantSpec:
    """'name=RECO_VERSION:share' → VariantSpec, or ValueError saying what is wrong."""
    match = _VARIANT.fullmatch(text)
    if not match:
        raise ValueError(f"variant {text!r} must look like name=RECO_VERSION:share (e.g. a=v1:0.5)")
    name, version, share = match.groups()
    value = float(share)
    if not 0 <= value <= 1:
        raise ValueError(f"variant {name}: share {value} is outside 0..1")
    return VariantSpec(name, check_version(version), value)


def validate(variants: list[VariantSpec]) -> None:
    """Distinct names, shares summing to 1, at least one variant: else ValueError."""
    if not variants:
        raise ValueError("an experiment needs at least one --variant")
    names = [v.variant for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names repeat: {names}")
    total = sum(v.share for v in variants)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValueError(f"variant shares sum to {total:g}, not 1")


def start(
    name: str,
    variants: list[VariantSpec],
    salt: str | None = None,
    url: str | None = None,
    replace: bool = False,
) -> str:
    """Create and activate experiment `name` (one transaction); return its salt."""
    validate(variants)
    salt = salt or secrets.token_hex(8)
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("experiments", "lock"))
            cur.execute(query("experiments", "active"))
            active = cur.fetchone()
            if active and not replace:
                raise ExperimentError(f"experiment {active[0]} is active; stop it first")
            cur.execute(query("experiments", "exists"), (name,))
            if cur.fetchone():
                raise ExperimentError(f"an experiment named {name} already exists")
            for v in variants:
                cur.execute(query("experiments", "version_status"), (v.reco_version,))
                row = cur.fetchone()
                if row is None or row[0] not in ATTACHED:
                    state = row[0] if row else "unknown"
                    raise ExperimentError(
                        f"variant {v.variant}: {v.reco_version} is {state}, not audited"
                    )
            cur.execute(query("experiments", "end_active"))
            cur.execute(query("experiments", "insert"), (name, salt))
            cur.executemany(
                query("experiments", "insert_variant"),
                [(name, v.variant, v.reco_version, v.share) for v in variants],
            )
        conn.commit()
    finally:
        conn.close()
    return salt


def stop(name: str | None = None, url: str | None = None) -> str | None:
    """Deactivate the active experiment (only if it is `name`, when given); return its id."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("experiments", "stop"), (name, name))
            row = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    return row[0] if row else None


def show(url: str | None = None) -> list[dict]:
    """The recent experiments with their variants, newest first."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("experiments", "recent"))
            rows = cur.fetchall()
        conn.rollback()
    finally:
        conn.close()
    out: dict[str, dict] = {}
    for exp_id, active, salt, started, ended, variant, version, share in rows:
        entry = out.setdefault(
            exp_id,
            {
                "experiment_id": exp_id,
                "active": active,
                "salt": salt,
                "started_at": started,
                "ended_at": ended,
                "variants": [],
            },
        )
        if variant is not None:
            entry["variants"].append(VariantSpec(variant, version, share))
    return list(out.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.publish.experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("start", help="start an experiment")
    st.add_argument("--name", required=True)
    st.add_argument("--variant", action="append", default=[], metavar="NAME=VERSION:SHARE")
    st.add_argument("--salt", help="hash salt (default: random, stored with the experiment)")
    st.add_argument("--replace", action="store_true", help="stop the active experiment first")
    sp = sub.add_parser("stop", help="stop the active experiment")
    sp.add_argument("--name")
    sub.add_parser("show", help="list experiments")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            variants = [parse_variant(v) for v in args.variant]
            salt = start(args.name, variants, args.salt, replace=args.replace)
            print(f"started {args.name} (salt {salt})")
        elif args.command == "stop":
            stopped = stop(args.name)
            print(f"stopped {stopped}" if stopped else "no active experiment")
        else:
            for exp in show():
                flag = "ACTIVE" if exp["active"] else "ended "
                arms = ", ".join(
                    f"{v.variant}={v.reco_version}:{v.share:g}" for v in exp["variants"]
                )
                print(f"{flag} {exp['experiment_id']:24} started {exp['started_at']:%F %T}  {arms}")
    except (ExperimentError, ValueError, psycopg2.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
