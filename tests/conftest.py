"""Shared fixtures: real local services (started by ops/services.py when not already up) and
one session-scoped Spark. Area-specific fixtures live beside the tests that use them."""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from urllib.parse import quote

import pytest

from contracts import settings as settings_mod
from ops import services

# Under CI=true a skipped test fails the run (tests/support/ci_gate.py).
pytest_plugins = ("tests.support.ci_gate",)

# Airflow, Spark and the jobs read the same environment the Makefile exports.
for _name, _value in services.runtime_env().items():
    os.environ.setdefault(_name, _value)
# An Airflow started by the suite must not schedule runs of its own against the platform's
# topic while tests drive the DAGs with dag.test(): new DAGs start paused here.
os.environ.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
# Job functions the tests call in this process push their figures nowhere (a closed port: a
# logged warning), never to the platform's Pushgateway, where a test's rejected gate would fire
# TrainingRunRejected. The services keep theirs (ops.services.runtime_env); a monitoring test
# that wants the pushes unsets this for its own stack.
os.environ["PUSHGATEWAY_URL"] = "http://127.0.0.1:9"


@pytest.fixture(scope="session")
def settings() -> settings_mod.Settings:
    return settings_mod.load()


@pytest.fixture(scope="session")
def local_services():
    """Kafka, Postgres and Airflow up for the session; stopped afterwards if started here."""
    started = services.up(services.ALL, quiet=True)
    yield
    if started and os.environ.get("RECS_KEEP_SERVICES") != "1":
        services.down(started, quiet=True)


@pytest.fixture(scope="session")
def postgres(local_services, settings) -> str:
    """DATABASE_URL of a real Postgres with the project schema applied."""
    from contracts import db

    db.apply_schema(settings.database_url)
    return settings.database_url


@pytest.fixture(scope="session")
def kafka(local_services, settings) -> str:
    """Bootstrap servers of a real Kafka broker."""
    return settings.kafka_bootstrap_servers


@contextmanager
def private_schema(postgres: str, files: tuple[str, ...] | None = None, also_public: bool = False):
    """DATABASE_URL whose search_path is a fresh schema holding sql/schema `files` (all when
    None; `also_public` lets other tables resolve to public); the schema is dropped afterwards."""
    import psycopg2

    from contracts import db

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    path = f"{schema},public" if also_public else schema
    sep = "&" if "?" in postgres else "?"
    url = f"{postgres}{sep}options={quote(f'-csearch_path={path}')}"
    if files is None:
        db.apply_schema(url)
    else:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            for name in files:
                cur.execute(db.read_sql(f"schema/{name}"))
        conn.close()
    try:
        yield url
    finally:
        with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def platform_state(postgres: str) -> tuple:
    """The platform's own pointer row and the versions it knows: what a test must not move."""
    import psycopg2

    with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM public.serving_pointer")
        pointer = cur.fetchall()
        cur.execute("SELECT reco_version, status FROM public.reco_versions ORDER BY 1")
        versions = cur.fetchall()
    conn.close()
    return pointer, versions


@contextmanager
def fresh_topic(kafka: str):
    """A uniquely named topic (3 partitions), deleted when the block ends."""
    from confluent_kafka.admin import AdminClient

    name = f"test-{uuid.uuid4().hex[:12]}"
    services.create_topic(kafka, name, partitions=3)
    try:
        yield name
    finally:
        admin = AdminClient({"bootstrap.servers": kafka})
        for future in admin.delete_topics([name], operation_timeout=10).values():
            future.result()  # keep the client alive until the broker has answered


@pytest.fixture
def kafka_topic(kafka) -> str:
    """A fresh topic for one test, deleted afterwards."""
    with fresh_topic(kafka) as name:
        yield name


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole suite, with few shuffle partitions."""
    from jobs.spark import get_spark

    session = get_spark("tests", shuffle_partitions=4)
    yield session
    session.stop()
    # py4j logs "Closing down clientserver connection" from __del__ at interpreter exit,
    # after pytest has closed its capture streams; that line is noise, not a finding.
    logging.getLogger("py4j").setLevel(logging.WARNING)
