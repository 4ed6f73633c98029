"""docker-compose.yml, checked statically (no Docker engine here): it parses, names every service
the README mentions, uses the settings module's variable names and ports, and holds no secrets."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

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
        "pushgateway",
        "alertmanager",
        "alert-receiver",
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
    # the *_URL overrides of the monitoring stack are read by Settings' properties; the Spark
    # worker's size by settings' knobs; PYSPARK_PYTHON is Spark's own (jobs/spark.py)
    overrides = {"PROMETHEUS_URL", "PUSHGATEWAY_URL", "ALERTMANAGER_URL", "PYSPARK_PYTHON"}
    overrides |= {"SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY"}
    assert set(env) <= set(settings.DEFAULTS) | overrides
    assert env["PUSHGATEWAY_URL"] == "http://pushgateway:9091"  # the DAG tasks push there


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
        ("prometheus", "/-/ready"),
        ("pushgateway", "/-/ready"),
        ("alertmanager", "/-/ready"),
        ("alert-receiver", "/healthz"),
    ],
)
def test_health_checks_read_the_signals_status_reads(compose, service, signal):
    test = compose["services"][service]["healthcheck"]["test"]
    assert signal in " ".join(test)


def test_dependents_wait_for_health_not_for_start(compose):
    for name in ("airflow-scheduler", "airflow-apiserver", "serving"):
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name


def _bind_mounts(service: dict) -> dict[str, str]:
    """{container path: repository path} of a service's ./ bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def test_every_mounted_file_exists(compose):
    missing = [
        f"{name}: {source}"
        for name, service in compose["services"].items()
        for source in _bind_mounts(service).values()
        if not (REPO / source).exists()
    ]
    assert missing == []


def test_monitoring_images_ports_and_mounts(compose):
    services = compose["services"]
    defaults = settings.DEFAULTS
    for name, image, port, setting in (
        ("prometheus", "prom/prometheus:", 9090, "PROMETHEUS_PORT"),
        ("pushgateway", "prom/pushgateway:", 9091, "PUSHGATEWAY_PORT"),
        ("alertmanager", "prom/alertmanager:", 9093, "ALERTMANAGER_PORT"),
    ):
        assert services[name]["image"].startswith(image), name
        assert _published_port(services[name], port) == int(defaults[setting]), name
    assert _bind_mounts(services["prometheus"]) == {"/etc/prometheus": "./ops/prometheus"}
    assert _bind_mounts(services["alertmanager"]) == {
        "/etc/alertmanager/alertmanager.yml": "./ops/alertmanager/alertmanager.yml"
    }
    assert _bind_mounts(services["grafana"]) == {
        "/etc/grafana/provisioning": "./ops/grafana/provisioning",
        "/var/lib/grafana/dashboards": "./ops/grafana/dashboards",
    }
    assert "--persistence.file=/pushgateway/metrics.store" in services["pushgateway"]["command"]
    assert "--cluster.listen-address=" in services["alertmanager"]["command"]
    receiver = services["alert-receiver"]
    assert receiver["image"] == services["serving"]["image"]
    assert receiver["command"][:3] == ["python", "-m", "ops.alert_receiver"]
    assert "9095" in receiver["command"]
    assert "0.0.0.0" in receiver["command"]  # noqa: S104 - reachable from alertmanager
    assert "lake:/var/lib/recs" in receiver["volumes"]  # alerts.jsonl beside the lake


def test_compose_prometheus_scrapes_serving_and_the_pushgateway_and_alerts():
    doc = yaml.safe_load((REPO / "ops" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    assert jobs["serving"]["static_configs"][0]["targets"] == ["serving:8082"]
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == ["pushgateway:9091"]
    assert jobs["pushgateway"]["honor_labels"] is True
    targets = doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    # the glob, resolved against the mounted directory, loads every rule file of the repo
    assert doc["rule_files"] == ["alerts-*.yml"]
    assert len(list((REPO / "ops" / "prometheus").glob("alerts-*.yml"))) >= 2


def test_compose_alertmanager_routes_to_the_receiver_with_resolutions():
    doc = yaml.safe_load((REPO / "ops" / "alertmanager" / "alertmanager.yml").read_text())
    [receiver] = doc["receivers"]
    assert doc["route"]["receiver"] == receiver["name"]
    assert receiver["webhook_configs"] == [
        {"url": "http://alert-receiver:9095/alerts", "send_resolved": True}
    ]
    assert int(settings.DEFAULTS["ALERT_RECEIVER_PORT"]) == 9095


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards():
    provisioning = REPO / "ops" / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert (source["type"], source["url"], source["uid"]) == (
        "prometheus",
        "http://prometheus:9090",
        "prometheus",
    )
    [provider] = yaml.safe_load((provisioning / "dashboards" / "provider.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = list((REPO / "ops" / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "no dashboard JSON to provision"
    # every panel's datasource is the provisioned one
    used = set(re.findall(r'"uid":\s*"([^"]+)"', "".join(p.read_text() for p in dashboards)))
    assert source["uid"] in used


# The Spark cluster: executors run the jobs' Python (jobs.*, numpy, pandas, scipy) on the paths
# the driver, an Airflow task, hands them.
SPARK = ("spark-master", "spark-worker")
DRIVERS = ("airflow-scheduler", "airflow-triggerer", "airflow-dag-processor", "airflow-apiserver")
DOCKERFILE = REPO / "ops" / "docker" / "Dockerfile"


def _pinned(package: str) -> str:
    [version] = re.findall(
        rf"^{package}==(\S+)", (REPO / "requirements.txt").read_text(), flags=re.MULTILINE
    )
    return version


def _spark_home() -> str:
    """Where the Dockerfile links the installed pyspark package (its bin/ and jars/)."""
    [home] = re.findall(
        r"^RUN ln -s .*import os, pyspark.* (\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE
    )
    return home


def _default(value: str) -> str:
    """The default of a `${NAME:-default}` value."""
    return re.fullmatch(r"\$\{\w+:-(.+)\}", value).group(1)


def _named_mounts(service: dict) -> dict[str, str]:
    """{volume name: container path} of a service's named-volume mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if not source.startswith(("./", "/")):
            mounts[source] = target
    return mounts


def test_spark_runs_the_airflow_image(compose):
    services = compose["services"]
    airflow = services["airflow-scheduler"]
    assert airflow["build"]["dockerfile"] == str(DOCKERFILE.relative_to(REPO))
    for name in SPARK:
        assert services[name].get("build") == airflow["build"], name
        assert services[name].get("image") == airflow["image"], name


def test_spark_in_the_image_is_the_pinned_pyspark(compose):
    pin = _pinned("pyspark")
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^COPY requirements\.txt", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^RUN pip install .*-r requirements\.txt", dockerfile, flags=re.MULTILINE)
    # any Spark image named by tag must be the pinned version
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "spark" in image:
            assert image.rsplit(":", 1)[-1] == pin, f"{name}: {image} against pyspark=={pin}"
    # the daemons start from the path the Dockerfile links to the installed pyspark package
    for name in SPARK:
        assert compose["services"][name]["command"][0] == f"{_spark_home()}/bin/spark-class"


def test_workers_register_with_the_master_the_drivers_use(compose):
    services = compose["services"]
    url = compose["x-platform-env"]["SPARK_MASTER_URL"]
    master = urlsplit(url)
    assert (master.scheme, master.hostname) == ("spark", "spark-master")
    assert services[master.hostname]["command"][-1] == "org.apache.spark.deploy.master.Master"
    # the master binds and advertises the name the others dial, and is checked there
    assert services["spark-master"]["environment"]["SPARK_MASTER_HOST"] == master.hostname
    probe = " ".join(services["spark-master"]["healthcheck"]["test"])
    assert f"/dev/tcp/{master.hostname}/{master.port}" in probe
    worker = services["spark-worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["command"][-2:] == ["org.apache.spark.deploy.worker.Worker", url]
    assert worker["depends_on"]["spark-master"]["condition"] == "service_healthy"
    env = worker["environment"]
    assert int(_default(env["SPARK_WORKER_CORES"])) >= 1
    assert re.fullmatch(r"\d+[mg]", _default(env["SPARK_WORKER_MEMORY"]))
    # the driver sizes its executors by the worker's size (jobs/spark.py)
    for name in ("SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY"):
        assert services["airflow-scheduler"]["environment"][name] == env[name]
    # a worker advertises its container's address: nothing pins SPARK_LOCAL_IP (0.0.0.0 would
    # be handed to the master and the driver as the worker's address)
    assert "SPARK_LOCAL_IP" not in env
    assert not re.search(r"^ENV .*SPARK_LOCAL_IP", DOCKERFILE.read_text(), flags=re.MULTILINE)


def test_executors_run_the_drivers_python(compose):
    services = compose["services"]
    python = services["airflow-scheduler"]["environment"]["PYSPARK_PYTHON"]
    assert services["spark-worker"]["environment"]["PYSPARK_PYTHON"] == python
    # the official python image's interpreter, the one requirements.txt is installed into
    assert re.search(r"^FROM python:3\.\d+", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert python.startswith("/usr/local/bin/python")


def test_workers_share_the_state_volume_with_the_drivers(compose):
    services = compose["services"]
    var_dir = compose["x-platform-env"]["RECS_VAR_DIR"]
    assert "lake" in compose["volumes"]
    for name in (*DRIVERS, "spark-worker"):
        assert _named_mounts(services[name]).get("lake") == var_dir, name
        assert services[name]["environment"]["RECS_VAR_DIR"] == var_dir, name
    env = services["spark-worker"]["environment"]
    # executors' scratch on the volume; the worker's own directory outside the root-owned
    # pyspark package (its default, SPARK_HOME/work), which the image's user may not write
    assert PurePosixPath(env["SPARK_LOCAL_DIRS"]).is_relative_to(var_dir)
    assert re.search(r"^USER (?!root)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert not PurePosixPath(env["SPARK_WORKER_DIR"]).is_relative_to(_spark_home())
