"""Fixtures shared by the whole suite."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from trialfinder.models import Contact, Eligibility, Precision, Site, Source, Status, Trial

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
def english_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts in English whatever the locale of the machine running it (the CLI
    reads LANGUAGE, LC_ALL, LC_MESSAGES and LANG as gettext does); a test about another
    language sets it itself."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


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


# -- records of every kind the rules tell apart, shared by the output tests ------------------

CTGOV = Path(__file__).parent / "fixtures" / "ctgov"
TEMPOS = "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json"

UNKNOWN_ID = "NCT90000001"
"""The registry's UNKNOWN (last known: recruiting, verified September 2022)."""
UNVERIFIED_ID = "NCT90000002"
"""RECRUITING in a copy taken in 2023, not verified since September 2022: the two-year rule."""
LISTING_ID = "NCT90000003"
"""A listing page's record: the page's own status words ("Open"), January 2019."""
SHARED_ID = "NCT90000004"
"""Sites sharing one position (two in Paris), one elsewhere, one recruiting with no position."""
RECORDED_ID = "NCT03830788"
"""A recorded registry response: site statuses, contacts, 'Main inclusion criteria'."""


def recorded_trial(name: str = TEMPOS) -> Trial:
    """A recorded registry response, parsed."""
    from trialfinder.registry import parse_study

    return parse_study(json.loads((CTGOV / name).read_text(encoding="utf-8"))).trial


def unknown_trial() -> Trial:
    """The recorded TEMPOS record as the registry shows it once it has turned UNKNOWN."""
    trial = recorded_trial()
    return trial.replace(
        nct_id=UNKNOWN_ID, status=Status.UNKNOWN, last_known_status=Status.RECRUITING,
        verified_date="2022-09", last_update="2022-09-14",
        source=dataclasses.replace(trial.source, as_of="2022-09-14",
                                   retrieved="2025-02-27T03:00:00+00:00"),
    )


def unverified_trial() -> Trial:
    """The recorded TEMPOS record in a copy fetched before the registry applied its two-year
    rule: still RECRUITING, verified September 2022, fetched June 2023."""
    trial = recorded_trial()
    return trial.replace(
        nct_id=UNVERIFIED_ID, verified_date="2022-09", last_update="2022-09-14",
        source=dataclasses.replace(trial.source, as_of="2022-09-14",
                                   retrieved="2023-06-01T03:00:00+00:00"),
    )


def listing_trial() -> Trial:
    """A listing page's record: status as the page words it, no eligibility, no positions."""
    sites = tuple(
        Site(facility=name, city=city, country="France",
             contacts=(Contact(person, role="PRINCIPAL_INVESTIGATOR", title="Dr"),))
        for name, city, person in (
            ("Centre Léon Bérard", "Lyon", "Jeanne Martin"),
            ("Institut Bergonié", "Bordeaux", "Paul Durand"),
            ("Hôpital Inconnu", "Lieu-Inconnu", "Anne Petit"),
        )
    )
    return Trial(
        nct_id=LISTING_ID, title="A listing page trial",
        source=Source(kind="listing", description="CenterWatch-style listing page",
                      as_of="2019-01"),
        status=None, status_text="Open", last_update="2019-01", sites=sites,
    )


PARIS = (48.85341, 2.3488)
LYON = (45.74846, 4.84671)


def shared_trial() -> Trial:
    """A fresh registry record of our own: two Paris sites at the city centre (one rank),
    Lyon, a recruiting site the gazetteer cannot place, a closed site, criteria with
    unusual headings."""
    def site(facility: str, city: str, where: tuple[float, float] | None,
             status: Status | None, **extra: object) -> Site:
        return Site(
            facility=facility, city=city, country="France", status=status,
            latitude=where[0] if where else None, longitude=where[1] if where else None,
            precision=Precision.CITY if where else Precision.UNKNOWN,
            coordinate_source="registry geoPoint" if where else None, **extra,  # type: ignore[arg-type]
        )

    return Trial(
        nct_id=SHARED_ID, title="Equally near sites", acronym="EQUAL",
        source=Source(kind="registry", description="ClinicalTrials.gov API v2",
                      as_of="2025-02-10", retrieved="2025-02-28T03:00:00+00:00"),
        status=Status.RECRUITING, verified_date="2025-02", last_update="2025-02-10",
        eligibility=Eligibility(
            criteria="**Patients to include:**\n\n- Age \\>= 18\n- GIST \\(resected\\)\n\n"
                     "### Non-inclusion criteria\n\n1. Pregnancy\n2. Prior imatinib:\n"
                     "a) more than 3 years\nb) stopped for toxicity\n",
            minimum_age="18 Years"),
        central_contacts=(Contact("Trial desk", role="CONTACT", phone="+33 1 00 00 00 00",
                                  email="desk@example.org"),),
        sites=(
            site("Hôpital Saint-Louis", "Paris", PARIS, Status.RECRUITING,
                 contacts=(Contact("Dr Zoé Roux", role="PRINCIPAL_INVESTIGATOR"),
                           Contact("Unité essais", role="CONTACT", phone="+33 1 42 49 00 00",
                                   email="essais@sls.example"))),
            site("Hôpital Cochin", "Paris", PARIS, None,
                 contacts=(Contact("Dr Luc Bon", role="PRINCIPAL_INVESTIGATOR"),)),
            site("Centre Léon Bérard", "Lyon", LYON, Status.RECRUITING),
            site("Hôpital Inconnu", "Lieu-Inconnu", None, Status.RECRUITING,
                 unplaced_reason="not found",
                 contacts=(Contact("Dr Anne Petit", role="PRINCIPAL_INVESTIGATOR"),)),
            site("Hôpital Fermé", "Paris", PARIS, Status.COMPLETED),
        ),
    )


def fill_rules_store(path: Path) -> Path:
    """A store holding one trial of each kind above, and the recorded TEMPOS record."""
    from trialfinder.store import Store

    with Store(path) as store:
        store.save_trial(recorded_trial(), None)
        for trial in (unknown_trial(), unverified_trial(), listing_trial(), shared_trial()):
            store.save_trial(trial, None)
    return path


@pytest.fixture
def rules_store(tmp_path: Path) -> Path:
    """A store of one trial per kind the rules tell apart (see `fill_rules_store`)."""
    return fill_rules_store(tmp_path / "rules.sqlite")


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
