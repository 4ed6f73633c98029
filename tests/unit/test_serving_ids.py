"""User-id validation: every bad input gets a reason, every good one its integer."""

from __future__ import annotations

import pytest

from serving.ids import MAX_USER_ID, InvalidUserId, parse_user_id

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", 1), ("42", 42), ("007", 7), (str(MAX_USER_ID), MAX_USER_ID), ("0" * 10 + "5", 5)],
)
def test_valid_ids(raw, expected):
    assert parse_user_id(raw) == expected


BAD = {
    "": "empty",
    "0": "positive",
    "000": "positive",
    "-1": "ASCII digits",
    "+1": "ASCII digits",
    "1.5": "ASCII digits",
    "1e3": "ASCII digits",
    "abc": "ASCII digits",
    " 1": "ASCII digits",
    "1 ": "ASCII digits",
    "0x1F": "ASCII digits",
    str(MAX_USER_ID + 1): "larger",
    "9" * 19: "larger",
    "9" * 25: "larger",
    "1" * 5000: "too long",
    "١٢٣": "ASCII digits",  # Arabic-Indic digits: str.isdigit() would accept them
    "²": "ASCII digits",
    "１２": "ASCII digits",  # fullwidth
    "1;DROP TABLE recommendations": "ASCII digits",
    "1' OR '1'='1": "ASCII digits",
    "../../etc/passwd": "ASCII digits",
    "1/2": "ASCII digits",
    "1\x00": "ASCII digits",
    "1\n": "ASCII digits",
}


@pytest.mark.parametrize("raw", list(BAD))
def test_invalid_ids_have_a_reason(raw):
    with pytest.raises(InvalidUserId) as err:
        parse_user_id(raw)
    reason = str(err.value)
    assert BAD[raw] in reason
    assert "\n" not in reason
