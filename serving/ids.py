"""User-id validation for the request path: a positive decimal that fits a signed 64-bit int."""

from __future__ import annotations

import re

from contracts.grammar import MAX_USER_ID

# ASCII digits only: str.isdigit() would also accept '²' or Arabic-Indic digits.
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_MAX_LEN = len(str(MAX_USER_ID))


class InvalidUserId(ValueError):
    """The path segment is not a user id; the message is the one-line reason sent back."""


def parse_user_id(raw: str) -> int:
    """The user id in `raw`, or InvalidUserId saying why it is not one."""
    if raw == "":
        raise InvalidUserId("user id is empty")
    if len(raw) > _MAX_LEN + 20:
        raise InvalidUserId(f"user id is too long ({len(raw)} characters)")
    if not _DIGITS.fullmatch(raw):
        raise InvalidUserId("user id must contain only the ASCII digits 0-9")
    if len(raw.lstrip("0")) > _MAX_LEN:
        raise InvalidUserId(f"user id is larger than {MAX_USER_ID}")
    value = int(raw)
    if value == 0:
        raise InvalidUserId("user id must be positive")
    if value > MAX_USER_ID:
        raise InvalidUserId(f"user id is larger than {MAX_USER_ID}")
    return value
