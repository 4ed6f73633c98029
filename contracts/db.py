"""Postgres access shared by the jobs: engine creation and idempotent schema set-up from sql/."""

from __future__ import annotations

from pathlib import Path

from contracts import settings

SQL_DIR = settings.REPO_ROOT / "sql"


def read_sql(name: str) -> str:
    """The text of `sql/<name>` (queries and DDL live in files, loaded by name)."""
    return (SQL_DIR / name).read_text()


def connect(url: str | None = None, **options):
    """A psycopg2 connection to DATABASE_URL (or `url`); `options` go to psycopg2.connect."""
    import psycopg2

    return psycopg2.connect(url or settings.load().database_url, **options)


def engine(url: str | None = None):
    """A SQLAlchemy engine for DATABASE_URL (or `url`), with a pre-ping pool."""
    from sqlalchemy import create_engine

    return create_engine(url or settings.load().database_url, pool_pre_ping=True, future=True)


def schema_files() -> list[Path]:
    """Every DDL file under sql/schema, in the order it must be applied."""
    return sorted((SQL_DIR / "schema").glob("*.sql"))


def apply_schema(url: str | None = None) -> list[str]:
    """Apply all of sql/schema/*.sql (each idempotent) in one transaction; return file names."""
    import psycopg2

    dsn = url or settings.load().database_url
    applied = []
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        # Serialise concurrent set-ups (tests, DAG tasks, make run) on one advisory lock.
        cur.execute("SELECT pg_advisory_xact_lock(424242)")
        for path in schema_files():
            cur.execute(path.read_text())
            applied.append(path.name)
    return applied


if __name__ == "__main__":
    for name in apply_schema():
        print(f"applied {name}")
