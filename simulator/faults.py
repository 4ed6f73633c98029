"""Fault and change injection, and the ground-truth ledger of what was injected.

Per-line faults (rate = probability per emitted line) rewrite, repeat or delay a line of a
batch. World changes (drift, new_movies, rating_spam) are driven by the generator; this
module only names them. Every injected line gets one ledger record; a line recorded with
`reject: true` is re-checked against the strict grammar first, so it really is malformed.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contracts.grammar import rate_line, watch_line
from simulator import grammar, names

# Malformed under the grammar: must end in the platform's rejects.
REJECT_KINDS = (
    "truncated",
    "wrong_separator",
    "non_numeric_id",
    "rating_out_of_range",
    "garbage_bytes",
    "empty_line",
    "extra_field",
)
# Well-formed lines the platform must catch by other means.
LINE_CHANGE_KINDS = ("duplicate", "out_of_order", "unknown_movie")
WORLD_CHANGE_KINDS = ("drift", "new_movies", "rating_spam")
PER_LINE_KINDS = REJECT_KINDS + LINE_CHANGE_KINDS
ALL_KINDS = PER_LINE_KINDS + WORLD_CHANGE_KINDS

RATE_MEANING = {
    **{k: "probability per emitted line" for k in PER_LINE_KINDS},
    "drift": "fraction of users whose tastes change, per simulated day",
    "new_movies": "new movies per simulated day, as a fraction of the initial catalog",
    "rating_spam": "probability per simulated 15-minute window that a spam attack starts",
}


def parse_faults(specs: list[str] | None) -> dict[str, float]:
    """`['truncated=0.01', 'drift=0.05']` -> {'truncated': 0.01, 'drift': 0.05}, validated."""
    rates: dict[str, float] = {}
    for spec in specs or []:
        kind, sep, value = spec.partition("=")
        kind = kind.strip()
        if kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(ALL_KINDS)}")
        try:
            rate = float(value) if sep else float("nan")
        except ValueError:
            rate = float("nan")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {spec!r}: give a rate between 0 and 1, e.g. {kind}=0.01")
        rates[kind] = rate
    return rates


@dataclass
class Ledger:
    """JSONL ground truth: one record per injected line, then a `_summary` record."""

    path: Path | None
    by_kind: Counter = field(default_factory=Counter)
    lines: int = 0
    records: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self._fh = None
        if self.path is not None:
            self.path = Path(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")

    def record(self, kind: str, line: bytes | str, user_id: int | None, reject: bool) -> None:
        """Append one injected line (the exact Kafka value) to the ledger."""
        raw = line.encode("utf-8") if isinstance(line, str) else line
        rec = {
            "kind": kind,
            "line_b64": base64.b64encode(raw).decode("ascii"),
            "user_id": user_id,
            "reject": reject,
        }
        self.by_kind[kind] += 1
        if self._fh is not None:
            self._fh.write(json.dumps(rec) + "\n")
        else:
            self.records.append(rec)

    def count_lines(self, n: int) -> None:
        self.lines += n

    def close(self) -> dict:
        """Write the summary record and close; returns the summary."""
        summary = {"kind": "_summary", "lines": self.lines, "by_kind": dict(self.by_kind)}
        if self._fh is not None:
            self._fh.write(json.dumps(summary) + "\n")
            self._fh.close()
            self._fh = None
        else:
            self.records.append(summary)
        return summary


def read_ledger(path: Path) -> tuple[list[dict], dict]:
    """(records with `line` bytes decoded, summary) of a ledger file."""
    records, summary = [], {}
    for text in Path(path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(text)
        if rec["kind"] == "_summary":
            summary = rec
        else:
            rec["line"] = base64.b64decode(rec["line_b64"])
            records.append(rec)
    return records, summary


class LineFaults:
    """Applies the per-line faults to one batch of lines (str values, user ids, fields)."""

    def __init__(self, rates: dict[str, float], known_slugs: set[str]):
        self.rates = {k: r for k, r in rates.items() if k in PER_LINE_KINDS and r > 0}
        self.known_slugs = known_slugs
        self.delayed: dict[int, list[tuple[str, str | bytes, int]]] = {}

    def __bool__(self) -> bool:
        return bool(self.rates)

    def _fake_slug(self, rng: np.random.Generator) -> str:
        while True:
            a = names.ADJECTIVE_WORDS[rng.integers(len(names.ADJECTIVE_WORDS))]
            b = names.NOUN_WORDS[rng.integers(len(names.NOUN_WORDS))]
            c = names.NOUN_WORDS[rng.integers(len(names.NOUN_WORDS))]
            slug = f"{a}+{b}+{c}+never+released+{rng.integers(1950, 2030)}"
            if slug not in self.known_slugs:
                return slug

    def _malformed(self, kind: str, line: str, f: dict, rng: np.random.Generator) -> str | bytes:
        """One malformed version of a valid line; rejected by the grammar (checked by caller)."""
        t, u = f["time"], f["user"]
        if kind == "truncated":
            return line[: int(rng.integers(1, len(line)))]
        if kind == "wrong_separator":
            return line.replace(",", str(rng.choice([";", "\t", "|", " "])))
        if kind == "non_numeric_id":
            form = str(rng.choice(["u{}", "{}a", "user{}", "-{}", "{}.0", "#{}"]))
            return line.replace(f",{u},", "," + form.format(u) + ",", 1)
        if kind == "rating_out_of_range":
            return rate_line(t, u, f["movie"], rng.choice([0, 6, 7, 10, 11, 50, -1]))
        if kind == "garbage_bytes":
            raw = line.encode("ascii")
            junk = (
                bytes([0xFF])
                + rng.integers(0x80, 0x100, int(rng.integers(0, 4))).astype(np.uint8).tobytes()
            )
            at = int(rng.integers(0, len(raw) + 1))
            return raw[:at] + junk + raw[at:]
        if kind == "empty_line":
            return ""
        if kind == "extra_field":
            return f"{line},{rng.choice(['web', 'ios', 'android', 'tv', '1', 'device=roku'])}"
        raise ValueError(kind)

    def apply(
        self,
        keys: list[str],
        values: list[str],
        fields: Callable[[int], dict],
        rng: np.random.Generator,
        window: int,
        ledger: Ledger,
        protected: np.ndarray,
    ) -> tuple[list[str], list]:
        """Faulty copy of (keys, values); `fields(i)` gives time/user/kind/movie/minute/stars.

        Lines marked `protected` (already in the ledger as world changes) are left alone.
        """
        keys, values = list(keys), list(values)
        n = len(values)
        due = self.delayed.pop(window, [])
        if not self.rates or n == 0:
            return self._with_delayed(keys, values, due, ledger)
        chosen = self._choose(n, fields, rng, protected)
        out_keys: list[str] = []
        out_values: list = []
        prev = 0
        for i in sorted(chosen):
            out_keys.extend(keys[prev:i])
            out_values.extend(values[prev:i])
            prev = i + 1
            kind, line, f, key = chosen[i], values[i], fields(i), keys[i]
            user = int(f["user"])
            if kind == "duplicate":
                out_keys += [key, key]
                out_values += [line, line]
                ledger.record(kind, line, user, reject=False)
            elif kind == "out_of_order":
                self.delayed.setdefault(window + int(rng.integers(1, 5)), []).append(
                    (key, line, user)
                )
            elif kind == "unknown_movie":
                fake = self._fake_slug(rng)
                if f["kind"] == "watch":
                    bad = watch_line(f["time"], user, fake, f["minute"])
                else:
                    bad = rate_line(f["time"], user, fake, f["stars"])
                out_keys.append(key)
                out_values.append(bad)
                ledger.record(kind, bad, user, reject=False)
            else:
                for _ in range(20):
                    bad = self._malformed(kind, line, f, rng)
                    if grammar.classify(bad) is None:
                        break
                else:  # never seen: keep the original line rather than record a false reject
                    out_keys.append(key)
                    out_values.append(line)
                    continue
                out_keys.append(key)
                out_values.append(bad)
                ledger.record(kind, bad, user, reject=True)
        out_keys.extend(keys[prev:])
        out_values.extend(values[prev:])
        return self._with_delayed(out_keys, out_values, due, ledger)

    def _choose(
        self, n: int, fields: Callable[[int], dict], rng: np.random.Generator, protected
    ) -> dict[int, str]:
        """Line index -> fault kind: a binomial count per kind, at most one fault per line."""
        taken = protected.copy()
        chosen: dict[int, str] = {}
        for kind, rate in self.rates.items():
            count = int(rng.binomial(n, rate))
            for i in rng.integers(0, n, count).tolist():
                if taken[i]:
                    continue
                if kind in ("unknown_movie", "rating_out_of_range") and fields(i)["kind"] == "reco":
                    continue
                taken[i] = True
                chosen[i] = kind
        return chosen

    @staticmethod
    def _with_delayed(keys: list[str], values: list, due: list, ledger: Ledger):
        for key, line, user in due:
            keys.append(key)
            values.append(line)
            ledger.record("out_of_order", line, user, reject=False)
        return keys, values

    def flush(self, ledger: Ledger) -> tuple[list[str], list]:
        """Everything still delayed (end of the run), in window order."""
        keys: list[str] = []
        values: list = []
        for window in sorted(self.delayed):
            for key, line, user in self.delayed[window]:
                keys.append(key)
                values.append(line)
                ledger.record("out_of_order", line, user, reject=False)
        self.delayed.clear()
        return keys, values
