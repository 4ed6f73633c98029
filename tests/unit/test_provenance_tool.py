"""The pure parts of jobs.online.provenance: one SQL file for psql and psycopg2, the +dirty rule."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from contracts.db import read_sql
from jobs.online import provenance

pytestmark = pytest.mark.unit


def test_the_psql_file_binds_exactly_its_four_variables_as_parameters():
    text = read_sql(provenance.QUERY)
    bound = provenance.bind_psql(text)
    assert set(re.findall(r"%\((\w+)\)s", bound)) == {
        "model_version",
        "reco_version",
        "user_id",
        "event_time",
    }
    assert ":'" not in bound and bound.count("::") == text.count("::")  # casts untouched
    assert "%" not in text  # psycopg2 would read a literal % as a parameter


def test_code_state_splits_the_dirty_marker():
    sha = "a" * 40
    assert provenance.code_state(sha) == {"commit": sha, "dirty": False}
    assert provenance.code_state(sha + "+dirty") == {"commit": sha, "dirty": True}
    assert provenance.code_state("unknown") == {"commit": "unknown", "dirty": None}


def test_a_hash_is_matched_changed_or_missing():
    assert provenance._state("ab", "ab") == "matches"
    assert provenance._state("ab", "cd") == "changed"
    assert provenance._state("ab", None) == "missing"


def test_a_time_without_offset_is_utc():
    assert provenance.parse_time("2025-03-01T12:00:00") == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert provenance.parse_time("2025-03-01T12:00:00Z") == datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_no_batch_in_the_lake_is_not_found(tmp_path):
    with pytest.raises(provenance.NotFound, match="no batch yet"):
        provenance.find_prediction("r-1", root=tmp_path)
