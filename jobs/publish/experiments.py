"""A/B experiment admin: start, stop, show and status of the experiment the serving tier routes by.

`python -m jobs.publish.experiments start --name NAME --variant a=RECO_VERSION:0.5 \
--variant b=…:0.5 [--baseline-rate 0.3 --min-effect 0.02 --alpha 0.05 --power 0.8]`
`python -m jobs.publish.experiments stop [--name NAME]` · `… show` · `… status [--name NAME]`
`python -m jobs.publish.experiments shadow --version VERSION` · `… shadow --stop` · `… shadow`

A variant's (or the shadow's) VERSION is a reco version, or a model version of the registry:
its lists (`reco-<model version>`) are then scored and published for it first when they do not
exist yet (loaded, audited and attached, never served: jobs.pipeline.stage_model).

Start is refused unless the name is new, the shares sum to 1 and every version is audited or
published (`publish.ATTACHED`: loaded, checked and attached, so the server can read it). It
records the plan: the users each arm needs for a two-sided two-proportion z-test of the user
hit rate, every variant against the first (the control), sized from the baseline rate, the
minimum effect of interest, α and power (jobs/online/experiment_analysis.py). `status` shows
the users each arm has reached against that plan.

Servers pick a change up within seconds (their pointer refresh). A user's variant is a stable
hash of (salt, user id) over the variants' shares, so it is the same in every process.

A shadow is an attached reco version that is never served: for each served request the server
looks up what the shadow would have answered and logs it beside the answer (shadow_version,
shadow_items). At most one is active; it may not be the live version nor an experiment's arm.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from dataclasses import dataclass

import psycopg2

from contracts.db import connect
from jobs.online.experiment_analysis import Plan, sample_size
from jobs.publish.publish import ATTACHED, check_version, query, read_rows

_VARIANT = re.compile(r"([A-Za-z0-9_-]{1,32})=([^:]+):([0-9.]+)", re.ASCII)
SHARE_TOLERANCE = 1e-6
# Used when `start` is given no plan: a 2-point lift on a 30 % user hit rate (docs/experiments.md
# says where to take a real baseline from: the control's rate in the last report).
DEFAULT_PLAN = Plan(baseline_rate=0.3, min_effect=0.02)


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


def planned_users(variants: list[VariantSpec], plan: Plan) -> dict[str, int]:
    """Users each arm needs: every other variant against the first (the control), at the
    shares' ratio; the control needs the most any comparison asks of it (0: no comparison)."""
    control, *others = variants
    planned = {control.variant: 0}
    for v in others:
        if v.share == 0 or control.share == 0:
            planned[v.variant] = 0
            continue
        n_control, n_variant = sample_size(plan, ratio=v.share / control.share)
        planned[v.variant] = n_variant
        planned[control.variant] = max(planned[control.variant], n_control)
    return planned


def start(
    name: str,
    variants: list[VariantSpec],
    salt: str | None = None,
    url: str | None = None,
    replace: bool = False,
    plan: Plan = DEFAULT_PLAN,
) -> str:
    """Create and activate experiment `name` with its plan (one transaction); return its salt.
    A variant naming a model version gets that model's lists (scored and published first when
    missing, `resolve_version`)."""
    variants = [
        VariantSpec(v.variant, resolve_version(v.reco_version, url), v.share) for v in variants
    ]
    validate(variants)
    planned = planned_users(variants, plan)
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
            _record_plan(cur, name, variants[0].variant, plan, planned)
        conn.commit()
    finally:
        conn.close()
    return salt


def resolve_version(version: str, url: str | None = None) -> str:
    """The reco version to route (or shadow) for `version`: itself when it is a reco version
    or unknown (then refused by the caller); for a model version of the registry, its lists,
    scored and published (attached, not served) first when they do not exist yet."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("experiments", "version_status"), (version,))
            if cur.fetchone() is not None:
                return version
            cur.execute(query("experiments", "model_exists"), (version,))
            is_model = cur.fetchone() is not None
        conn.rollback()
    finally:
        conn.close()
    if not is_model:
        return version
    from jobs import pipeline

    return pipeline.stage_model(version, url)


def _record_plan(cur, name: str, control: str, plan: Plan, planned: dict[str, int]) -> None:
    cur.execute(
        query("experiments", "record_plan"),
        (control, plan.baseline_rate, plan.min_effect, plan.alpha, plan.power, name),
    )
    cur.executemany(
        query("experiments", "record_planned_users"),
        [(users, name, variant) for variant, users in planned.items()],
    )


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
    rows = read_rows(query("experiments", "recent"), (), url)
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


def describe(name: str | None = None, url: str | None = None) -> dict | None:
    """Experiment `name` (default: the active one) with its plan and variants; None if absent."""
    rows = read_rows(query("experiments", "one"), (name, name), url)
    if not rows:
        return None
    exp_id, active, salt, started, ended, control, base, effect, alpha, power_ = rows[0][:10]
    plan = Plan(base, effect, alpha, power_) if base is not None else None
    return {
        "experiment_id": exp_id,
        "active": active,
        "salt": salt,
        "started_at": started,
        "ended_at": ended,
        "control": control or rows[0][10],
        "plan": plan,
        "variants": [VariantSpec(r[10], r[11], r[12]) for r in rows],
        "planned_users": {r[10]: r[13] for r in rows if r[13] is not None},
    }


def status(name: str | None = None, url: str | None = None) -> dict | None:
    """`describe` plus, per variant, the users the prediction log has served so far."""
    from jobs.online.experiment_outcomes import users_so_far

    exp = describe(name, url)
    if exp is None:
        return None
    served = users_so_far(exp)
    exp["progress"] = {
        v.variant: {
            "users": served.get(v.variant, 0),
            "planned_users": exp["planned_users"].get(v.variant),
            "share_of_plan": served.get(v.variant, 0) / exp["planned_users"][v.variant]
            if exp["planned_users"].get(v.variant)
            else None,
        }
        for v in exp["variants"]
    }
    return exp


def start_shadow(version: str, url: str | None = None) -> str:
    """Run `version` (a reco or model version, see `resolve_version`) in shadow from now on,
    replacing any active shadow (one transaction); the reco version shadowed."""
    reco_version = resolve_version(check_version(version), url)
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            # Conflicts with retire's share lock: retire either sees this shadow or went first.
            cur.execute(query("experiments", "shadow_lock"))
            cur.execute(query("versions", "lock"), (reco_version,))
            row = cur.fetchone()
            if row is None or row[0] not in ATTACHED:
                state = row[0] if row else "unknown"
                raise ExperimentError(f"shadow: {reco_version} is {state}, not audited")
            cur.execute(query("experiments", "shadow_live"))
            if reco_version in {r[0] for r in cur.fetchall()}:
                raise ExperimentError(
                    f"shadow: {reco_version} is served (live or in the active experiment)"
                )
            cur.execute(query("experiments", "shadow_end"))
            cur.execute(query("experiments", "shadow_insert"), (reco_version,))
        conn.commit()
    finally:
        conn.close()
    return reco_version


def stop_shadow(url: str | None = None) -> str | None:
    """End the active shadow; the reco version it shadowed (None: there was none)."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("experiments", "shadow_end"))
            row = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    return row[0] if row else None


def active_shadow(url: str | None = None) -> dict | None:
    """The active shadow (reco_version, model_version, started_at), or None."""
    rows = read_rows(query("experiments", "shadow_active"), (), url)
    if not rows:
        return None
    return dict(zip(("reco_version", "model_version", "started_at"), rows[0], strict=True))


def shadow_deployment(reco_version: str, url: str | None = None) -> dict | None:
    """The latest shadow deployment of `reco_version` (active, started_at, ended_at), or None."""
    rows = read_rows(query("experiments", "shadow_one"), (reco_version,), url)
    if not rows:
        return None
    return dict(zip(("reco_version", "active", "started_at", "ended_at"), rows[0], strict=True))


def print_status(exp: dict) -> None:
    """The plan and each arm's progress, as `status` prints them."""
    flag = "ACTIVE" if exp["active"] else "ended"
    started = f"{exp['started_at']:%F %T}"
    print(f"{exp['experiment_id']} ({flag}, started {started}), control {exp['control']}")
    plan = exp["plan"]
    if plan:
        print(
            f"plan: baseline user hit rate {plan.baseline_rate:g}, minimum effect "
            f"{plan.min_effect:+g}, alpha {plan.alpha:g}, power {plan.power:g}"
        )
    for v in exp["variants"]:
        row = exp["progress"][v.variant]
        done = (
            f"{100 * row['share_of_plan']:.0f}%" if row["share_of_plan"] is not None else "no plan"
        )
        print(
            f"  {v.variant:10} {v.reco_version:36} share {v.share:<5g} users {row['users']:>8} "
            f"/ {row['planned_users'] or '-':>8}  {done}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.publish.experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("start", help="start an experiment")
    st.add_argument("--name", required=True)
    st.add_argument("--variant", action="append", default=[], metavar="NAME=VERSION:SHARE")
    st.add_argument("--salt", help="hash salt (default: random, stored with the experiment)")
    st.add_argument("--replace", action="store_true", help="stop the active experiment first")
    st.add_argument("--baseline-rate", type=float, default=DEFAULT_PLAN.baseline_rate)
    st.add_argument("--min-effect", type=float, default=DEFAULT_PLAN.min_effect)
    st.add_argument("--alpha", type=float, default=DEFAULT_PLAN.alpha)
    st.add_argument("--power", type=float, default=DEFAULT_PLAN.power)
    sp = sub.add_parser("stop", help="stop the active experiment")
    sp.add_argument("--name")
    sub.add_parser("show", help="list experiments")
    ss = sub.add_parser("status", help="the plan and each arm's users so far")
    ss.add_argument("--name", help="default: the active experiment")
    sh = sub.add_parser("shadow", help="run a version in shadow (logged, never served)")
    which = sh.add_mutually_exclusive_group()
    which.add_argument("--version", help="a reco version, or a model version to score for it")
    which.add_argument("--stop", action="store_true", help="end the active shadow")
    args = parser.parse_args(argv)
    try:
        if args.command == "shadow":
            return _shadow_command(args)
        if args.command == "start":
            variants = [parse_variant(v) for v in args.variant]
            plan = Plan(args.baseline_rate, args.min_effect, args.alpha, args.power)
            salt = start(args.name, variants, args.salt, replace=args.replace, plan=plan)
            print(f"started {args.name} (salt {salt})")
            print_status(status(args.name))
        elif args.command == "stop":
            stopped = stop(args.name)
            print(f"stopped {stopped}" if stopped else "no active experiment")
        elif args.command == "status":
            exp = status(args.name)
            if exp is None:
                print("no such experiment" if args.name else "no active experiment")
                return 1
            print_status(exp)
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


def _shadow_command(args: argparse.Namespace) -> int:
    """`shadow --version V` starts, `shadow --stop` ends, `shadow` shows the active one."""
    if args.version:
        print(f"shadowing {start_shadow(args.version)} (logged beside every answer, never served)")
    elif args.stop:
        stopped = stop_shadow()
        print(f"stopped shadow {stopped}" if stopped else "no active shadow")
    else:
        shadow = active_shadow()
        if shadow is None:
            print("no active shadow")
            return 1
        print(
            f"shadow {shadow['reco_version']} (model {shadow['model_version']}), "
            f"since {shadow['started_at']:%F %T}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
