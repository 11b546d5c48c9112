"""Headless Chromium for tests, driven by playwright: load a page, read the DOM, collect console errors and every URL
the page requested, take a full-page screenshot.

Chromium comes from the Debian package (`apt-get install -y chromium`); .ci/run installs it. Playwright drives that
executable (`executable_path`), so no browser is downloaded (`playwright install` is never needed). Without it a browser
test skips locally, saying why, and fails under CI (environment variable CI set), so that a CI image without a
browser cannot pass the browser tests by skipping them.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm, too small for the renderer
    "--no-proxy-server",
)  # a proxy from the environment must not sit between the browser and 127.0.0.1


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

    def __init__(
        self, executable: str, profile_dir: Path, width: int = 1280, height: int = 900, timeout_s: float = 30.0
    ):
        self.executable, self.profile_dir = executable, Path(profile_dir)
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self.console_errors: list[str] = []
        self.requested_urls: list[str] = []

    def __enter__(self) -> Chromium:
        self._playwright = sync_playwright().start()
        try:
            self._context = self._playwright.chromium.launch_persistent_context(
                self.profile_dir,
                executable_path=self.executable,
                args=list(FLAGS),
                headless=True,
                viewport={"width": self.width, "height": self.height},
                timeout=self.timeout_s * 1000,
            )
            self.page = self._context.pages[0] if self._context.pages else self._context.new_page()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.page.set_default_timeout(self.timeout_s * 1000)
        self.page.on("pageerror", lambda error: self.console_errors.append(f"Uncaught {error.name}: {error.message}"))
        self.page.on(
            "console",
            lambda message: (
                self.console_errors.append(f"console.{message.type}: {message.text}")
                if message.type in ("error", "assert")
                else None
            ),
        )
        self.page.on(
            "response",
            lambda response: (
                self.console_errors.append(f"HTTP {response.status} {response.url}") if response.status >= 400 else None
            ),
        )
        self.page.on("request", lambda request: self.requested_urls.append(request.url))
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_context", None) is not None:
            self._context.close()
        self._playwright.stop()

    def load(self, url: str) -> Chromium:
        """Navigate to `url` and wait for its load event (images included); resets the error and URL lists."""
        # Leave the previous page first, so that its late requests (a favicon) are not blamed on this one.
        self.page.goto("about:blank")
        self.console_errors, self.requested_urls = [], []
        self.page.goto(url, wait_until="load")
        return self

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        return self.page.evaluate(expression)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the first screen) at `path`."""
        path = Path(path)
        self.page.screenshot(path=str(path), full_page=True)
        return path
