"""supervisord event listener: counts and logs the automatic restarts of each program, and
starts again, once a minute, any program supervisord gave up on.

Run by supervisord as `[eventlistener:restart-counter]` on PROCESS_STATE_STARTING,
PROCESS_STATE_EXITED and TICK_60 events. A start from EXITED or BACKOFF is supervisord
restarting a process by itself (after a crash, a kill or a failed start), a start from FATAL is
this listener's revival; a start from STOPPED is an operator's or the first one and is not
counted. Counts go to the JSON file named on the command line (written atomically), one log
line per restart or revival to stderr (supervisord sends it to .var/log/restarts.log).

A program that dies unexpectedly (EXITED, say a SIGKILL) can leave children behind: a killed
Airflow scheduler's LocalExecutor workers, a killed postmaster's backends (which would keep the
next postmaster from starting). supervisord makes each program a process-group leader, so on
PROCESS_STATE_EXITED the listener kills what is left of that group before the restart.

supervisord's own back-off ends in FATAL after SUPERVISOR_STARTRETRIES failed starts (about 8
minutes); an outage longer than that would otherwise leave the program down for good.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

AUTOMATIC = ("EXITED", "BACKOFF", "FATAL")


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_payload(payload: str) -> dict[str, str]:
    """`processname:x groupname:x from_state:EXITED tries:0` → a dict."""
    return dict(token.split(":", 1) for token in payload.split() if ":" in token)


def record(counts: dict[str, int], headers: dict[str, str], payload: str) -> str | None:
    """Count one event in `counts`; return the log line when it was an automatic restart."""
    if headers.get("eventname") != "PROCESS_STATE_STARTING":
        return None
    fields = parse_payload(payload)
    name = fields.get("processname", "?")
    if fields.get("from_state") not in AUTOMATIC:
        return None
    counts[name] = counts.get(name, 0) + 1
    attempt = fields.get("tries", "?")
    return (
        f"{_stamp()} restart {name} (from {fields['from_state']}, attempt {attempt}"
        f", restarts so far {counts[name]})"
    )


def reap_group(headers: dict[str, str], payload: str, killpg=os.killpg) -> str | None:
    """SIGKILL the process group of a program that exited; the log line when it had one."""
    if headers.get("eventname") != "PROCESS_STATE_EXITED":
        return None
    fields = parse_payload(payload)
    pid = int(fields.get("pid", "0"))
    if pid <= 1:
        return None
    try:
        killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return None  # nothing left behind
    return f"{_stamp()} reaped what {fields.get('processname', '?')} (pid {pid}) left running"


def revive(api) -> list[str]:
    """Start (without waiting) every program in FATAL; return their names."""
    fatal = [p["name"] for p in api.getAllProcessInfo() if p["statename"] == "FATAL"]
    for name in fatal:
        api.startProcess(name, False)
    return fatal


def write_counts(path: Path, counts: dict[str, int]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(counts, sort_keys=True))
    tmp.replace(path)


def main(argv: list[str]) -> int:
    from supervisor import childutils

    path = Path(argv[0])
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        counts = {}
    write_counts(path, counts)
    api = childutils.getRPCInterface(os.environ).supervisor
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        line = record(counts, headers, payload)
        if line:
            write_counts(path, counts)
            print(line, file=sys.stderr, flush=True)
        reaped = reap_group(headers, payload)
        if reaped:
            print(reaped, file=sys.stderr, flush=True)
        if headers.get("eventname") == "TICK_60":
            for name in revive(api):
                print(
                    f"{_stamp()} revive {name} (FATAL: supervisord had given up)", file=sys.stderr
                )
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
