"""ops.services choices that need no running service: the KRaft cluster id and where the
platform's Postgres cluster lives."""

from __future__ import annotations

import base64
import uuid

import pytest

from ops import services

pytestmark = pytest.mark.unit


def test_kafka_cluster_id_never_starts_with_a_dash(monkeypatch):
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 "+" / "-" slot: 62
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    plain = uuid.UUID(int=42)
    draws = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    cluster_id = services.kafka_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


@pytest.fixture
def var_dir(tmp_path, monkeypatch):
    var = tmp_path / "checkout" / ".var"
    monkeypatch.setenv("RECS_VAR_DIR", str(var))
    monkeypatch.setenv("RECS_POSTGRES_HOMES", str(tmp_path / "homes"))
    return var


def test_the_cluster_stays_in_var_when_the_server_user_can_reach_it(var_dir, monkeypatch):
    monkeypatch.setattr(services, "_server_user_reaches", lambda path: True)
    cluster = services.platform_postgres()
    assert cluster.data_dir == var_dir / "postgres" / "data"
    assert cluster.log == var_dir / "log" / "postgres.log"


def test_an_unreachable_checkout_gets_a_recorded_home_of_its_own(var_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "_server_user_reaches", lambda path: False)
    cluster = services.platform_postgres()
    home = cluster.data_dir.parent
    assert home.parent == tmp_path / "homes" and len(home.name) == 16
    assert cluster.log == home / "postgres.log" and cluster.socket_dir == home / "run"
    services._record_postgres_home(cluster)
    assert (var_dir / "postgres.home").read_text().strip() == str(home)
    assert (var_dir / "log" / "postgres.log").readlink() == home / "postgres.log"
    # Once recorded, the choice holds even if the checkout later becomes reachable.
    monkeypatch.setattr(services, "_server_user_reaches", lambda path: True)
    assert services.postgres_home() == home


def test_an_existing_cluster_in_var_is_kept(var_dir, monkeypatch):
    (var_dir / "postgres" / "data").mkdir(parents=True)
    (var_dir / "postgres" / "data" / "PG_VERSION").write_text("15\n")
    monkeypatch.setattr(services, "_server_user_reaches", lambda path: False)
    assert services.postgres_home() == var_dir / "postgres"


def test_setup_names_a_missing_server_it_cannot_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(services, "PG_BIN", tmp_path / "no-postgres")
    monkeypatch.setattr(services.os, "geteuid", lambda: 1000)  # not root: no apt-get
    monkeypatch.setattr(services, "fetch_kafka_jars", lambda: tmp_path)
    services.fetch_downloads()
    assert f"{tmp_path / 'no-postgres'}/initdb is missing" in capsys.readouterr().err
    with pytest.raises(services.ServiceError, match="install postgresql-15"):
        services.PostgresCluster(tmp_path / "data", 1, tmp_path / "log").init()
