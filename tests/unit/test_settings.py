"""Settings come from the environment, with the embedded defaults of DESIGN.md."""

from __future__ import annotations

import pytest

from contracts import settings

pytestmark = pytest.mark.unit


def test_defaults_match_design(monkeypatch):
    for name in settings.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    cfg = settings.load()
    assert cfg.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert cfg.kafka_topic == "movielog"
    assert cfg.database_url.endswith("@127.0.0.1:55432/recs")
    assert cfg.spark_master_url == "local[2]"
    assert cfg.serving_port == 8082
    assert cfg.metadata_api_url == "http://127.0.0.1:8090"


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:29092")
    monkeypatch.setenv("SERVING_PORT", "9000")
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    cfg = settings.load()
    assert cfg.kafka_bootstrap_servers == "kafka:29092"
    assert cfg.serving_port == 9000
    assert cfg.lake_dir == tmp_path / "lake"


def test_bad_number_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SERVING_PORT", "eighty")
    with pytest.raises(ValueError):
        settings.load()


def test_fixed_ports_are_the_ones_reserved_from_the_ephemeral_range(monkeypatch):
    from ops import services

    for name in (*settings.DEFAULTS, "KAFKA_CONTROLLER_PORT"):
        monkeypatch.delenv(name, raising=False)
    # DESIGN.md's ports, and Kafka's controller listener clear of Alertmanager's 9093
    assert services.fixed_ports() == [
        7077, 8070, 8080, 8082, 8090, 8091, 9090, 9091, 9092, 9093, 9094, 9095, 55432
    ]  # fmt: skip
