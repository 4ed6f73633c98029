"""docker-compose.yml, checked statically (no Docker engine here): it parses, names every service
the README mentions, uses the settings module's variable names and ports, and holds no secrets."""

from __future__ import annotations

import re

import pytest
import yaml

from contracts import settings

pytestmark = pytest.mark.unit

REPO = settings.REPO_ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_the_readme_mentions_are_defined(compose):
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"`compose:([a-z0-9-]+)`", readme))
    assert listed, "README should name the compose services as `compose:<name>`"
    assert listed <= set(compose["services"])
    for role in (
        "kafka",
        "postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "spark-master",
        "spark-worker",
        "serving",
        "prometheus",
        "grafana",
    ):
        assert role in compose["services"]


def test_variable_names_agree_with_settings(compose):
    env = compose["x-platform-env"]
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC",
        "DATABASE_URL",
        "SERVING_DATABASE_URL",
        "SPARK_MASTER_URL",
        "SERVING_PORT",
        "METADATA_API_URL",
    ):
        assert name in env and name in settings.DEFAULTS
    assert set(env) <= set(settings.DEFAULTS)


def _published_port(service: dict, container_port: int) -> int:
    for mapping in service.get("ports", []):
        parts = str(mapping).split(":")
        if int(parts[-1]) == container_port:
            return int(parts[-2])
    raise AssertionError(f"container port {container_port} not published")


def test_ports_agree_with_settings(compose):
    defaults = settings.DEFAULTS
    services = compose["services"]
    assert _published_port(services["serving"], 8082) == int(defaults["SERVING_PORT"])
    assert _published_port(services["airflow-apiserver"], 8080) == int(defaults["AIRFLOW_PORT"])
    kafka_port = int(defaults["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    assert _published_port(services["kafka"], 9092) == kafka_port
    pg_port = int(re.search(r":(\d+)/", defaults["DATABASE_URL"]).group(1))
    assert _published_port(services["postgres"], 5432) == pg_port
    assert compose["x-platform-env"]["SERVING_PORT"] == int(defaults["SERVING_PORT"])


def test_no_secrets_in_the_file():
    text = (REPO / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|_KEY)\s*:", line):
            assert "${" in line, f"literal secret in docker-compose.yml: {line.strip()}"
    for url in re.findall(r"postgresql(?:\+psycopg2)?://[^\s]+", text):
        assert "${" in url, f"database URL with a literal password: {url}"
    example = (REPO / ".env.example").read_text()
    for line in example.splitlines():
        if re.match(r"[A-Z_]*(PASSWORD|SECRET)[A-Z_]*=", line):
            assert line.endswith("="), f".env.example must leave secrets empty: {line}"
