"""Fixtures shared by the whole suite."""

from __future__ import annotations

import datetime

import pytest

TODAY = datetime.date(2025, 3, 1)
"""The day every test runs on, unless it says otherwise. The status and staleness rules depend
on the day, and the recorded registry fixtures were verified between 2023 and 2025 (the built
NCT02260505 records in April 2023 and March 2024). A test about another day monkeypatches
`trialfinder.clock.today` itself or passes ``today``; a test that runs trialfinder in another
process sets `clock.today` there too."""


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> datetime.date:
    from trialfinder import clock

    monkeypatch.setattr(clock, "today", lambda: TODAY)
    return TODAY


@pytest.fixture(autouse=True)
def private_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test its own user cache directory (platformdirs reads XDG_CACHE_HOME), made only
    if used: the Nominatim rate stamp shared by processes is never the real one, nor shared
    with another test or another run on this machine."""
    import uuid

    cache = tmp_path_factory.getbasetemp() / f"cache-{uuid.uuid4().hex}"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))


# --- browser tests and a live server (trialfinder serve) -------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The system's Chromium (Debian's, installed by .ci/install-chromium), if any."""
    import shutil

    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _missing(reason: str) -> None:
    """Skip outside CI; in CI (TRIALFINDER_REQUIRE_BROWSER=1) a missing browser fails."""
    import os

    if os.environ.get("TRIALFINDER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TRIALFINDER_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The path of headless-capable Chromium, else a skip (a failure in CI)."""
    path = find_browser()
    if path is None:
        _missing("headless Chromium is not installed (see .ci/install-chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def playwright_browser(chromium_path: str):
    """Playwright driving the system Chromium (never a downloaded browser), offline: every
    host name but the test server's fails to resolve."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            yield browser
        finally:
            browser.close()


LIVE_SERVER = """
import datetime, sys
from trialfinder import clock
clock.today = lambda: datetime.date(2025, 3, 1)  # as TODAY above
from trialfinder.cli import main
sys.argv = ["trialfinder", "serve", "--host", "127.0.0.1", "--port", "0", *sys.argv[1:]]
main()
"""


class LiveServer:
    """`trialfinder serve` in its own process; what it writes on stderr is kept in `lines`."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys
        import threading

        self.lines: list[str] = []
        self.url = ""
        ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-c", LIVE_SERVER, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                if " on http://" in line and not self.url:
                    self.url = line.split(" on ", 1)[1].split()[0]
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        ready.wait(30)
        if not self.url:
            self.stop()
            raise RuntimeError("trialfinder serve did not start:\n" + "".join(self.lines))

    def stop(self, signum: int | None = None, timeout: float = 20) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signum or signal.SIGTERM)
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """One `trialfinder serve` on 127.0.0.1 for the whole session, on the bundled record (its
    store does not exist)."""
    server = LiveServer("--db", str(tmp_path_factory.mktemp("live") / "none.sqlite"))
    try:
        yield server
    finally:
        server.stop()
