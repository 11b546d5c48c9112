"""Headless Chromium for tests, driven over the DevTools protocol: load a page, read the DOM, collect console errors
and every URL the page requested, take a full-page screenshot.

Chromium comes from the Debian package (`apt-get install -y chromium`); .ci/run installs it. Without it a browser
test skips locally, saying why, and fails under CI (environment variable CI set), so that a CI image without a
browser cannot pass the browser tests by skipping them.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import math
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm, too small for the renderer
         "--no-proxy-server")  # a proxy from the environment must not sit between the browser and 127.0.0.1


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_chromium() -> str:
    """The Chromium executable; otherwise skip (locally) or fail (under CI) with the reason."""
    path = find_chromium()
    if path:
        return path
    message = "chromium not found (install it with `apt-get install -y chromium`)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the browser tests (.ci/run installs chromium before them)")
    pytest.skip(f"{message}; under CI (environment variable CI set) this test fails instead of skipping")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # request lines would clutter pytest's output
        pass


@contextlib.contextmanager
def serve_directory(directory) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 at a free port (in a thread); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Chromium:
    """One headless Chromium with one tab. `load(url)` navigates and waits for the load event; afterwards
    `console_errors` (uncaught exceptions, console.error, failed loads) and `requested_urls` describe that load."""

    def __init__(self, executable: str, profile_dir: Path, width: int = 1280, height: int = 900,
                 timeout_s: float = 30.0):
        self.executable, self.profile_dir = executable, Path(profile_dir)
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self.console_errors: list[str] = []
        self.requested_urls: list[str] = []
        self._next_id = 0
        self._events: list[dict] = []

    def __enter__(self) -> Chromium:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.profile_dir / "chromium.log", "wb")
        # Port 0: Chromium picks a free port and writes it to DevToolsActivePort in the profile directory.
        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile_dir}", "--remote-debugging-port=0",
             f"--window-size={self.width},{self.height}", "about:blank"], stdout=self._log, stderr=subprocess.STDOUT)
        try:
            port = self._wait_for_port()
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            targets = json.loads(direct.open(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout_s).read())
            page = next(t for t in targets if t["type"] == "page")
            self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=self.timeout_s)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def _wait_for_port(self) -> int:
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.profile_dir / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium exited with code {self.process.returncode} at start:\n{log}")
            lines = marker.read_text().splitlines() if marker.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError(f"chromium did not open its DevTools port within {self.timeout_s} s")

    def _receive(self, timeout_s: float) -> dict:
        message = json.loads(self.socket.recv(timeout=timeout_s))
        if "method" in message:
            self._record(message)
        return message

    def _record(self, event: dict) -> None:
        method, params = event["method"], event.get("params", {})
        self._events.append(event)
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console_errors.append("Uncaught " + details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.console_errors.append("console." + params["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.console_errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            self.requested_urls.append(params["request"]["url"])

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events arriving meanwhile are recorded)."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._receive(self.timeout_s)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message.get("result", {})

    def load(self, url: str) -> Chromium:
        """Navigate to `url` and wait for its load event (images included); resets the error and URL lists."""
        if url != "about:blank":
            # Leave the previous page first, so that its late requests (a favicon) are not blamed on this one.
            self.load("about:blank")
        self.console_errors, self.requested_urls, self._events = [], [], []
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise RuntimeError(f"could not open {url}: {result['errorText']}")
        deadline = time.monotonic() + self.timeout_s
        while not any(e["method"] == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading within {self.timeout_s} s")
            self._receive(max(0.01, deadline - time.monotonic()))
        return self

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the first screen) at `path`."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=math.ceil(size["height"]),
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        self.call("Emulation.clearDeviceMetricsOverride")
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
