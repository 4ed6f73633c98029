"""A shadow start racing retire on real Postgres (a private schema of the shared cluster), as
tests/integration/test_publish_races.py does for publish and experiment start: one connection
holds the operation mid-flight with the locks the real one takes, the other runs in a thread
and must wait (seen in pg_stat_activity), then the end state must be consistent."""

from __future__ import annotations

import psycopg2
import pytest

from jobs.publish import experiments, publish
from tests.conftest import private_schema
from tests.integration.test_publish_races import (
    Background,
    as_app,
    attached,
    begin_retire,
    four_versions,
    status_of,
    waits_on_a_lock,
)
from tests.support.harness import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def url(postgres):
    with private_schema(postgres) as private:
        yield private


def test_retire_waits_for_a_shadow_start_in_flight_and_keeps_the_shadow(url):
    four_versions(url)
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:  # start_shadow's statements, left uncommitted
            cur.execute(publish.query("experiments", "shadow_lock"))
            cur.execute(publish.query("versions", "lock"), ("old2",))
            cur.execute(publish.query("experiments", "shadow_insert"), ("old2",))
        retire = Background(publish.retire_old, keep=0, url=as_app(url, "race-retire"))
        wait_for(lambda: waits_on_a_lock(url, "race-retire"), 20, "retire waiting on the shadow")
        holder.commit()
    finally:
        holder.close()
    assert sorted(retire.result()) == ["old1"]
    assert status_of(url, "old2") == "audited" and attached(url, "old2")


def test_a_shadow_start_of_a_version_being_retired_waits_then_is_refused(url):
    four_versions(url)
    holder = psycopg2.connect(url)
    try:
        begin_retire(holder, "old2")
        with holder.cursor() as cur:  # retire's share lock on the shadow table, as _retire_one
            cur.execute(publish.query("experiments", "lock_shadow_for_retire"))
        start = Background(experiments.start_shadow, "old2", as_app(url, "race-shadow"))
        wait_for(lambda: waits_on_a_lock(url, "race-shadow"), 20, "shadow start waiting")
        holder.commit()
    finally:
        holder.close()
    with pytest.raises(experiments.ExperimentError, match="old2 is retired"):
        start.result()
    assert experiments.active_shadow(url) is None


def test_the_cli_starts_shows_and_stops_a_shadow(url, monkeypatch, capsys):
    four_versions(url)
    monkeypatch.setenv("DATABASE_URL", url)
    assert experiments.main(["shadow"]) == 1
    assert experiments.main(["shadow", "--version", "live2"]) == 1  # the live version
    assert "live2 is served" in capsys.readouterr().err
    assert experiments.main(["shadow", "--version", "old1"]) == 0
    assert experiments.main(["shadow"]) == 0
    assert "shadow old1 (model model-old1)" in capsys.readouterr().out
    assert experiments.main(["shadow", "--stop"]) == 0
    assert "stopped shadow old1" in capsys.readouterr().out
    assert experiments.active_shadow(url) is None
