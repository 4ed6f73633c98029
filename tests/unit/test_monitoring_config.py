"""The monitoring stack's configuration, generated from settings without starting anything:
Prometheus's scrape jobs, rules and Alertmanager; Alertmanager's route to the receiver; the
supervised programs' arguments; and how the stack is wired into `ops.services` (checked by
the real promtool and amtool where the files are written)."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml

from contracts import settings as settings_mod
from ops import monitoring, services, supervise, supervision_health

pytestmark = pytest.mark.unit

PORTS = {
    "PROMETHEUS_PORT": "19090",
    "PUSHGATEWAY_PORT": "19091",
    "ALERTMANAGER_PORT": "19093",
    "ALERT_RECEIVER_PORT": "19095",
    "SERVING_PORT": "18082",
}
KNOBS = (  # unset: their defaults (the *_URL ones: the stack on the ports above)
    "PROMETHEUS_URL",
    "PUSHGATEWAY_URL",
    "ALERTMANAGER_URL",
    "PROMETHEUS_SCRAPE_INTERVAL_S",
    "PROMETHEUS_EVALUATION_INTERVAL_S",
    "PROMETHEUS_EXTRA_RULES",
    "ALERTMANAGER_GROUP_WAIT_S",
    "ALERTMANAGER_GROUP_INTERVAL_S",
    "ALERTMANAGER_REPEAT_INTERVAL_S",
)


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """A private var dir and ports; the interval knobs unset (their defaults)."""
    var = tmp_path / "var"
    monkeypatch.setenv("RECS_VAR_DIR", str(var))
    for name, value in PORTS.items():
        monkeypatch.setenv(name, value)
    for name in KNOBS:
        monkeypatch.delenv(name, raising=False)
    return var


def prometheus_doc(rules: list[Path] | None = None) -> dict:
    cfg = settings_mod.load()
    return yaml.safe_load(monitoring.render_prometheus(cfg, rules or monitoring.rule_files()))


def jobs(doc: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in doc["scrape_configs"]}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(15, "15s"), (1, "1s"), (1.5, "1500ms"), (0.25, "250ms"), (14400, "14400s")],
)
def test_durations_are_written_as_prometheus_reads_them(seconds, text):
    assert monitoring.duration(seconds) == text


def test_a_duration_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        monitoring.duration(0)


def test_prometheus_scrapes_serving_and_the_pushgateway_on_loopback(env):
    doc = prometheus_doc()
    assert doc["global"] == {
        "scrape_interval": "15s",
        "scrape_timeout": "10s",
        "evaluation_interval": "15s",
    }
    serving, pushgateway = jobs(doc)["serving"], jobs(doc)["pushgateway"]
    assert serving["static_configs"] == [{"targets": ["127.0.0.1:18082"]}]
    assert serving["metrics_path"] == "/metrics"
    assert pushgateway["static_configs"] == [{"targets": ["127.0.0.1:19091"]}]
    assert pushgateway["honor_labels"] is True  # the pushing job's labels, not the gateway's
    assert "honor_labels" not in serving
    targets = doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:19093"]


def test_intervals_come_from_the_knobs_and_the_timeout_fits_the_interval(env, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_SCRAPE_INTERVAL_S", "1")
    monkeypatch.setenv("PROMETHEUS_EVALUATION_INTERVAL_S", "2.5")
    assert prometheus_doc()["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",  # Prometheus refuses a timeout longer than the interval
        "evaluation_interval": "2500ms",
    }


def test_every_repository_rule_file_is_loaded_by_absolute_path(env):
    doc = prometheus_doc()
    expected = sorted(
        str(p) for p in (settings_mod.REPO_ROOT / "ops" / "prometheus").glob("alerts-*.yml")
    )
    assert expected and doc["rule_files"] == expected
    assert all(Path(p).is_absolute() and Path(p).exists() for p in doc["rule_files"])


def test_extra_rules_are_added_after_the_repository_ones(env, tmp_path, monkeypatch):
    extra = tmp_path / "rules"
    extra.mkdir()
    for name in ("b.yml", "a.yaml", "notes.txt"):
        (extra / name).write_text("groups: []\n")
    monkeypatch.setenv("PROMETHEUS_EXTRA_RULES", str(extra))
    files = monitoring.rule_files(settings_mod.prometheus_extra_rules())
    assert files[-2:] == [extra / "a.yaml", extra / "b.yml"]
    assert all(f.name.startswith("alerts-") for f in files[:-2])


def test_alertmanager_routes_every_alert_alone_to_the_receiver_with_resolutions(env):
    doc = yaml.safe_load(monitoring.render_alertmanager(settings_mod.load()))
    route = doc["route"]
    assert route == {
        "receiver": "alert-receiver",
        "group_by": ["..."],
        "group_wait": "10s",
        "group_interval": "30s",
        "repeat_interval": "14400s",
    }
    [receiver] = doc["receivers"]
    assert receiver["name"] == "alert-receiver"
    assert receiver["webhook_configs"] == [
        {"url": "http://127.0.0.1:19095/alerts", "send_resolved": True}
    ]


def test_alertmanager_timing_knobs(env, monkeypatch):
    monkeypatch.setenv("ALERTMANAGER_GROUP_WAIT_S", "1")
    monkeypatch.setenv("ALERTMANAGER_GROUP_INTERVAL_S", "2")
    monkeypatch.setenv("ALERTMANAGER_REPEAT_INTERVAL_S", "60")
    route = yaml.safe_load(monitoring.render_alertmanager(settings_mod.load()))["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "2s",
        "60s",
    )


def test_written_config_passes_promtool_and_amtool(env):
    where = monitoring.write_config()
    assert where.home == env / "monitoring"
    assert where.prometheus_config.exists() and where.alertmanager_config.exists()
    assert where.prometheus_data.is_dir() and where.alertmanager_data.is_dir()
    assert where.pushgateway_store.parent.is_dir()


def test_a_broken_rule_file_fails_the_start_with_promtools_words(env, tmp_path, monkeypatch):
    extra = tmp_path / "rules"
    extra.mkdir()
    (extra / "bad.yml").write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(\n"
    )
    monkeypatch.setenv("PROMETHEUS_EXTRA_RULES", str(extra))
    with pytest.raises(services.ToolError, match="bad.yml"):
        monitoring.write_config()


def section(program: supervise.Program) -> configparser.SectionProxy:
    parser = configparser.RawConfigParser()
    parser.read_string(supervise.render_program(program))
    return parser[f"program:{program.name}"]


def test_four_supervised_programs_on_loopback_with_state_under_var(env):
    where = monitoring.layout()
    programs = {p.name: p for p in monitoring.programs(where)}
    assert list(programs) == ["prometheus", "pushgateway", "alertmanager", "alert-receiver"]
    prometheus = programs["prometheus"].argv
    assert "--web.listen-address=127.0.0.1:19090" in prometheus
    assert "--web.enable-lifecycle" in prometheus
    assert f"--storage.tsdb.path={env / 'monitoring' / 'prometheus'}" in prometheus
    pushgateway = programs["pushgateway"].argv
    assert "--web.listen-address=127.0.0.1:19091" in pushgateway
    assert (
        f"--persistence.file={env / 'monitoring' / 'pushgateway' / 'metrics.store'}" in pushgateway
    )
    alertmanager = programs["alertmanager"].argv
    assert "--web.listen-address=127.0.0.1:19093" in alertmanager
    assert "--cluster.listen-address=" in alertmanager  # no gossip
    assert f"--storage.path={env / 'monitoring' / 'alertmanager'}" in alertmanager
    receiver = programs["alert-receiver"].argv
    assert receiver[1:3] == ["-m", "ops.alert_receiver"]
    assert receiver[3:] == ["--port", "19095", "--log", str(env / "log" / "alerts.jsonl")]
    for program in programs.values():
        conf = section(program)
        assert conf["autorestart"] == "true" and conf["stopasgroup"] == "true"
        assert conf["stdout_logfile"] == str(env / "log" / f"{program.name}.log")


def test_ready_urls_are_each_programs_own_signal(env):
    assert monitoring.ready_urls() == {
        "prometheus": "http://127.0.0.1:19090/-/ready",
        "pushgateway": "http://127.0.0.1:19091/-/ready",
        "alertmanager": "http://127.0.0.1:19093/-/ready",
        "alert-receiver": "http://127.0.0.1:19095/healthz",
    }


def test_the_stack_is_a_service_of_ops_services(env, monkeypatch):
    monkeypatch.setattr(services, "_server_user_reaches", lambda path: True)
    assert services.ALL[-1] == "monitoring"
    assert services.PROGRAMS["monitoring"] == monitoring.PROGRAMS
    assert services.STARTERS["monitoring"] is services.start_monitoring
    assert set(monitoring.PROGRAMS) <= set(services.status_programs())
    probes = supervision_health.signals()
    assert set(monitoring.PROGRAMS) <= set(probes)
    # Nothing listens on these ports: each probe says which URL failed.
    verdict = probes["alert-receiver"]()
    assert not verdict.healthy and "http://127.0.0.1:19095/healthz" in verdict.detail


def test_setup_names_missing_monitoring_packages_it_cannot_install(monkeypatch):
    monkeypatch.setattr(services.os, "geteuid", lambda: 1000)  # not root: no apt-get
    monkeypatch.setattr(
        services.shutil, "which", lambda exe: None if "alertmanager" in exe else exe
    )
    with pytest.raises(services.ServiceError, match="install Debian's prometheus-alertmanager$"):
        services.ensure_monitoring_tools()
    monkeypatch.setattr(monitoring.shutil, "which", lambda exe: None)
    with pytest.raises(services.ServiceError, match="Debian package prometheus-pushgateway"):
        monitoring.tool("prometheus-pushgateway")


def test_the_exporter_says_when_pushing_fails_and_when_it_works_again(env, capsys):
    verdicts = [supervision_health.Health("prometheus", True)]
    assert services._push_health(verdicts, None) is False  # nothing listens on 19091
    assert "push to http://127.0.0.1:19091 failed" in capsys.readouterr().out
    assert services._push_health(verdicts, False) is False
    assert capsys.readouterr().out == ""  # said once, not every 30 s
