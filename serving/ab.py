"""Stable A/B assignment: the same (salt, user) lands in the same variant in every process."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

_SCALE = float(2**64)


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its name, the reco_version it serves and its traffic share."""

    name: str
    reco_version: str
    model_version: str
    share: float


def bucket(salt: str, user_id: int) -> float:
    """A uniform number in [0, 1) from blake2b of f"{salt}:{user_id}" (never Python's hash())."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(salt: str, user_id: int, variants: Sequence[Variant]) -> Variant:
    """The user's variant: its bucket over the variants' cumulative (normalised) shares."""
    total = sum(v.share for v in variants)
    if not variants or total <= 0:
        raise ValueError("an experiment needs at least one variant with a positive share")
    point = bucket(salt, user_id) * total
    cumulative = 0.0
    for variant in variants:
        cumulative += variant.share
        if point < cumulative:
            return variant
    # Float rounding at the very top of the range: the last variant that takes traffic.
    return next(v for v in reversed(variants) if v.share > 0)
