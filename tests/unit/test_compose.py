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


def _depends(service: dict) -> dict:
    """depends_on in either form (a list of names, or names with conditions) as a dict."""
    depends = service.get("depends_on") or {}
    return {name: {} for name in depends} if isinstance(depends, list) else depends


def test_every_service_restarts_and_has_a_health_check(compose):
    # yaml.safe_load resolves the `<<: *airflow` merges, so inherited keys count.
    missing = []
    for name, service in compose["services"].items():
        restart = service.get("restart")
        if restart is None:
            missing.append(f"{name}: no restart policy")
        elif str(restart) == "no":
            # a one-shot job: others wait for it to finish instead of for it to be healthy
            waiters = [
                other
                for other, spec in compose["services"].items()
                if _depends(spec).get(name, {}).get("condition") == "service_completed_successfully"
            ]
            if not waiters:
                missing.append(f"{name}: restart 'no' but nothing waits for it to complete")
            continue
        elif restart not in ("unless-stopped", "always", "on-failure"):
            missing.append(f"{name}: restart {restart!r}")
        check = service.get("healthcheck") or {}
        if not check.get("test") or check.get("disable"):
            missing.append(f"{name}: no health check")
    assert missing == []


@pytest.mark.parametrize(
    ("service", "signal"),
    [
        ("postgres", "SELECT 1"),
        ("kafka", "kafka-broker-api-versions"),
        ("airflow-apiserver", "/api/v2/monitor/health"),
        ("airflow-scheduler", "SchedulerJob"),
        ("airflow-dag-processor", "DagProcessorJob"),
        ("airflow-triggerer", "TriggererJob"),
        ("serving", "/readyz"),
    ],
)
def test_health_checks_read_the_signals_status_reads(compose, service, signal):
    test = compose["services"][service]["healthcheck"]["test"]
    assert signal in " ".join(test)


def test_dependents_wait_for_health_not_for_start(compose):
    for name in ("airflow-scheduler", "airflow-apiserver", "serving"):
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
