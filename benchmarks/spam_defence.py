"""The spam defence measured against the simulator's ledger (bench_spam_defence and its test).

One *world run* = the simulator's stream (seed, days, `rating_spam` rate and attack size) into
a fresh Kafka topic, taken into a private lake by jobs.ingest.snapshot (not registered), with
the ledger's spam accounts and attacked movies. `measure` then:
1. runs the detector (jobs.train.detect) on that snapshot: precision and recall of the flagged
   accounts against the ledger's;
2. builds three datasets of the same snapshot: *undefended* (all events), *defended* (the
   detection's accounts excluded, as train_and_publish does) and *clean* (the ledger's accounts
   excluded: the stream of the same seed without the attack, since the attack's accounts are
   fresh and its draws come after each window's sessions are resolved; `clean_is_unattacked`
   checks this against a run with rating_spam = 0);
3. fits the published configurations on each (popularity over the last 30 days, the list
   unknown users are served; item_knn and svd_surprise refitted on every interaction) and
   reads the attacked movie's place in the lists scored for the regular users.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, USER_COL, K

START = "2025-03-01"
SPAM_RE = re.compile(rb"GET /rate/([a-z0-9+]+)=")
MODELS = {
    "popularity": {"window_days": 30},
    "item_knn": {"neighbours": 50, "shrink": 10.0},
    "svd_surprise": {"n_factors": 20, "n_epochs": 20},
}


@dataclass(frozen=True)
class WorldRun:
    """A simulated stream in a private lake and its ground truth."""

    snapshot: Path
    spam_accounts: frozenset[int]
    attacked: tuple[str, ...]
    lines: int


def simulate_into_lake(
    kafka: str,
    topic: str,
    lake: Path,
    *,
    scale: str = "tiny",
    days: int = 7,
    seed: int = 42,
    spam_rate: float = 0.0,
    spam_accounts: tuple[int, int] | None = None,
) -> WorldRun:
    """The stream into `topic`, one snapshot of it into `lake`, and the ledger's truth."""
    from contracts.kafka import create_topic
    from jobs.ingest import snapshot
    from simulator.faults import Ledger
    from simulator.generator import SPAM_ACCOUNTS, Simulation
    from simulator.sinks import KafkaSink, pump
    from simulator.world import World

    ledger = Ledger(None)
    faults = {"rating_spam": spam_rate} if spam_rate else {}
    sim = Simulation(
        World(scale, seed),
        START,
        faults=faults,
        ledger=ledger,
        spam_accounts=spam_accounts or SPAM_ACCOUNTS,
    )
    create_topic(kafka, topic)
    sink = KafkaSink(kafka, topic)
    try:
        lines = pump(sim.batches(days), sink, desc=topic)
    finally:
        sink.close()
    taken = snapshot.ingest(topic=topic, root=lake, bootstrap=kafka, register=False)
    accounts, attacked = ledger_truth(ledger.records)
    return WorldRun(Path(taken.path), accounts, attacked, lines)


def ledger_truth(records: list[dict]) -> tuple[frozenset[int], tuple[str, ...]]:
    """(the spam accounts, the attacked movie ids) of a ledger's records."""
    spam = [r for r in records if r["kind"] == "rating_spam"]
    accounts = frozenset(int(r["user_id"]) for r in spam)
    movies = set()
    for r in spam:
        line = r.get("line") or base64.b64decode(r["line_b64"])
        movies.add(SPAM_RE.search(line).group(1).decode())
    return accounts, tuple(sorted(movies))


def clean_is_unattacked(
    scale: str, days: int, seed: int, spam_rate: float, spam_accounts: tuple[int, int]
) -> bool:
    """Whether the attacked stream minus its ledger's spam lines is, line for line, the stream
    of the same seed without the attack (what makes the ledger exclusion a clean run). Times
    are compared to the second: in an attack window the extra draws change which lines are
    written with milliseconds (MS_FRACTION), not what happens."""
    from simulator.faults import Ledger
    from simulator.generator import Simulation
    from simulator.world import World

    def lines(rate: float) -> tuple[list, Ledger]:
        ledger = Ledger(None)
        faults = {"rating_spam": rate} if rate else {}
        sim = Simulation(
            World(scale, seed), START, faults=faults, ledger=ledger, spam_accounts=spam_accounts
        )
        return [v for b in sim.batches(days) for v in b.values], ledger

    def to_second(line: str) -> str:
        stamp, rest = line.split(",", 1)
        return f"{stamp[:19]},{rest}"

    attacked, ledger = lines(spam_rate)
    spam = {base64.b64decode(r["line_b64"]).decode() for r in ledger.records}
    clean, _ = lines(0.0)
    kept = [to_second(v) for v in attacked if v not in spam]
    return bool(spam) and kept == [to_second(v) for v in clean]


def precision_recall(flagged: set[int], truth: frozenset[int]) -> dict[str, Any]:
    """Precision and recall of the flagged accounts against the ledger's, with the counts."""
    hits = len(flagged & truth)
    return {
        "flagged": len(flagged),
        "spam": len(truth),
        "true_positives": hits,
        "precision": hits / len(flagged) if flagged else (1.0 if not truth else 0.0),
        "recall": hits / len(truth) if truth else 1.0,
    }


def write_exclusion(out: Path, users: frozenset[int]) -> Path:
    """A detection-shaped directory listing `users` (the ledger's truth: the clean dataset)."""
    from jobs.train import detect

    accounts = pd.DataFrame({USER_COL: sorted(users)})
    accounts = accounts.reindex(columns=detect.ACCOUNT_COLUMNS)
    record = {
        "detection_id": out.name,
        "detector_version": "ledger (ground truth)",
        "flagged": len(users),
        "attacked_movies": [],
        "accounts_file": str(out / detect.ACCOUNTS_FILE),
    }
    movies = pd.DataFrame(columns=detect.MOVIE_COLUMNS)
    return detect.write_detection(out, accounts, movies, record)


def build_datasets(run: WorldRun, work: Path, detection: Path, spark) -> dict[str, Path]:
    """undefended / defended / clean datasets of the run's snapshot."""
    from jobs.train import dataset

    clean = write_exclusion(work / "ledger-exclusion", run.spam_accounts)
    exclusions = {"undefended": None, "defended": detection, "clean": clean}
    return {
        name: dataset.build_dataset(
            [run.snapshot], work / f"ds-{name}", window_days=None, spark=spark, exclusion=excl
        )
        for name, excl in exclusions.items()
    }


def movie_places(lists: pd.DataFrame, movie: str, users: np.ndarray) -> dict[str, Any]:
    """Where `movie` is in the users' top-K lists: how many have it, its mean rank there."""
    rows = lists[(lists[ITEM_COL] == movie) & lists[USER_COL].isin(users)]
    return {
        "users_with_it": int(rows[USER_COL].nunique()),
        "users": len(users),
        "mean_rank": float(rows["rank"].mean()) if len(rows) else None,
    }


def popularity_rank(model, movie: str) -> int | None:
    """The movie's rank in the popularity model's whole ordering (None: never seen)."""
    where = np.flatnonzero(model.item_ids == movie)
    return int(where[0]) + 1 if len(where) else None


def served_places(
    dataset_path: Path, movies: tuple[str, ...], users: np.ndarray, models: dict[str, dict]
) -> dict:
    """Per model configuration and attacked movie: its place in the lists for `users`."""
    from jobs.models import families
    from jobs.train import dataset

    interactions = dataset.load_interactions(dataset_path)
    out: dict[str, Any] = {}
    for family, params in models.items():
        model = families.create(family, **params).fit(interactions)
        lists = model.recommend(users, k=K)
        for movie in movies:
            place = movie_places(lists, movie, users)
            if family == "popularity":
                place["rank"] = popularity_rank(model, movie)
            out[f"{family}/{movie}"] = place
    return out


def regular_users(run: WorldRun, dataset_path: Path) -> np.ndarray:
    """The users the lists are read for: everyone in the dataset but the spam accounts."""
    from jobs.train import dataset

    users = dataset.load_interactions(dataset_path)[USER_COL].unique()
    return np.array(sorted(set(users.tolist()) - run.spam_accounts), dtype=np.int64)


def measure(
    run: WorldRun, work: Path, spark, models: dict[str, dict] | None = None
) -> dict[str, Any]:
    """Detection quality and the attacked movies' places with and without the defence."""
    from jobs.train import detect

    detection = detect.run([run.snapshot], work / "detection")
    flagged = set(detect.flagged_users(detection))
    paths = build_datasets(run, work, detection, spark)
    users = regular_users(run, paths["clean"])
    return {
        "detection": precision_recall(flagged, run.spam_accounts),
        "attacked": list(run.attacked),
        "detected_movies": detect.read_detection(detection)["attacked_movies"],
        "places": {
            name: served_places(p, run.attacked, users, models or MODELS)
            for name, p in paths.items()
        },
        "exclusion": dataset_exclusion(paths["defended"]),
        "datasets": {name: str(p) for name, p in paths.items()},
    }


def dataset_exclusion(path: Path) -> dict[str, Any] | None:
    """The defended dataset manifest's `exclusion` record."""
    from jobs.train import dataset

    return dataset.read_manifest(path).get("exclusion")


# ------------------------------------------------------------------ through real gunicorn
SERVED_FAMILY = "svd_surprise"  # the family the attack moves most (bench table)
UNKNOWN_USER = 10**6  # ids from here on are unknown to every model: the popular list


def publish_lists(dataset_path: Path, name: str, users: np.ndarray, url: str) -> str:
    """SERVED_FAMILY's lists for `users` and the popularity list, fitted on the dataset and
    published into the database at `url` (audited first); the reco version."""
    from jobs.models import families
    from jobs.publish import publish
    from jobs.train import dataset

    interactions = dataset.load_interactions(dataset_path)
    model = families.create(SERVED_FAMILY, **MODELS[SERVED_FAMILY]).fit(interactions)
    lists = model.recommend(users, k=K).sort_values([USER_COL, "rank"])
    rows = [(int(u), g[ITEM_COL].tolist()) for u, g in lists.groupby(USER_COL)]
    version = f"spam-{name}"
    publish.load_recommendations(rows, version, f"{SERVED_FAMILY}-{name}", url)
    publish.audit(version, expected_users=len(rows), url=url)
    publish.publish(version, url)
    popular = families.create("popularity", **MODELS["popularity"]).fit(interactions)
    window_end = pd.Timestamp(interactions["event_time"].max()).to_pydatetime()
    items = popular.top(K)[ITEM_COL].tolist()
    publish.publish_popular(items, window_end, url, popular_version=f"pop-{name}")
    return version


def serving_now(client, user: int, version: str, popular_version: str) -> bool:
    """Whether the server answers `user` from `version` and unknown users from the popular
    list `popular_version` (the pointer is re-read every SERVING_REFRESH_S)."""
    known = client.get(f"/recommend/{user}")[1].get("X-Reco-Version") == version
    unknown = client.get(f"/recommend/{UNKNOWN_USER}")[1].get("X-Model-Version")
    return known and unknown == popular_version


def served_counts(client, users: list[int], movies: tuple[str, ...]) -> dict[str, int]:
    """GET /recommend for each user: how many answers hold an attacked movie."""
    answers = [client.get(f"/recommend/{u}")[2].split(",") for u in users]
    return {"asked": len(users), "with_attacked": sum(bool(set(a) & set(movies)) for a in answers)}


def served_through_gunicorn(
    paths: dict[str, Path], run: WorldRun, users: np.ndarray, sample: int = 60
) -> dict[str, Any]:
    """Per dataset: publish its lists to a throwaway Postgres, serve them with real gunicorn,
    and count the answers holding an attacked movie for a sample of regular users and of
    unknown users (who get the popularity list)."""
    from tests.support.harness import Client, PrivateDatabase, ServingProcess, wait_for

    known = [int(u) for u in np.random.default_rng(0).choice(users, sample, replace=False)]
    unknown = [UNKNOWN_USER + i for i in range(sample)]
    db, server, out = PrivateDatabase().create(), None, {}
    try:
        for name, path in paths.items():
            version = publish_lists(path, name, users, db.owner_url)
            server = server or ServingProcess(db.reader_url).start()
            client = Client(server.base_url)
            check = functools.partial(serving_now, client, known[0], version, f"pop-{name}")
            wait_for(check, 30, f"gunicorn serving {version}")
            out[name] = {
                "known": served_counts(client, known, run.attacked),
                "unknown": served_counts(client, unknown, run.attacked),
            }
            client.close()
    finally:
        if server is not None:
            server.stop()
        db.destroy()
    return out
