"""Headless Debian Chromium driven over the DevTools protocol on a pipe (no extra package).

`--remote-debugging-pipe` makes Chromium read protocol messages from fd 3 and write its
answers and events to fd 4, each a JSON document ended by a NUL byte. Every host name but
127.0.0.1 resolves to nothing (`--host-resolver-rules`), so a page that still needs a CDN
shows it as a failed request. Used by tests/integration/test_reports_site.py; also
`python -m tests.support.chromium URL OUT.png` for a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
OFFLINE = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


class BrowserError(RuntimeError):
    """Chromium answered a command with an error, or did not answer in time."""


@dataclass
class Requests:
    """What a page asked the network for while it loaded."""

    urls: dict[str, str] = field(default_factory=dict)  # request id -> URL
    status: dict[str, int] = field(default_factory=dict)  # request id -> HTTP status
    failed: dict[str, str] = field(default_factory=dict)  # request id -> error text

    def problems(self) -> list[str]:
        """Each request that failed or was not answered 200, as `URL: why`."""
        out = [f"{self.urls.get(rid, rid)}: {why}" for rid, why in self.failed.items()]
        out += [
            f"{self.urls[rid]}: HTTP {code}" for rid, code in self.status.items() if code != 200
        ]
        return sorted(out)


class Browser:
    """One headless Chromium; `open(url)` gives a Page in a new tab."""

    def __init__(self, chromium: str = CHROMIUM, window: tuple[int, int] = (1200, 900)):
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        argv = [
            chromium,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",  # tests run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--window-size={window[0]},{window[1]}",
            f"--user-data-dir={self._profile}",
            f"--host-resolver-rules={OFFLINE}",
            "about:blank",
        ]
        log = os.path.join(self._profile, "chromium.log")
        self.pid = os.posix_spawn(
            chromium,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
                (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._answers: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Split fd 4's stream into messages: answers to their waiter, events to the queue."""
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        waiter = self._answers.pop(message["id"], None)
                    if waiter is not None:
                        waiter.put(message)
                else:
                    self.events.put(message)

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=30
    ) -> dict:
        """One protocol command; its result (BrowserError on an error or no answer in time)."""
        number = next(self._ids)
        waiter: queue.Queue = queue.Queue()
        with self._lock:
            self._answers[number] = waiter
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            answer = waiter.get(timeout=timeout)
        except queue.Empty as exc:
            raise BrowserError(f"{method}: no answer in {timeout} s") from exc
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def open(self, url: str, timeout: float = 60) -> Page:
        """A new tab that has loaded `url` (its load event fired), recording its requests."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session)
        page.wait_event("Page.loadEventFired", timeout)
        return page

    def close(self) -> None:
        """End Chromium and its helpers (its own process group) and remove the profile."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab: events of its session, JavaScript in it, screenshots of it."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session
        self.requests = Requests()
        self._seen: list[str] = []

    def _take(self, event: dict) -> None:
        """Keep what an event says about this tab's requests."""
        params, method = event.get("params", {}), event.get("method")
        if method == "Network.requestWillBeSent":
            self.requests.urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived":
            self.requests.status[params["requestId"]] = params["response"]["status"]
        elif method == "Network.loadingFailed":
            self.requests.failed[params["requestId"]] = params.get("errorText", "failed")
        self._seen.append(method)

    def drain(self) -> None:
        """Take every event Chromium has sent so far (events of other tabs are dropped)."""
        while True:
            try:
                event = self.browser.events.get_nowait()
            except queue.Empty:
                return
            if event.get("sessionId") == self.session:
                self._take(event)

    def wait_event(self, method: str, timeout: float) -> None:
        """Block until this tab sends `method` (BrowserError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while method not in self._seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no {method} within {timeout} s")
            try:
                event = self.browser.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.get("sessionId") == self.session:
                self._take(event)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll a JavaScript expression until it is truthy; its value (BrowserError: never).

        The poll runs inside the page, every 50 ms until the deadline.
        """
        script = (
            "new Promise((done) => {"
            f" const end = performance.now() + {int(timeout * 1000)};"
            f" const poll = () => {{ let v; try {{ v = ({expression}); }} catch (e) {{ v = null; }}"
            " if (v || performance.now() > end) done(v || null); else setTimeout(poll, 50); };"
            " poll(); })"
        )
        value = self.evaluate(script)
        if not value:
            raise BrowserError(f"never true within {timeout} s: {expression}")
        return value

    def screenshot(self, out: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole scroll height when full_page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            metrics = self.browser.send("Page.getLayoutMetrics", session=self.session)
            size = metrics["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
            params["clip"]["scale"] = 1
        data = self.browser.send("Page.captureScreenshot", params, self.session)["data"]
        out.write_bytes(base64.b64decode(data))
        return out


def main(argv: list[str]) -> int:
    """`python -m tests.support.chromium URL OUT.png`: a full-page screenshot."""
    url, out = argv
    with Browser() as browser:
        page = browser.open(url)
        page.wait_for("[...document.images].every((i) => i.complete)")
        print(page.screenshot(Path(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
