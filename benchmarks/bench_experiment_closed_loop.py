"""Experiments on the closed loop (issue 15 item 5): production against popularity, production
against random lists, and an A/A, with the simulator's ground truth beside each report.

Each experiment runs on its own private platform (`demonstrate`): the report matches stream lines
to answers by user and list content over every accepted snapshot (docs/experiments.md), so two
experiments serving the same version on one platform would attribute each other's lines.
1. a fresh Kafka topic, a throwaway Postgres cluster (tests.support.harness.PrivateDatabase)
   and a private RECS_VAR_DIR; the small world's backfill (no recommender) goes into the topic
   and through jobs.pipeline as the DAGs call it: ingest_snapshot -> validate -> mark ->
   run_all (item_knn; dataset, train, evaluate, gate, refit, score, publish, popularity);
2. two more reco versions, loaded and audited, not served: the run's popularity model scored
   per user (its top-20 unseen), and random lists (a "model" with no signal);
3. the ground truth: the simulator's users (the platform never sees their hidden tastes) run
   offline over the experiment's days with every user served arm X's lists, for each arm
   (`potential_outcomes`). Session times and random draws do not depend on the lists, so these
   are the same users' potential outcomes on the same days: the true user hit rate per arm and
   the true difference. The plan (`choose_plan`): baseline = the control's true rate, minimum
   effect = MIN_EFFECT_SHARE of the true difference, over the fewest days that reach it; when
   the truth is too small for the world (and for an A/A), one day planned for the smallest
   effect its users can detect;
4. the experiment starts with that plan (jobs.publish.experiments.start), real gunicorn picks
   it up, and the simulator runs its users in closed loop against it as fast as the tier
   answers (time-compressed: a simulated day takes seconds);
5. the prediction log and the stream are ingested, `status` gives each arm's users against the
   plan and the report (jobs.pipeline.experiment_report) gives the verdict.

Run: `python -m benchmarks.bench_experiment_closed_loop [--experiments a-a] [--plots-dir DIR]`;
results in docs/experiments.md ("Demonstration on the closed loop").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.experiment_closed_loop")
START = "2025-03-01"  # the backfill's first simulated day; the experiments follow it
WINDOW_MINUTES = 60  # the report's outcome window (its default)
MIN_EFFECT_SHARE = 0.6  # plan for 60% of the true difference: its power at the truth is high
ALPHA, POWER = 0.05, 0.9
SEED = 42  # the world's seed: the CLI builds World(scale, seed) and runs it with that seed
RANDOM_MODEL = "random-lists"  # the model version the random lists are recorded under


@dataclass(frozen=True)
class Config:
    """One demonstration's size: the world, the backfill, the longest experiment allowed."""

    scale: str
    backfill_days: int
    max_days: int
    min_effect_share: float = MIN_EFFECT_SHARE
    power: float = POWER


# Only the small world: in the tiny one (100 movies) item_knn loses to popularity offline, the
# gate publishes popularity, and there is no production model to test.
CONFIGS = {"small": Config("small", backfill_days=14, max_days=5)}


@dataclass
class Platform:
    """A private platform: database, var dir, topic, serving tier and its three reco versions."""

    database: Any
    var_dir: Path
    topic: str
    server: Any = None
    production: str = ""
    popularity: str = ""
    random: str = ""
    lists: dict[str, dict[int, list[str]]] = field(default_factory=dict)  # version -> user lists
    seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ the private platform
@contextmanager
def environment(**values: str) -> Iterator[None]:
    """os.environ with `values` set (jobs read settings from it on every call), then restored."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def simulate_into(
    topic: str, scale: str, start: str, days: int, recommender: str | None = None
) -> dict:
    """`python -m simulator backfill` into `topic` (closed loop when `recommender` is given)."""
    from contracts import settings

    cmd = [
        sys.executable, "-m", "simulator", "backfill", "--scale", scale, "--days", str(days),
        "--start", start, "--seed", str(SEED), "--topic", topic,
        "--bootstrap", settings.load().kafka_bootstrap_servers,
    ]  # fmt: skip
    if recommender:
        cmd += ["--recommender", recommender]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"simulator failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ingest_stream(topic: str) -> str:
    """The movielog_ingest DAG's steps (ingest, validate, mark); the accepted snapshot id."""
    from jobs import pipeline

    snapshot = pipeline.ingest_snapshot(topic)
    if snapshot is None:
        raise RuntimeError(f"no new lines in {topic}")
    pipeline.validate_snapshot(snapshot)
    return pipeline.mark_snapshot(snapshot)


def add_popularity_version(summary: dict, url: str) -> tuple[str, str]:
    """The run's popularity model scored per user (top-20 unseen), loaded and audited as a reco
    version that an experiment can serve (not published); (reco version, scored path)."""
    import pyarrow.parquet as pq

    from jobs import pipeline
    from jobs.publish import publish
    from jobs.train import registry

    model = next(v for v in summary["models"] if registry.get(v, url)["family"] == "popularity")
    scored = pipeline.score_model(model, url)
    users = pq.ParquetDataset(scored).read(columns=["user_id"]).num_rows
    version = pipeline.reco_version_for(model)
    publish.load_and_publish(scored, version, model, users, publish_now=False, url=url)
    return version, scored


def add_random_version(platform: Platform, url: str, seed: int = 0) -> str:
    """A reco version of 20 movies drawn at random per user from every movie the two models
    list (a "model" with no signal), loaded and audited like the others."""
    import numpy as np

    from contracts.names import K
    from jobs.publish import publish

    production = platform.lists[platform.production]
    movies = sorted({m for lists in platform.lists.values() for v in lists.values() for m in v})
    rng = np.random.default_rng(seed)
    lists = {u: rng.choice(movies, K, replace=False).tolist() for u in sorted(production)}
    version = f"reco-random-lists-{seed}"
    rows = [(u, items) for u, items in lists.items()]
    publish.load_recommendations(rows, version, RANDOM_MODEL, url=url, total=len(rows))
    publish.audit(version, expected_users=len(rows), url=url)
    platform.lists[version] = lists
    return version


@contextmanager
def private_platform(config: Config, workdir: Path) -> Iterator[Platform]:
    """Backfill, pipeline, popularity version and a serving tier, all private; torn down after."""
    from contracts import settings
    from jobs import pipeline
    from ops import services
    from tests.support.harness import PrivateDatabase, ServingProcess, wait_for

    cfg = settings.load()
    topic = f"exp-loop-{uuid.uuid4().hex[:10]}"
    services.create_topic(cfg.kafka_bootstrap_servers, topic, cfg.kafka_partitions)
    database = PrivateDatabase().create()
    platform = Platform(database, workdir / "var", topic)
    env = {
        "DATABASE_URL": database.owner_url,
        "RECS_VAR_DIR": str(platform.var_dir),
        "KAFKA_TOPIC": topic,
    }
    try:
        with environment(**env):
            began = time.perf_counter()
            simulate_into(topic, config.scale, START, config.backfill_days)
            ingest_stream(topic)
            platform.seconds["backfill"] = round(time.perf_counter() - began, 1)
            began = time.perf_counter()
            summary = pipeline.run_all(["item_knn"])
            if not summary.get("reco_version"):
                raise RuntimeError(f"the gate published nothing: {summary.get('gate')}")
            if not summary["refit"].startswith("item_knn"):
                raise RuntimeError(f"production is {summary['refit']}, not item_knn")
            platform.production = summary["reco_version"]
            production = settings.load().lake_dir / "scores" / summary["refit"]
            platform.lists[platform.production] = scored_lists(production)
            platform.popularity, popular = add_popularity_version(summary, database.owner_url)
            platform.lists[platform.popularity] = scored_lists(popular)
            platform.random = add_random_version(platform, database.owner_url)
            platform.seconds["pipeline"] = round(time.perf_counter() - began, 1)
            platform.server = ServingProcess(database.reader_url, workers=2).start()
            wait_for(lambda: _variant_of(platform.server.base_url, 1) is not False, 30, "serving")
            yield platform
    finally:
        if platform.server is not None:
            platform.server.stop()
        database.destroy()
        delete_topic(cfg.kafka_bootstrap_servers, topic)


def delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result()


def serves(base_url: str, arms: dict[str, str], salt: str, users: list[int]) -> bool:
    """Whether the tier answers each of `users` (known to every arm) with the arm and version
    this experiment's salt assigns: a server still on the previous pointer would not."""
    import requests

    expected = assignment(users, salt, arms)
    for arm, members in expected.items():
        for user in members:
            resp = requests.get(f"{base_url}/recommend/{user}", timeout=2)
            got = (resp.headers.get("X-Variant"), resp.headers.get("X-Reco-Version"))
            if got != (arm, arms[arm]):
                return False
    return True


def _variant_of(base_url: str, user: int) -> str | None | bool:
    """The X-Variant the tier answers `user` with (None: none), False when it does not answer."""
    import requests

    try:
        resp = requests.get(f"{base_url}/recommend/{user}", timeout=2)
    except requests.RequestException:
        return False
    return resp.headers.get("X-Variant") if resp.status_code == 200 else False


# ------------------------------------------------------------------ the ground truth
class FixedLists:
    """Stands in for the simulator's RecommenderClient: every user gets one version's list."""

    server = "ground-truth"

    def __init__(self, lists: dict[int, list[str]], fallback: list[str]) -> None:
        self.lists, self.fallback = lists, fallback

    def ask_many(self, user_ids: list[int]) -> list:
        from simulator.loop import Answer

        return [Answer(200, self.lists.get(u, self.fallback), 0) for u in user_ids]


def scored_lists(scored_path: str | Path) -> dict[int, list[str]]:
    """Every user's list in a scored version (the rows publish loads and the server reads)."""
    from jobs.publish import score

    return {int(user): items.split(",") for user, items in score.read_rows(scored_path)}


def popular_list(base_url: str) -> list[str]:
    """The list the tier gives a user it does not know (the popularity fallback)."""
    import requests

    return requests.get(f"{base_url}/recommend/{10**9}", timeout=5).text.split(",")


def potential_outcomes(
    scale: str, start: str, days: int, lists: dict[int, list[str]], fallback: list[str]
):
    """Per user with at least one session in the period, had every user been served `lists`:
    `any` (a list followed by a watch of a listed movie within WINDOW_MINUTES), `sum` (such
    lists) and `count` (lists).

    The simulator's own run (same world, seed, start and days as the live run), so the users,
    their session times and random draws are those of the live experiment."""
    import numpy as np
    import pandas as pd

    from jobs.ingest import parse
    from simulator.generator import Simulation, collect
    from simulator.world import World

    sim = Simulation(World(scale, SEED), start, recommender=FixedLists(lists, fallback))
    _, values = collect(sim, days)
    raw = [v.encode() if isinstance(v, str) else v for v in values]
    tables = parse.parse_batch(
        raw, np.zeros(len(raw), np.int32), np.arange(len(raw), dtype=np.int64)
    )
    reco = tables["reco_request"].select(["user_id", "event_time", "result"]).to_pandas()
    watch = tables["watch"].select(["user_id", "movie_id", "event_time"]).to_pandas()
    reco["request"] = np.arange(len(reco))
    listed = reco.explode("result").rename(columns={"result": "movie_id"})
    pairs = listed.merge(watch, on=["user_id", "movie_id"], suffixes=("", "_watch"))
    after = pairs["event_time_watch"] - pairs["event_time"]
    inside = (after >= pd.Timedelta(0)) & (after <= pd.Timedelta(minutes=WINDOW_MINUTES))
    hit_requests = set(pairs.loc[inside, "request"])
    reco["hit"] = reco["request"].isin(hit_requests)
    return reco.groupby("user_id")["hit"].agg(["any", "sum", "count"])


def ground_truth(
    platform: Platform, config: Config, start: str, days: int, arms: dict[str, str]
) -> dict[str, Any]:
    """True user hit rate of each arm's version over the same users and days, and a - b."""
    fallback = popular_list(platform.server.base_url)
    by_version = {
        v: potential_outcomes(config.scale, start, days, platform.lists[v], fallback)
        for v in set(arms.values())
    }
    outcomes = {arm: by_version[v] for arm, v in arms.items()}
    rates = {arm: float(o["any"].mean()) for arm, o in outcomes.items()}
    accuracy = {arm: float(o["sum"].sum() / o["count"].sum()) for arm, o in outcomes.items()}
    users = sorted(next(iter(outcomes.values())).index)
    return {
        "rates": rates,
        "difference": rates["b"] - rates["a"],
        "online_accuracy": accuracy,
        "accuracy_difference": accuracy["b"] - accuracy["a"],
        "users": users,
        "outcomes": outcomes,
    }


def assignment(users: list[int], salt: str, arms: dict[str, str]) -> dict[str, list[int]]:
    """Which of `users` the serving tier's stable hash puts in each arm (shares 50/50)."""
    from serving import ab

    variants = [ab.Variant(name, version, "", 0.5) for name, version in arms.items()]
    out: dict[str, list[int]] = {name: [] for name in arms}
    for user in users:
        out[ab.assign(salt, user, variants).name].append(user)
    return out


def smallest_effect(baseline: float, users: int, sign: float, power: float) -> float:
    """The smallest effect (0.005 steps, direction `sign`) that `users` per arm can detect."""
    from jobs.online.experiment_analysis import Plan, sample_size

    for step in range(1, 200):
        effect = sign * step * 0.005
        if not 0 < baseline + effect < 1:
            break
        if max(sample_size(Plan(baseline, effect, ALPHA, power))) <= users:
            return round(effect, 3)
    raise RuntimeError(f"{users} users per arm detect no effect on a baseline of {baseline:.3f}")


def choose_plan(
    platform: Platform, config: Config, start: str, arms: dict[str, str], salt: str
) -> tuple[Any, int, dict[str, Any], str]:
    """(plan, days, truth, basis). Basis "truth": the fewest days whose users reach the plan for
    MIN_EFFECT_SHARE of the true difference. When no such day comes within max_days (the
    truth's difference is too small for this world), basis "capacity": one day, planned for
    the smallest effect that day's users can detect."""
    from jobs.online.experiment_analysis import Plan, sample_size

    # An A/A's true difference is 0 by construction: no day reaches a plan from it.
    longest = config.max_days if arms["a"] != arms["b"] else 0
    for days in range(1, longest + 1):
        truth = ground_truth(platform, config, start, days, arms)
        reach = {a: len(u) for a, u in assignment(truth["users"], salt, arms).items()}
        effect = round(config.min_effect_share * truth["difference"], 3)
        log.info("%d day(s): true rates %s, users %s", days, truth["rates"], reach)
        if abs(effect) < 0.005:
            continue
        plan = Plan(truth["rates"]["a"], effect, ALPHA, config.power)
        if min(reach.values()) >= max(sample_size(plan)):
            return plan, days, truth, "truth"
    truth = ground_truth(platform, config, start, 1, arms)
    reach = {a: len(u) for a, u in assignment(truth["users"], salt, arms).items()}
    sign = 1.0 if truth["difference"] > 0 else -1.0
    effect = smallest_effect(truth["rates"]["a"], min(reach.values()), sign, config.power)
    return Plan(truth["rates"]["a"], effect, ALPHA, config.power), 1, truth, "capacity"


# ------------------------------------------------------------------ one experiment
def seal_prediction_logs(server) -> None:
    """SIGHUP the gunicorn master: the old workers' files become orphans ingestion seals."""
    from tests.support.harness import wait_for

    pids = {int(f.stem.split("-")[1]) for f in server.log_dir.glob("predictions-*.jsonl")}
    if not pids:
        raise RuntimeError("the serving tier logged no predictions")
    os.kill(server.proc.pid, signal.SIGHUP)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(p) for p in pids), 30, "old workers gone", interval=0.2)


def run_experiment(
    platform: Platform,
    config: Config,
    name: str,
    arms: dict[str, str],
    start: str,
) -> dict[str, Any]:
    """Plan (from the truth unless given), start, closed loop, ingest, status, report, stop."""
    from jobs import pipeline
    from jobs.online.experiment_analysis import sample_size
    from jobs.publish import experiments
    from tests.support.harness import wait_for

    url, base = platform.database.owner_url, platform.server.base_url
    salt = f"{name}-salt"
    began = time.perf_counter()
    plan, days, truth, basis = choose_plan(platform, config, start, arms, salt)
    variants = [experiments.VariantSpec(a, v, 0.5) for a, v in arms.items()]
    experiments.start(name, variants, salt=salt, url=url, plan=plan)
    probes = sorted(platform.lists[platform.production])[:5]
    wait_for(lambda: serves(base, arms, salt, probes), 30, "the tier serving the experiment")
    planned = time.perf_counter()
    loop = simulate_into(platform.topic, config.scale, start, days, recommender=base)
    seal_prediction_logs(platform.server)
    pipeline.ingest_predictions(str(platform.server.log_dir))
    ingest_stream(platform.topic)
    live = time.perf_counter()
    status = experiments.status(name, url)
    report_dir = Path(pipeline.experiment_report(name, WINDOW_MINUTES, url))
    experiments.stop(name, url)
    done = time.perf_counter()
    report = json.loads((report_dir / "report.json").read_text())
    return {
        "name": name,
        "arms": arms,
        "days": days,
        "start": start,
        "plan": plan.__dict__,
        "planned_users": dict(zip(arms, sample_size(plan), strict=True)),
        "progress": {a: p["users"] for a, p in status["progress"].items()},
        "plan_basis": basis,
        "truth": truth_summary(truth, assignment(truth["users"], salt, arms)),
        "stream_lines": loop["lines"],
        "analysis": report["analysis"],
        "data": report.get("data"),
        "report_dir": str(report_dir),
        "seconds": {
            "plan": round(planned - began, 1),
            "closed_loop": round(live - planned, 1),
            "report": round(done - live, 1),
            "wall": round(done - began, 1),
        },
    }


def truth_summary(truth: dict[str, Any], arms: dict[str, list[int]]) -> dict[str, Any]:
    """The truth's rates, plus each arm's true rate over the users the hash put in it (what the
    report measures, up to the loop's timeouts: the same users, days and draws)."""
    summary = {k: v for k, v in truth.items() if k not in ("users", "outcomes")}
    summary["users"] = len(truth["users"])
    summary["assigned"] = {
        arm: {
            "users": len(users),
            "user_hit_rate": float(truth["outcomes"][arm].loc[users, "any"].mean()),
        }
        for arm, users in arms.items()
    }
    return summary


def _day_after(day: str, days: int) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def keep_plots(result: dict[str, Any], plots_dir: Path, prefix: str) -> list[str]:
    """Copy the report's PNGs to `plots_dir` as <prefix>-<name>.png; the copies' paths."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for png in sorted(Path(result["report_dir"]).glob("*.png")):
        target = plots_dir / f"{prefix}-{png.name}"
        shutil.copyfile(png, target)
        out.append(str(target))
    return out


# ------------------------------------------------------------------ the demonstration
# name -> (arm a's version, arm b's version), as Platform attributes.
EXPERIMENTS = {
    "prod-vs-popularity": ("production", "popularity"),
    "prod-vs-random": ("production", "random"),
    "a-a": ("production", "production"),
}


def demonstrate(
    config: Config, workdir: Path, names: tuple[str, ...], plots_dir: Path | None = None
) -> list[dict]:
    """Each named experiment on its own private platform, in order; their results.

    One platform per experiment: two experiments on one platform could attribute each other's
    stream lines (the module docstring), even with no version in common, since a user unknown
    to both gets the same popularity fallback list in each."""
    results = []
    for name in names:
        with private_platform(config, workdir / name) as platform:
            arms = {a: getattr(platform, v) for a, v in zip("ab", EXPERIMENTS[name], strict=True)}
            start = _day_after(START, config.backfill_days)
            result = run_experiment(platform, config, name, arms, start)
            result["platform_seconds"] = platform.seconds
        if plots_dir:
            result["plots"] = keep_plots(result, plots_dir, f"experiment-closed-loop-{name}")
        results.append(result)
    return results


def print_table(results: list[dict]) -> None:
    """Per experiment and arm: users against the plan, true and measured rates with intervals;
    then per experiment: the true and measured difference, the tests, the verdict, wall time."""
    print(
        f"{'experiment':20} {'arm':3} {'users':>6} {'plan':>5} {'true':>6} "
        f"{'user hit rate [95% CI]':>24} {'true':>6} {'online accuracy [95% CI]':>24}"
    )
    for r in results:
        truth = r["truth"]
        for arm, v in r["analysis"]["variants"].items():
            hit_low, hit_high = v["user_hit_rate_ci"]
            acc_low, acc_high = v["online_accuracy_ci"]
            print(
                f"{r['name']:20} {arm:3} {v['users']:>6} {r['planned_users'][arm]:>5} "
                f"{truth['assigned'][arm]['user_hit_rate']:>6.3f} "
                f"{v['user_hit_rate']:>7.3f} [{hit_low:.3f}, {hit_high:.3f}] "
                f"{truth['online_accuracy'][arm]:>6.3f} "
                f"{v['online_accuracy']:>7.3f} [{acc_low:.3f}, {acc_high:.3f}]"
            )
    print()
    print(
        f"{'experiment':20} {'days':>4} {'plan δ':>7} {'basis':>8} {'true b-a':>8} "
        f"{'b-a [95% CI]':>26} {'p':>9} {'mSPRT p':>8} {'wall s':>6}  verdict"
    )
    for r in results:
        c = r["analysis"]["comparisons"]["b"]
        p = c["primary"]
        print(
            f"{r['name']:20} {r['days']:>4} {r['plan']['min_effect']:>+7.3f} "
            f"{r['plan_basis']:>8} {r['truth']['difference']:>+8.3f} "
            f"{p['difference']:>+8.3f} [{p['low']:+.3f}, {p['high']:+.3f}] "
            f"{p['p_value']:>9.3g} {c['sequential']['p_value']:>8.3g} "
            f"{r['seconds']['wall']:>6.0f}  {c['verdict']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=sorted(CONFIGS))
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    parser.add_argument("--plots-dir", type=Path, help="copy the reports' PNGs here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from contracts import settings

    work = Path(tempfile.mkdtemp(prefix="exp-closed-loop-"))
    try:
        began = time.perf_counter()
        names = [n.strip() for n in args.experiments.split(",") if n.strip()]
        unknown = sorted(set(names) - set(EXPERIMENTS))
        if unknown:
            parser.error(f"unknown experiment(s) {unknown}; use {', '.join(EXPERIMENTS)}")
        results = demonstrate(CONFIGS[args.scale], work, tuple(names), args.plots_dir)
        total = round(time.perf_counter() - began, 1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = settings.load().var_dir / "bench" / "experiment_closed_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scale": args.scale, "total_s": total, "results": results},
                              indent=2, default=str))  # fmt: skip
    print_table(results)
    print(f"total {total:.0f} s; results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
