"""Each embedded service is real and reachable: Kafka, Postgres, Spark, Airflow."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from ops import services

pytestmark = pytest.mark.integration


def test_kafka_produce_consume_round_trip(kafka, kafka_topic):
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": kafka})
    sent = [f"2025-03-14T09:26:{i:02d},{i + 1},GET /rate/up+2009=4".encode() for i in range(30)]
    for i, value in enumerate(sent):
        producer.produce(kafka_topic, key=str(i + 1).encode(), value=value)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(kafka_topic, p, 0) for p in range(3)])
    received = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            received.append(msg.value())
    consumer.close()
    assert sorted(received) == sorted(sent)


def test_platform_topic_exists_with_configured_partitions(kafka, settings):
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).topics
    assert settings.kafka_topic in topics
    assert len(topics[settings.kafka_topic].partitions) == settings.kafka_partitions


def test_postgres_query_through_sqlalchemy(postgres):
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres)
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar()
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
    assert version.startswith("15")
    assert {"reco_versions", "popular_lists", "serving_pointer"} <= tables


def test_serving_role_reads_but_cannot_write(postgres, settings):
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ProgrammingError

    reader = create_engine(settings.serving_database_url)
    with reader.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM serving_pointer")).scalar() == 1
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("UPDATE serving_pointer SET updated_at = now()"))


def test_spark_writes_and_reads_parquet(spark, tmp_path):
    rows = [(i, f"movie+{i}+1999", float(i % 5 + 1)) for i in range(100)]
    df = spark.createDataFrame(rows, "user_id long, movie_id string, rating double")
    out = str(tmp_path / "ratings.parquet")
    df.repartition(4).write.mode("overwrite").parquet(out)
    back = spark.read.parquet(out)
    assert back.count() == 100
    assert back.agg({"rating": "sum"}).collect()[0][0] == sum(r[2] for r in rows)


def test_airflow_api_is_healthy_and_lists_project_dags(local_services, settings):
    health = services.airflow_health(settings.airflow_port)
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"

    user, password = services.airflow_login()
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.airflow_port}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        token = json.loads(resp.read())["access_token"]

    expected = {p.stem for p in (services.REPO / "dags").glob("*.py") if p.stem != "__init__"}

    def listed():
        req = urllib.request.Request(
            f"http://127.0.0.1:{settings.airflow_port}/api/v2/dags?limit=100",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            ids = {d["dag_id"] for d in json.loads(resp.read())["dags"]}
        return (ids,) if expected <= ids else None

    # The dag-processor parses dags/ on its own schedule: poll with a deadline.
    (ids,) = services.wait_until(listed, 180, "airflow dag listing", None, interval=3)
    assert expected, "dags/ holds no DAG files"
    assert expected <= ids


def test_starting_twice_is_a_no_op(local_services):
    assert services.up(services.ALL, quiet=True) == []


def test_every_service_is_supervised_and_healthy_by_its_own_signal(local_services):
    from ops import supervise

    core = ("postgres", "kafka", *services.AIRFLOW_PROGRAMS)
    verdicts = {v.service: v for v in services.health()}
    assert set(core) <= set(verdicts)
    assert [f"{n}: {verdicts[n].detail}" for n in core if not verdicts[n].healthy] == []
    for name in core:
        assert supervise.info(name)["statename"] == "RUNNING", name
    rows = services.status()
    assert all(rows[name]["running"] for name in ("postgres", "kafka", "airflow"))
