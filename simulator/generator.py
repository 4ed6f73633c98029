"""Event generation: watch sessions turned into movielog lines, 15 simulated minutes at a time.

Per simulated day the generator draws who starts a session when (a daily cycle, busier
weekends, long-tailed activity). Sessions starting in a window are then resolved together
with numpy: organic candidates drawn by popularity plus, in the closed loop, the list our
recommender returned; the user picks by hidden taste; liked movies are watched to (nearly)
the end, disliked ones abandoned after a few minutes; some are rated 1-5 by taste. Each
window emits, in event-time order, every line whose time falls inside it, so a user's lines
are ordered and one user's sessions never overlap.

Two shapes of the population over time (`SHAPES`): "stable", every user active over the
whole run; "churn", each user active for days to weeks from an arrival spread over the run
(`churn_schedule`), as in real ratings logs such as MovieTweetings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from contracts.grammar import (
    MINUTE_SEP,
    RATE_PREFIX,
    RATING_SEP,
    WATCH_PREFIX,
    WATCH_SUFFIX,
    reco_event,
)
from simulator.faults import Ledger, LineFaults
from simulator.loop import RecommenderClient
from simulator.world import N_GENRES, World

MINUTE_MS = 60_000
WINDOW_MS = 15 * MINUTE_MS
DAY_MS = 86_400_000
WINDOWS_PER_DAY = DAY_MS // WINDOW_MS
N_ORGANIC = 10  # movies a user considers on their own per session
N_GENRE_ROW = 4  # of those, drawn from the "row" of the user's favourite genre (by popularity)
N_RECOMMENDED = 20
TASTE_WEIGHT = 1.6  # pull of hidden affinity on the choice
ATTENTION = 1.5  # pull of being recommended at rank 1 (fading to half at rank 20)
NEW_MOVIE_BOOST = 4.0  # exposure multiplier of a movie that arrived during the run
MS_FRACTION = 0.1  # lines whose time is written with .fff
WEEKEND_FACTOR = 1.25
# Relative session starts per hour of the day (evening peak, night trough).
HOUR_PROFILE = np.array(
    [3, 2, 1.2, 0.8, 0.6, 0.7, 1.2, 2, 2.5, 2.6, 2.8, 3.2]
    + [3.8, 3.5, 3.2, 3.3, 3.8, 4.8, 6.2, 7.6, 8.2, 7.5, 6, 4.5]
)
HOUR_P = HOUR_PROFILE / HOUR_PROFILE.sum()

SHAPES = ("stable", "churn")
# Churn: active lifetime lognormal (median, sigma) in days, clipped; arrivals drawn over the
# run's days, or over CHURN_LIVE_DAYS when it has no end (live).
CHURN_LIFETIME_MEDIAN_DAYS, CHURN_LIFETIME_SIGMA = 8.0, 0.8
CHURN_LIFETIME_DAYS = (1.0, 42.0)
CHURN_LIVE_DAYS = 28
MAX_SESSIONS_PER_DAY = 12.0  # cap of a churned user's boosted session rate

RECO, WATCH, RATE = 0, 1, 2
FLAG_NEW_MOVIE, FLAG_DRIFT, FLAG_SPAM = 1, 2, 4
SPAM_ACCOUNTS = (30, 80)  # accounts per rating-spam attack, drawn uniformly (inclusive)
FLAG_KINDS = ((FLAG_NEW_MOVIE, "new_movies"), (FLAG_DRIFT, "drift"), (FLAG_SPAM, "rating_spam"))
_SESSION_COLUMNS = ("user", "movie", "start", "minutes", "rate_at", "stars", "flags", "end")


@dataclass
class Batch:
    """Kafka messages of one window: keys (user id text) and values (str, or bytes if garbled)."""

    keys: list[str]
    values: list
    window_end_ms: int


def to_ms(when: str | np.datetime64) -> int:
    """Milliseconds since the epoch of a naive local time such as '2025-03-01' or '…T09:00'."""
    return int(np.datetime64(when, "ms").astype(np.int64))


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def churn_schedule(n_users: int, period_ms: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's arrival (ms from the period's start) and active lifetime (ms), churn shape.

    Lifetimes are lognormal, clipped to CHURN_LIFETIME_DAYS. Arrivals are uniform over
    (-lifetime, period): every user's active stretch meets the period, those arriving before
    it were already active when it began, so the share of users active is the same on every
    day (lifetime / (period + lifetime) per user) instead of ramping up from zero.
    """
    rng = _rng(seed, 10)
    median, sigma = CHURN_LIFETIME_MEDIAN_DAYS, CHURN_LIFETIME_SIGMA
    days = np.clip(rng.lognormal(np.log(median), sigma, n_users), *CHURN_LIFETIME_DAYS)
    lifetime = np.rint(days * DAY_MS).astype(np.int64)
    arrival = np.floor(rng.uniform(-lifetime, period_ms)).astype(np.int64)
    return arrival, lifetime


class Simulation:
    """A run of the world from `start`: iterate `batches(days)` to get the stream."""

    def __init__(
        self,
        world: World,
        start: str | np.datetime64,
        seed: int | None = None,
        faults: dict[str, float] | None = None,
        ledger: Ledger | None = None,
        recommender: RecommenderClient | None = None,
        reco_sample: float = 1.0,
        shape: str = "stable",
        spam_accounts: tuple[int, int] = SPAM_ACCOUNTS,
        everyone: bool = False,
    ):
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")
        if everyone and shape == "churn":
            raise ValueError("everyone needs the stable shape: churn keeps users away by design")
        self.world = world
        self.shape = shape
        self.seed = world.seed if seed is None else seed
        self.start_ms = to_ms(start)
        self.day0_ms = self.start_ms - self.start_ms % DAY_MS
        self.faults = dict(faults or {})
        self.ledger = ledger if ledger is not None else Ledger(None)
        self.recommender = recommender
        self.reco_sample = reco_sample
        self.everyone = everyone  # every user starts a session on the first day

        cat, pop = world.catalog, world.population
        self.n_users = pop.n_active
        self.n_initial = cat.n_initial
        self.available = cat.n_initial
        self.slugs = cat.slugs
        self.slug_index = cat.index
        self.runtime = cat.runtime.astype(np.int64)
        self.movie_vec = world.movie_vectors
        self.user_vec = world.user_vectors()  # a copy: drift edits it, the world stays intact
        self.activity = pop.activity[: self.n_users].astype(np.float64)
        self.session_rate = self.activity  # mean sessions per active day; churn boosts it
        self.arrival_ms = np.zeros(0, dtype=np.int64)  # churn: absolute arrival times
        self.lifetime_ms = np.zeros(0, dtype=np.int64)
        self.cycle_ms = np.zeros(0, dtype=np.int64)
        self.pop_sensitivity = pop.pop_sensitivity
        log_pop = np.log(cat.popularity.astype(np.float64))
        self.log_pop_z = ((log_pop - log_pop.mean()) / log_pop.std()).astype(np.float32)
        self.exposure = cat.popularity.astype(np.float64)
        self.watch_prefix = [f"{WATCH_PREFIX}{s}{MINUTE_SEP}" for s in cat.slugs]
        self.rate_prefix = [f"{RATE_PREFIX}{s}{RATING_SEP}" for s in cat.slugs]

        self.free_at = np.zeros(len(pop), dtype=np.int64)
        self.pending_drift = np.zeros(len(pop), dtype=bool)
        self.next_spam_account = self.n_users
        self.spam_accounts = spam_accounts
        self.sessions = {c: np.zeros(0, dtype=np.int64) for c in _SESSION_COLUMNS}
        self.reco_tails: dict[int, str] = {}  # session serial -> text after "<time>,<user>,"
        self.sessions["serial"] = np.zeros(0, dtype=np.int64)
        self.next_serial = 0
        self.line_faults = LineFaults(self.faults, set(cat.slugs))
        self.movie_genres = cat.genres
        self._refresh_exposure()
        self.day_users = np.zeros(0, dtype=np.int64)
        self.day_starts = np.zeros(0, dtype=np.int64)

    # ---- the stream -------------------------------------------------------------------

    def batches(self, days: int | None) -> Iterator[Batch]:
        """Window batches for `days` simulated days (forever if None), then the sessions'
        tails and any still-delayed lines."""
        if self.shape == "churn":
            self._churn(days)
        day = 0
        window = 0
        while days is None or day < days:
            day_ms = self.day0_ms + day * DAY_MS
            self._begin_day(day, day_ms)
            for w in range(WINDOWS_PER_DAY):
                t0 = day_ms + w * WINDOW_MS
                window = day * WINDOWS_PER_DAY + w
                if t0 + WINDOW_MS > self.start_ms:
                    yield self._window(window, t0, t0 + WINDOW_MS, open_=True)
            day += 1
        t0 = self.day0_ms + day * DAY_MS
        while len(self.sessions["user"]):
            window += 1
            yield self._window(window, t0, t0 + WINDOW_MS, open_=False)
            t0 += WINDOW_MS
        keys, values = self.line_faults.flush(self.ledger)
        self.ledger.count_lines(len(values))
        if values:
            yield Batch(keys, values, t0)

    # ---- per day ----------------------------------------------------------------------

    def _churn(self, days: int | None) -> None:
        """Each user's active stretch, and session rates boosted so that the expected
        sessions per day match the stable shape. A live run (no end) repeats the schedule:
        a user comes back `period` after leaving, so any `period` of it has the churn shape."""
        end_ms = self.day0_ms + (CHURN_LIVE_DAYS if days is None else days) * DAY_MS
        period_ms = max(end_ms - self.start_ms, 1)
        arrival, self.lifetime_ms = churn_schedule(self.n_users, period_ms, self.seed)
        self.arrival_ms = self.start_ms + arrival
        self.cycle_ms = period_ms + self.lifetime_ms
        share = self.lifetime_ms / self.cycle_ms  # of the time a user is active
        boost = self.activity.sum() / (self.activity * share).sum()
        self.session_rate = np.minimum(self.activity * boost, MAX_SESSIONS_PER_DAY)

    def _active(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Whether each user is within an active stretch at that time (churn shape)."""
        since = (times - self.arrival_ms[users]) % self.cycle_ms[users]
        return since < self.lifetime_ms[users]

    def _refresh_exposure(self) -> None:
        """The exposure CDFs over the available movies: the whole catalogue (`_cdf`) and each
        genre's row of the UI (`_genre_cdf`, N_GENRES x available); new movies boosted."""
        weights = self.exposure[: self.available].copy()
        weights[self.n_initial :] *= NEW_MOVIE_BOOST
        cdf = np.cumsum(weights)
        self._cdf = cdf / cdf[-1]
        per_genre = np.where(self.movie_genres[: self.available].T, weights[None, :], 0.0)
        cdf = np.cumsum(per_genre, axis=1)
        total = cdf[:, -1:]
        self._genre_cdf = np.where(total > 0, cdf / np.where(total > 0, total, 1.0), 1.0)

    def _browse(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, N_ORGANIC) movies a user considers on their own: N_GENRE_ROW from the row of
        their favourite genre (as of now: drift moves it), the rest from the whole catalogue,
        both weighted by exposure. Real services show such rows, so what people find on their
        own is already somewhat personal, not only what is globally popular."""
        n = len(users)
        organic = np.searchsorted(self._cdf, rng.random((n, N_ORGANIC)), side="right")
        favourite = np.argmax(self.user_vec[users, :N_GENRES], axis=1)
        draws = rng.random((n, N_GENRE_ROW))
        for g in np.unique(favourite):
            rows = np.flatnonzero(favourite == g)
            organic[rows, :N_GENRE_ROW] = np.searchsorted(
                self._genre_cdf[g], draws[rows], side="right"
            )
        return np.minimum(organic, self.available - 1)

    def _begin_day(self, day: int, day_ms: int) -> None:
        rng = _rng(self.seed, 20, day)
        new_rate = self.faults.get("new_movies", 0.0)
        if new_rate > 0 and day > 0:
            arrivals = int(rng.poisson(new_rate * self.n_initial))
            self.available = min(len(self.slugs), self.available + arrivals)
            self._refresh_exposure()
        drift_rate = self.faults.get("drift", 0.0)
        if drift_rate > 0 and day > 0:
            users = np.flatnonzero(rng.random(self.n_users) < drift_rate)
            shift = rng.integers(1, N_GENRES, len(users))
            cols = (np.arange(N_GENRES)[None, :] + shift[:, None]) % N_GENRES
            genre_part = self.user_vec[users, :N_GENRES]
            self.user_vec[users, :N_GENRES] = np.take_along_axis(genre_part, cols, axis=1)
            self.user_vec[users, N_GENRES:-1] *= -1.0
            self.pending_drift[users] = True
        weekday = (day_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
        factor = WEEKEND_FACTOR if weekday >= 5 else 1.0
        counts = rng.poisson(self.session_rate * factor)
        if self.everyone and day == 0:
            counts = np.maximum(counts, 1)
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), counts)
        hours = rng.choice(24, size=len(users), p=HOUR_P)
        starts = day_ms + hours * 3_600_000 + rng.integers(0, 3_600_000, len(users))
        keep = starts >= self.start_ms
        if self.shape == "churn":
            keep &= self._active(users, starts)
        order = np.argsort(starts[keep], kind="stable")
        self.day_users, self.day_starts = users[keep][order], starts[keep][order]

    # ---- per window -------------------------------------------------------------------

    def _window(self, window: int, t0: int, t1: int, open_: bool) -> Batch:
        rng = _rng(self.seed, 30, window)
        extra = None
        if open_:
            lo, hi = np.searchsorted(self.day_starts, [t0, t1])
            users, starts = self.day_users[lo:hi], self.day_starts[lo:hi]
            if self.shape == "churn":  # not started if a running session pushes it past leaving
                ok = self._active(users, np.maximum(starts, self.free_at[users]))
                users, starts = users[ok], starts[ok]
            self._resolve(users, starts, rng)
            spam_rate = self.faults.get("rating_spam", 0.0)
            if spam_rate > 0 and rng.random() < spam_rate:
                extra = self._spam_attack(t0, rng)
        return self._emit(window, t0, t1, rng, extra)

    def _recommended(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, 20) recommended movie indexes (-1 = none) for the sessions that ask."""
        rec = np.full((len(users), N_RECOMMENDED), -1, dtype=np.int64)
        if self.recommender is None:
            return rec
        asks = np.flatnonzero(rng.random(len(users)) < self.reco_sample)
        answers = self.recommender.ask_many((users[asks] + 1).tolist())
        server = self.recommender.server
        for j, answer in zip(asks.tolist(), answers, strict=True):
            self.reco_tails[self.next_serial + j] = reco_event(
                server, answer.status, answer.ids, answer.ms
            )
            known = [self.slug_index.get(s, -1) for s in answer.ids[:N_RECOMMENDED]]
            known = [m if m < self.available else -1 for m in known]
            rec[j, : len(known)] = known
        return rec

    def _resolve(self, users: np.ndarray, starts: np.ndarray, rng: np.random.Generator) -> None:
        """Choose, watch and rate for the sessions starting in this window."""
        n = len(users)
        if n == 0:
            return
        rec = self._recommended(users, rng)
        organic = self._browse(users, rng)
        cands = np.hstack([organic, rec])
        valid = cands >= 0
        cands = np.where(valid, cands, 0)
        aff = np.einsum("nd,nkd->nk", self.user_vec[users], self.movie_vec[cands])
        util = TASTE_WEIGHT * aff + self.pop_sensitivity[users, None] * self.log_pop_z[cands]
        util[:, N_ORGANIC:] += ATTENTION * (1.0 - np.arange(N_RECOMMENDED) / (2 * N_RECOMMENDED))
        util += rng.gumbel(size=util.shape)
        util[~valid] = -np.inf
        pick = np.argmax(util, axis=1)
        rows = np.arange(n)
        movie = cands[rows, pick]
        a = aff[rows, pick].astype(np.float64)

        liked = rng.random(n) < _sigmoid(2.5 * (a - 0.5))
        runtime = self.runtime[movie]
        to_end = rng.random(n) < 0.6
        partly = np.ceil(rng.uniform(0.6, 1.0, n) * runtime).astype(np.int64)
        abandoned = np.minimum(runtime, rng.geometric(0.15, n))
        minutes = np.where(liked, np.where(to_end, runtime, partly), abandoned)
        rated = rng.random(n) < np.where(liked, 0.5, 0.2)
        stars = np.clip(np.rint(3 + 1.2 * a + rng.normal(0, 0.5, n)), 1, 5).astype(np.int64)
        rate_gap = rng.integers(5_000, 120_000, n)
        duration = 1_000 + minutes * MINUTE_MS + 180_000

        start = self._no_overlap(users, starts, duration)
        last_watch = start + 1_000 + (minutes - 1) * MINUTE_MS
        rate_at = np.where(rated, last_watch + rate_gap, -1)

        flags = np.where(movie >= self.n_initial, FLAG_NEW_MOVIE, 0)
        drifted = np.flatnonzero(self.pending_drift[users])
        if len(drifted):
            _, first = np.unique(users[drifted], return_index=True)
            flags[drifted[first]] |= FLAG_DRIFT
            self.pending_drift[users[drifted]] = False

        new = {
            "user": users,
            "movie": movie,
            "start": start,
            "minutes": minutes,
            "rate_at": rate_at,
            "stars": stars,
            "flags": flags,
            "end": np.maximum(last_watch, rate_at),
            "serial": self.next_serial + np.arange(n),
        }
        self.next_serial += n
        for col, values in new.items():
            self.sessions[col] = np.concatenate([self.sessions[col], values.astype(np.int64)])

    def _no_overlap(self, users: np.ndarray, starts: np.ndarray, duration: np.ndarray):
        """Session starts pushed later so one user's sessions never overlap (a running max)."""
        order = np.lexsort((starts, users))
        u, s, d = users[order], starts[order], duration[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = u[1:] != u[:-1]
        s = np.where(first, np.maximum(s, self.free_at[u]), s)
        group = np.cumsum(first) - 1
        csum = np.cumsum(d) - d
        before = csum - csum[np.flatnonzero(first)][group]  # durations earlier in the group
        base = s.min()
        big = np.int64(1) << np.int64(40)
        key = (s - base - before) + group * big
        shifted = np.maximum.accumulate(key) - group * big + before + base
        last = np.ones(len(u), dtype=bool)
        last[:-1] = first[1:]
        self.free_at[u[last]] = shifted[last] + d[last]
        out = np.empty_like(shifted)
        out[order] = shifted
        return out

    def _spam_attack(self, t0: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A burst of fresh accounts rating one obscure movie 5 stars within the window."""
        reserve = len(self.free_at) - self.n_users
        size = int(rng.integers(self.spam_accounts[0], self.spam_accounts[1] + 1))
        accounts = (
            self.n_users + (self.next_spam_account - self.n_users + np.arange(size)) % reserve
        )
        self.next_spam_account = int(accounts[-1]) + 1
        obscure = np.argsort(self.exposure[: self.n_initial])[: max(1, self.n_initial // 2)]
        target = int(rng.choice(obscure))
        return {
            "time": t0 + np.sort(rng.integers(0, WINDOW_MS, size)),
            "kind": np.full(size, RATE),
            "user": accounts.astype(np.int64),
            "movie": np.full(size, target),
            "aux": np.full(size, 5),
            "flags": np.full(size, FLAG_SPAM),
        }

    def _emit(self, window: int, t0: int, t1: int, rng: np.random.Generator, extra) -> Batch:
        s = self.sessions
        first = s["start"] + 1_000
        lo = np.clip(-((first - t0) // MINUTE_MS), 0, s["minutes"])
        hi = np.clip(-((first - t1) // MINUTE_MS), 0, s["minutes"])
        count = hi - lo
        rep = np.repeat(np.arange(len(count)), count)
        offsets = np.cumsum(count) - count
        minute = lo[rep] + np.arange(len(rep)) - offsets[rep]
        rated = np.flatnonzero((s["rate_at"] >= t0) & (s["rate_at"] < t1))
        serials = s["serial"]
        asked = [
            i
            for i in np.flatnonzero((s["start"] >= t0) & (s["start"] < t1)).tolist()
            if int(serials[i]) in self.reco_tails
        ]
        asked = np.array(asked, dtype=np.int64)
        tails = [self.reco_tails.pop(int(serials[i])) for i in asked.tolist()]

        parts = [
            # (time, kind, user, movie, aux, flags); aux = minute, stars or reco tail index
            (s["start"][asked], RECO, asked, np.zeros(len(asked), np.int64), np.arange(len(asked))),
            (first[rep] + minute * MINUTE_MS, WATCH, rep, s["movie"][rep], minute),
            (s["rate_at"][rated], RATE, rated, s["movie"][rated], s["stars"][rated]),
        ]
        time = np.concatenate([p[0] for p in parts])
        kind = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
        user = np.concatenate([s["user"][p[2]] for p in parts])
        movie = np.concatenate([p[3] for p in parts])
        aux = np.concatenate([p[4] for p in parts])
        # A world-change record marks the session's first watch line (minute 0).
        flags = np.concatenate(
            [np.zeros(len(asked), np.int64), np.where(minute == 0, s["flags"][rep], 0)]
            + [np.zeros(len(rated), np.int64)]
        )
        if extra is not None:
            time = np.concatenate([time, extra["time"]])
            kind = np.concatenate([kind, extra["kind"]])
            user = np.concatenate([user, extra["user"]])
            movie = np.concatenate([movie, extra["movie"]])
            aux = np.concatenate([aux, extra["aux"]])
            flags = np.concatenate([flags, extra["flags"]])
        order = np.argsort(time, kind="stable")
        time, kind, user, movie, aux, flags = (
            a[order] for a in (time, kind, user, movie, aux, flags)
        )
        keep = s["end"] >= t1
        self.sessions = {c: v[keep] for c, v in s.items()}

        keys, values, fields = self._format(time, kind, user, movie, aux, tails, rng)
        for i in np.flatnonzero(flags).tolist():
            for bit, name in FLAG_KINDS:
                if flags[i] & bit:
                    self.ledger.record(name, values[i], int(user[i]) + 1, reject=False)
        keys, values = self.line_faults.apply(
            keys, values, fields, rng, window, self.ledger, flags != 0
        )
        self.ledger.count_lines(len(values))
        return Batch(keys, values, t1)

    def _format(self, time, kind, user, movie, aux, tails, rng):
        """Lines (and Kafka keys) of sorted event arrays; `fields(i)` re-reads one line's parts."""
        stamps = np.datetime_as_string(time.astype("datetime64[ms]"), unit="s").astype("U23")
        with_ms = rng.random(len(time)) < MS_FRACTION
        stamps[with_ms] = np.datetime_as_string(time[with_ms].astype("datetime64[ms]"), unit="ms")
        t_list = stamps.tolist()
        u_list = (user + 1).astype(str).tolist()
        k_list, m_list, x_list = kind.tolist(), movie.tolist(), aux.tolist()
        wp, rp = self.watch_prefix, self.rate_prefix
        values = [
            f"{t},{u},{wp[m]}{x}{WATCH_SUFFIX}"
            if k == WATCH
            else (f"{t},{u},{rp[m]}{x}" if k == RATE else f"{t},{u},{tails[x]}")
            for t, u, k, m, x in zip(t_list, u_list, k_list, m_list, x_list, strict=True)
        ]
        kind_names = {RECO: "reco", WATCH: "watch", RATE: "rate"}

        def fields(i: int) -> dict:
            return {
                "time": t_list[i],
                "user": u_list[i],
                "kind": kind_names[k_list[i]],
                "movie": self.slugs[m_list[i]],
                "minute": x_list[i],
                "stars": x_list[i],
            }

        return u_list, values, fields


def collect(sim: Simulation, days: int | None) -> tuple[list[str], list]:
    """All (keys, values) of a run in memory (tests, small runs)."""
    keys: list[str] = []
    values: list = []
    for batch in sim.batches(days):
        keys.extend(batch.keys)
        values.extend(batch.values)
    return keys, values


ProgressFn = Callable[[int], None]
