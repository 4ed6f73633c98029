"""A supervised program that cannot start: the error names it and shows its own last lines
of output, and status reports it unhealthy (supervisord's own state, no guessing)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from ops import services, supervise, supervision_health

pytestmark = pytest.mark.integration


@pytest.fixture
def private_supervisord(monkeypatch):
    var = Path(tempfile.mkdtemp(prefix="recs-sv-"))
    monkeypatch.setenv("RECS_VAR_DIR", str(var))
    monkeypatch.setenv("SUPERVISOR_STARTRETRIES", "1")
    yield var
    supervise.shutdown()
    assert not supervise.alive()
    shutil.rmtree(var)


def test_a_program_that_exits_at_once_fails_with_its_own_output(private_supervisord):
    log = private_supervisord / "log" / "broken.log"
    script = "echo 'FATAL: could not bind 127.0.0.1:1: permission denied' >&2; exit 3"
    broken = supervise.Program("broken", ["sh", "-c", script], log, startsecs=2)
    services.supervised([broken])
    with pytest.raises(services.ServiceError) as caught:
        services.start_program("broken")
    message = str(caught.value)
    assert "broken failed to start" in message and str(log) in message
    assert "FATAL: could not bind 127.0.0.1:1" in message

    def given_up():
        return supervise.info("broken")["statename"] == "FATAL"

    services.wait_until(given_up, 20, "supervisord gives up after its retries", None, 0.2)
    (verdict,) = supervision_health.check(["broken"])
    assert not verdict.healthy and verdict.detail.startswith("gave up after repeated failed")
    assert verdict.restarts == 1  # the one retry SUPERVISOR_STARTRETRIES=1 allows
