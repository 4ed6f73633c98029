"""Pure parts of write–audit–publish and the experiment CLI: encoding, names, parsing, and
the named statements in sql/publish/."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from psycopg2 import sql

from jobs.publish import experiments, publish

pytestmark = pytest.mark.unit

PUBLISH_CODE = sorted((Path(publish.__file__).parent).glob("*.py"))


def test_encode_items_joins_ids_in_order():
    assert publish.encode_items(["b", 3, "a"]) == "b,3,a"
    assert publish.encode_items("x,y") == "x,y"


@pytest.mark.parametrize(
    "items", [[], ["a,b"], ["a", ""], ["tab\there"], ["new\nline"], ["back\\slash"], ",a"]
)
def test_encode_items_rejects_what_would_break_the_line(items):
    with pytest.raises(ValueError, match="movie ids|empty"):
        publish.encode_items(items)


def test_table_name_is_safe_unique_and_short():
    a = publish.table_name("svd-2025-01-02T00:00:00")
    b = publish.table_name("svd_2025_01_02T00_00_00")
    assert a != b
    assert a.startswith("recommendations_svd_2025_01_02t00_00_00_")
    assert len(publish.table_name("x" * 128)) <= 63


@pytest.mark.parametrize("bad", ["", "a b", "v1;drop", "-v", "x" * 129, "ü"])
def test_bad_versions_are_refused(bad):
    with pytest.raises(ValueError, match="version"):
        publish.check_version(bad)


def _drain(stream, size=64):
    out = b""
    while chunk := stream.read(size):
        out += chunk
    return out


class _Progress:
    def __init__(self):
        self.n = 0

    def update(self, n):
        self.n += n


def test_copy_stream_encodes_rows_in_chunks():
    rows = [(1, ["a", "b"]), (2, "c,d"), ("3", [7, 8])]
    progress = _Progress()
    stream = publish._CopyStream(rows, progress)
    assert _drain(stream, size=5) == b"1\ta,b\n2\tc,d\n3\t7,8\n"
    assert stream.count == progress.n == 3


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((0, ["a"]), "outside"),
        ((-5, ["a"]), "outside"),
        (("x", ["a"]), "not an integer"),
        ((2**63, ["a"]), "outside"),
        ((1, ["a,b"]), "row 1"),
    ],
)
def test_copy_stream_names_the_bad_row(row, reason):
    stream = publish._CopyStream([row], _Progress())
    with pytest.raises(ValueError, match=reason):
        _drain(stream)


def test_rows_from_pandas_and_arrow_frames():
    frame = pd.DataFrame({"user_id": [1, 2], "items": [["a", "b"], ["c", "d"]]})
    assert list(publish.iter_rows(frame)) == [(1, ["a", "b"]), (2, ["c", "d"])]
    table = pa.Table.from_pandas(frame)
    assert list(publish.iter_rows(table)) == [(1, ["a", "b"]), (2, ["c", "d"])]


def test_popular_version_is_named_by_event_time_in_utc():
    plus2 = timezone(timedelta(hours=2))
    assert publish.popular_version_for(datetime(1998, 3, 1, 12, 0, tzinfo=plus2)) == (
        "popular-19980301T100000"
    )
    assert publish.popular_version_for(datetime(1998, 3, 1, tzinfo=UTC)) == (
        "popular-19980301T000000"
    )


def test_parse_variant_and_validate_shares():
    spec = experiments.parse_variant("a=svd-v1:0.25")
    assert spec == experiments.VariantSpec("a", "svd-v1", 0.25)
    with pytest.raises(ValueError, match="name=RECO_VERSION:share"):
        experiments.parse_variant("a=v1")
    with pytest.raises(ValueError, match="outside"):
        experiments.parse_variant("a=v1:1.5")
    with pytest.raises(ValueError, match="sum to"):
        experiments.validate([spec])
    with pytest.raises(ValueError, match="repeat"):
        experiments.validate([spec, experiments.VariantSpec("a", "v2", 0.75)])
    experiments.validate([spec, experiments.VariantSpec("b", "v2", 0.75)])


def _query_calls(path: Path) -> list[tuple[str, str, set[str]]]:
    """(family, name, keyword parts) of every query("family", "name", ...) call in a file."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "query":
            family, name = (arg.value for arg in node.args)
            calls.append((family, name, {kw.arg for kw in node.keywords}))
    return calls


def test_every_statement_the_publish_code_names_exists_with_its_placeholders():
    calls = [c for path in PUBLISH_CODE for c in _query_calls(path)]
    assert len(calls) > 30
    for family, name, parts in calls:
        text = publish.query(family, name)
        assert set(re.findall(r"{(\w+)}", text)) == parts, (family, name)
        assert "--" not in text, (family, name)  # comments stay in the file


SQL_TEXT = re.compile(
    r"^\s*(SELECT\b.*\bFROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM|(ALTER|CREATE|DROP|LOCK) "
    r"(TEMP )?TABLE|ANALYZE|COPY .*FROM STDIN)",
    re.DOTALL,
)


def inline_sql(path: Path) -> list[str]:
    """String literals of a module that read as SQL statements (docstrings aside)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SQL_TEXT.match(node.value)
    ]


def test_no_sql_left_inline_in_the_publish_code():
    assert {p.name: inline_sql(p) for p in PUBLISH_CODE} == {p.name: [] for p in PUBLISH_CODE}


def test_named_statements_are_split_on_their_markers(tmp_path, monkeypatch):
    (tmp_path / "publish").mkdir()
    (tmp_path / "publish" / "demo.sql").write_text(
        "-- header\n-- name: one\n-- what it does\nSELECT 1\n\n--name: two\nSELECT {t}\n"
    )
    monkeypatch.setattr(publish, "read_sql", lambda name: (tmp_path / name).read_text())
    publish._statements.cache_clear()
    try:
        assert publish.query("demo", "one") == "SELECT 1"
        assert publish.query("demo", "two") == "SELECT {t}"
        assert publish.query("demo", "two", t=sql.Identifier("x")) == sql.Composed(
            [sql.SQL("SELECT "), sql.Identifier("x")]
        )
        with pytest.raises(KeyError, match="three"):
            publish.query("demo", "three")
        (tmp_path / "publish" / "demo.sql").write_text("-- name: a\nSELECT 1\n-- name: a\n")
        publish._statements.cache_clear()
        with pytest.raises(ValueError, match="twice"):
            publish.query("demo", "a")
    finally:
        publish._statements.cache_clear()
