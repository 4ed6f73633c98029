"""Supervision without running anything: the supervisord configuration generated from
settings, the restart counter's event handling, and how health is read and exported."""

from __future__ import annotations

import configparser
import re
import signal
import time
from pathlib import Path

import pytest

from ops import services, supervise, supervision_health, supervisor_events
from ops.supervision_health import Health

pytestmark = pytest.mark.unit


@pytest.fixture
def var_dir(tmp_path, monkeypatch):
    var = tmp_path / "var"
    monkeypatch.setenv("RECS_VAR_DIR", str(var))
    monkeypatch.setenv("RECS_POSTGRES_HOMES", str(tmp_path / "homes"))
    monkeypatch.setattr(services, "_server_user_reaches", lambda path: True)
    return var


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_every_service_program_restarts_with_back_off(var_dir):
    cluster = services.platform_postgres()
    programs = [
        services.postgres_program(cluster),
        services.kafka_program(var_dir / "server.properties", var_dir / "kafka.log"),
        *services.airflow_programs({"AIRFLOW_HOME": str(var_dir / "airflow")}),
        services.exporter_program(),
    ]
    assert [p.name for p in programs][:6] == ["postgres", "kafka", *services.AIRFLOW_PROGRAMS]
    for program in programs:
        section = parse(supervise.render_program(program))[f"program:{program.name}"]
        assert section["autorestart"] == "true" and section["autostart"] == "false"
        assert int(section["startretries"]) >= 10 and int(section["startsecs"]) >= 1
        assert section["stdout_logfile"] == str(program.log)
        assert section["killasgroup"] == "true"


def test_postgres_runs_in_the_foreground_and_stops_fast(var_dir):
    program = services.postgres_program(services.platform_postgres())
    section = parse(supervise.render_program(program))["program:postgres"]
    command = section["command"].split()
    assert Path(command[0]).name == "postgres" and "-D" in command
    assert "pg_ctl" not in section["command"]
    assert section["stopsignal"] == "INT"  # fast shutdown; TERM would wait for clients
    assert section["directory"] == "/"


def test_airflow_runs_as_four_processes_not_standalone(var_dir):
    argvs = {p.name: p.argv for p in services.airflow_programs({"AIRFLOW_HOME": "/x"})}
    commands = {
        name: argv[argv.index(services._airflow_bin()) + 1 :] for name, argv in argvs.items()
    }
    assert commands["airflow-scheduler"] == ["scheduler"]
    assert commands["airflow-dag-processor"] == ["dag-processor"]
    assert commands["airflow-triggerer"] == ["triggerer"]
    assert commands["airflow-apiserver"][0] == "api-server"
    assert not any("standalone" in argv for argv in commands.values())
    # batch work (every task runs under the scheduler) yields the CPU to the serving tier
    assert argvs["airflow-scheduler"][:3] == ["nice", "-n", "10"]
    assert argvs["airflow-dag-processor"][:3] == ["nice", "-n", "10"]
    assert argvs["airflow-apiserver"][0] == argvs["airflow-triggerer"][0] == services._airflow_bin()


def test_values_are_escaped_for_supervisord(var_dir):
    program = supervise.Program(
        "x",
        ["python", "-c", "print('100%')", "a b"],
        var_dir / "x.log",
        env={"URL": "postgresql://u:p%40ss@h:1/db", "PLAIN": "v,w"},
    )
    section = parse(supervise.render_program(program))["program:x"]
    assert "100%%" in section["command"] and "'a b'" in section["command"]
    assert section["environment"] == 'PLAIN="v,w",URL="postgresql://u:p%%40ss@h:1/db"'
    with pytest.raises(supervise.SupervisorError, match="double quote"):
        supervise.render_program(supervise.Program("y", ["true"], var_dir, env={"Q": 'a"b'}))


def test_supervisord_listens_on_a_private_unix_socket_only(var_dir):
    main = supervise.write_config([supervise.Program("x", ["true"], var_dir / "x.log")])
    config = parse(main.read_text())
    assert "inet_http_server" not in config
    assert config["unix_http_server"]["chmod"] == "0700"
    assert config["unix_http_server"]["file"] == str(supervise.socket_path())
    events = config["eventlistener:restart-counter"]["events"].split(",")
    assert events == ["PROCESS_STATE_STARTING", "PROCESS_STATE_EXITED", "TICK_60"]
    assert (main.parent / "conf.d" / "x.conf").exists()


def test_without_supervisord_nothing_is_running(var_dir):
    assert not supervise.alive() and not supervise.known("postgres")
    assert not supervise.running("postgres") and supervise.pid("postgres") is None
    assert not supervise.stop("postgres") and supervise.programs_running() == []
    assert supervise.restarts() == {}
    with pytest.raises(supervise.SupervisorError, match="not running"):
        supervise.kill("postgres")


def test_a_deep_var_dir_gets_a_short_socket_name(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / ("d" * 120)))
    assert len(str(supervise.socket_path())) < 100


def starting(name: str, from_state: str) -> tuple[dict, str]:
    headers = {"eventname": "PROCESS_STATE_STARTING"}
    return headers, f"processname:{name} groupname:{name} from_state:{from_state} tries:0"


def test_only_automatic_restarts_are_counted():
    counts: dict[str, int] = {}
    assert supervisor_events.record(counts, *starting("kafka", "STOPPED")) is None  # operator
    line = supervisor_events.record(counts, *starting("kafka", "EXITED"))  # crash, kill
    assert "restart kafka (from EXITED" in line
    supervisor_events.record(counts, *starting("kafka", "BACKOFF"))  # failed start, retried
    supervisor_events.record(counts, *starting("kafka", "FATAL"))  # revived after giving up
    supervisor_events.record(counts, {"eventname": "TICK_60"}, "when:1")
    assert counts == {"kafka": 3}


def test_what_an_exited_program_left_in_its_group_is_killed():
    killed = []
    headers = {"eventname": "PROCESS_STATE_EXITED"}
    payload = "processname:airflow-scheduler groupname:a from_state:RUNNING expected:0 pid:4242"
    line = supervisor_events.reap_group(headers, payload, killpg=lambda *a: killed.append(a))
    assert killed == [(4242, signal.SIGKILL)] and "airflow-scheduler (pid 4242)" in line

    def gone(pgid, sig):
        raise ProcessLookupError

    assert supervisor_events.reap_group(headers, payload, killpg=gone) is None  # nothing left
    starting_event = {"eventname": "PROCESS_STATE_STARTING"}
    assert supervisor_events.reap_group(starting_event, payload, killpg=gone) is None


class FakeSupervisor:
    def __init__(self, states: dict[str, str]):
        self.states, self.started = states, []

    def getAllProcessInfo(self):
        return [{"name": n, "statename": s} for n, s in self.states.items()]

    def startProcess(self, name, wait):
        self.started.append((name, wait))


def test_programs_supervisord_gave_up_on_are_started_again():
    api = FakeSupervisor({"postgres": "RUNNING", "airflow-scheduler": "FATAL", "x": "STOPPED"})
    assert supervisor_events.revive(api) == ["airflow-scheduler"]
    assert api.started == [("airflow-scheduler", False)]


def test_airflow_health_names_each_component_and_its_last_heartbeat():
    doc = {
        "metadatabase": {"status": "healthy"},
        "scheduler": {
            "status": "unhealthy",
            "latest_scheduler_heartbeat": "2026-12-04T23:00:00+00:00",
        },
        "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": "2026-12-04T23:05:00"},
        "dag_processor": {"status": None, "latest_dag_processor_heartbeat": None},
    }
    verdicts = supervision_health.parse_airflow_health(doc)
    assert verdicts["airflow-apiserver"].healthy and verdicts["airflow-triggerer"].healthy
    scheduler = verdicts["airflow-scheduler"]
    assert not scheduler.healthy and "2026-12-04T23:00:00" in scheduler.detail
    assert scheduler.since == 1796425200.0
    processor = verdicts["airflow-dag-processor"]
    assert not processor.healthy and "never seen" in processor.detail
    db_down = supervision_health.parse_airflow_health({"metadatabase": {"status": "unhealthy"}})
    assert not db_down["airflow-apiserver"].healthy


def test_a_process_that_is_not_running_is_unhealthy_since_it_stopped():
    running = {"statename": "RUNNING", "pid": 1, "start": 10, "stop": 0, "now": 20}
    assert supervision_health.process_verdict("kafka", running) is None
    exited = {"statename": "EXITED", "exitstatus": -9, "start": 10, "stop": 15, "now": 20}
    verdict = supervision_health.process_verdict("kafka", exited)
    assert not verdict.healthy and verdict.since == 15 and "-9" in verdict.detail
    restarting = supervision_health.process_verdict("kafka", {**exited, "statename": "STARTING"})
    assert restarting.since == 15  # unhealthy since the kill, not since the new start
    stopping = supervision_health.process_verdict("kafka", {**running, "statename": "STOPPING"})
    assert stopping.since == 20
    never = {"statename": "STOPPED", "start": 0, "stop": 0, "now": 20}
    assert supervision_health.process_verdict("kafka", never).since == 20
    fatal = {"statename": "FATAL", "spawnerr": "Exited too quickly", "stop": 15, "now": 20}
    assert "Exited too quickly" in supervision_health.process_verdict("kafka", fatal).detail
    stopped = supervision_health.process_verdict("kafka", {**exited, "statename": "STOPPED"})
    assert "operator" in stopped.detail
    assert not supervision_health.process_verdict("kafka", None).healthy


def test_unhealthy_since_is_remembered_across_checks(var_dir):
    supervision_health.remember([Health("kafka", False)], now=100.0)
    later = [Health("kafka", False), Health("postgres", True)]
    supervision_health.remember(later, now=160.0)
    assert later[0].since == 100.0  # the first check that saw it
    supervision_health.remember([Health("kafka", True)], now=200.0)
    fresh = [Health("kafka", False)]
    supervision_health.remember(fresh, now=300.0)
    assert fresh[0].since == 300.0  # a recovery resets it
    supervision_health.remember([Health("postgres", True)], now=400.0)  # kafka gone from status
    back = [Health("kafka", False)]
    supervision_health.remember(back, now=500.0)
    assert back[0].since == 500.0


def test_prometheus_text_exports_up_restarts_and_since():
    verdicts = [
        Health("postgres", True, restarts=2),
        Health("airflow-scheduler", False, "exited", since=1700000000.0, restarts=1),
    ]
    text = supervision_health.prometheus_text(verdicts, now=1700000060.0)
    assert 'recs_service_up{service="postgres"} 1' in text
    assert 'recs_service_up{service="airflow-scheduler"} 0' in text
    assert 'recs_service_restarts_total{service="postgres"} 2' in text
    assert 'recs_service_unhealthy_since_seconds{service="airflow-scheduler"} 1700000000.0' in text
    assert 'recs_service_unhealthy_since_seconds{service="postgres"} 0' in text
    assert "# TYPE recs_service_restarts_total counter" in text


def test_status_names_the_unhealthy_program_and_exits_non_zero(capsys):
    now = time.time()
    rows = {
        "postgres": {"running": True, "address": "127.0.0.1:1", "log": "l", "restarts": 0},
        "airflow": {
            "running": False,
            "address": "http://127.0.0.1:2",
            "log": "l",
            "restarts": 1,
            "unhealthy": [Health("airflow-scheduler", False, "exited with status -9", now - 5)],
        },
    }
    assert services.print_status(rows) == 3
    out = capsys.readouterr().out
    assert re.search(r"^postgres +up +127\.0\.0\.1:1", out, re.MULTILINE)
    assert re.search(r"^airflow +down", out, re.MULTILINE)
    assert "unhealthy: airflow-scheduler since " in out and "(5 s): exited with status -9" in out
    rows["airflow"].update(running=True, unhealthy=[])
    assert services.print_status(rows) == 0


def test_a_failing_tool_shows_its_own_last_lines():
    with pytest.raises(services.ToolError) as caught:
        services.run_tool(["sh", "-c", "for i in $(seq 1 40); do echo line $i; done; exit 7"])
    message = str(caught.value)
    assert "sh exited 7" in message and "line 40" in message and "line 21" in message
    assert "line 20\n" not in message  # only the last 20 lines


def test_spark_row_is_in_process_until_a_cluster_is_started_then_judged_by_its_workers(
    tmp_path, monkeypatch
):
    from contracts import settings as settings_mod
    from ops import spark_cluster

    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    cfg = settings_mod.load()
    assert services.spark_row(cfg)["log"] == "(in-process)"

    services.write_pid(spark_cluster.master().name, 1)
    workers = [{"state": "ALIVE"}, {"state": "DEAD"}]
    cluster = {"master_url": "spark://127.0.0.1:7077", "running": False, "workers": workers}
    monkeypatch.setattr(spark_cluster, "status", lambda: cluster)
    row = services.spark_row(cfg)
    assert (row["running"], row["address"]) == (False, "spark://127.0.0.1:7077")
    assert row["log"].endswith("spark-master.log")
    assert [(v.service, v.detail) for v in row["unhealthy"]] == [("spark", "1 workers alive")]
    cluster.update(running=True, workers=[{"state": "ALIVE"}] * 2)
    assert "unhealthy" not in services.spark_row(cfg)
