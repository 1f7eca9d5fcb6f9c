"""The browser suite: the site and JupyterLab driven in the system's Chromium, network cut.

Playwright's Python API drives the Chromium the system provides (Debian: ``apt install
chromium``; another one: ``HANDBOOK_CHROMIUM=/path/to/chrome``); Playwright's own browser
download is never used. Every request that leaves 127.0.0.1 is aborted and recorded: the book
must work offline, and a test fails when a page asked for anything outside.

Without Chromium (or without the playwright package) the suite is not collected and one line
says so and how to enable it; with ``CI=true`` the suite is collected and every test fails
instead, so CI cannot pass without having run it.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ENV = "HANDBOOK_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: The smoke site that `make test` builds (HANDBOOK_BUILD_DIR=_build/smoke, handbook.config);
#: HANDBOOK_SITE_DIR checks another build (the full book's _build/html before publishing it).
SITE_DIR = Path(os.environ.get("HANDBOOK_SITE_DIR", ROOT / "_build" / "smoke" / "_build" / "html"))
SCREENSHOT_DIR = ROOT / "_build" / "screenshots"
HOW_TO_ENABLE = (
    f"install Chromium (Debian/Ubuntu: apt install chromium) or set {CHROMIUM_ENV}=/path/to/chrome"
)


def find_chromium() -> str | None:
    """The browser to drive: ``$HANDBOOK_CHROMIUM`` or the first Chromium on the PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _why_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "no Chromium found"
    return None


UNAVAILABLE = _why_unavailable()
ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
collect_ignore_glob = ["test_*.py"] if UNAVAILABLE and not ON_CI else []


def pytest_terminal_summary(terminalreporter) -> None:
    if collect_ignore_glob:
        terminalreporter.write_line(
            f"browser tests skipped: {UNAVAILABLE}; to run them, {HOW_TO_ENABLE}"
        )


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BlockedRequests:
    """Aborts every request outside 127.0.0.1 and remembers it (URL and the page it came from)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def route(self, route) -> None:
        url = route.request.url
        if urlparse(url).hostname in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            self.urls.append(url)
            route.abort("blockedbyclient")

    def take(self) -> list[str]:
        """The URLs blocked since the last call."""
        taken, self.urls = self.urls, []
        return taken


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if UNAVAILABLE:
        pytest.fail(f"CI=true and the browser tests cannot run: {UNAVAILABLE}; {HOW_TO_ENABLE}")
    from playwright.sync_api import sync_playwright

    arguments = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=find_chromium(), headless=True, args=arguments
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def blocked() -> BlockedRequests:
    return BlockedRequests()


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    """The smoke site served over HTTP on a free loopback port (as GitHub Pages serves it)."""
    if not (SITE_DIR / "index.html").is_file():
        pytest.fail(
            f"no site in {SITE_DIR}: build it first with "
            "`HANDBOOK_BUILD_DIR=_build/smoke python -m handbook book --smoke` (make test does)"
        )

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *arguments) -> None:
            pass

        def end_headers(self) -> None:
            # the theme's scripts and styles are fetched once per session, not once per page
            if self.path.startswith("/_static/"):
                self.send_header("Cache-Control", "max-age=3600")
            super().end_headers()

    handler = functools.partial(QuietHandler, directory=str(SITE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where a reviewer finds the screenshots the suite takes (``_build/screenshots``)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
