"""`trialfinder scrape`: listing pages stored as a source, with their history, merged with the
registry's record the way `sync` merges it, and refused in one line when unusable.

The pages are of our own making (`Page`: the seed's layout as text, or as HTML with a site's
chrome around it), for trials other than the seed's: French cities that lost letters, a
foreign site, "Recruitment Status: Closed". HTML pages are served by pytest-httpserver on
127.0.0.1; registry answers are the built NCT02260505 fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from html import escape
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

import unprivileged
from trialfinder.cli import app
from trialfinder.errors import ListingFetchError, StoreBusy, StoreError, UnusableListing
from trialfinder.models import Trial, to_jsonable
from trialfinder.recruitment import Standing, site_recruitment, trial_recruitment
from trialfinder.registry import RegistryClient
from trialfinder.scrape import listing_copy, scrape
from trialfinder.store import ChangeKind, Store
from trialfinder.sync import store_lock, sync

FIXTURES = Path(__file__).parent / "fixtures"
SEED = FIXTURES / "seed" / "000_6aeb1dc53d5a47c7.txt"
V1 = (FIXTURES / "ctgov" / "built_NCT02260505_v1.json").read_text(encoding="utf-8")
V2 = (FIXTURES / "ctgov" / "built_NCT02260505_v2.json").read_text(encoding="utf-8")
NCT = "NCT02260505"
T1, T2, T3, T4, T5 = (f"2025-03-0{d}T03:00:00+00:00" for d in range(1, 6))


@dataclasses.dataclass(frozen=True)
class Page:
    """A listing page of our own making, as a reader sees it."""

    nct: str
    title: str
    updated: str | None
    """"February 2025" ("Last updated on …"); None: the page gives no date."""
    status: str | None
    """"Closed" ("Recruitment Status: …"); None: the page states none."""
    sites: tuple[tuple[str, str, str], ...]
    """(investigator, facility, "City, Country"), as scraped (letters lost)."""
    summary: str = "A trial of our own making, to check that another listing is stored."

    def text(self) -> str:
        """The page as saved text, in the seed's layout."""
        lines = [f"Last updated on {self.updated}", ""] if self.updated else []
        lines += [self.title, "", f"Clinical Study Identifier: {self.nct}", "",
                  "Brief description of study", "", self.summary, "",
                  "Contact Investigators or Research Sites near you", ""]
        for who, facility, place in self.sites:
            lines += [who, facility, place, "Connect »", ""]
        if self.status:
            lines += [f"Recruitment Status: {self.status}", ""]
        return "\n".join(lines)

    def html(self) -> str:
        """The same page as a site serves it: markup, a script, navigation, a sign-up box
        and a footer around the record."""
        e = escape
        cards = "\n".join(
            f'<div class="card"><p><strong>{e(who)}</strong><br>{e(facility)}<br>{e(place)}'
            f'</p><a href="#contact-{n}">Connect &raquo;</a></div>'
            for n, (who, facility, place) in enumerate(self.sites)
        )
        updated = f'<p class="meta">Last updated on {e(self.updated)}</p>' if self.updated else ""
        status = (f"<p><b>Recruitment Status:</b> {e(self.status)}</p>" if self.status else "")
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(self.title)} | Trials</title>
<script>window.dataLayer = []; document.write("Recruitment Status: Open");</script>
<style>.card {{ margin: 1em }}</style></head>
<body>
<header><nav><a href="/">Home</a> <a href="/search">Start Over</a></nav></header>
<main>
{updated}
<h1>{e(self.title)}</h1>
<section><h2>Brief description of study</h2><p>{e(self.summary)}</p></section>
<p>Clinical Study Identifier: {e(self.nct)}</p>
<section><h2>Contact Investigators or Research Sites near you</h2>
{cards}
</section>
{status}
</main>
<aside><h3>Receive Emails About New Clinical Trials!</h3>
<form><input name="email"><button>Sign up</button></form></aside>
<footer><p>Hôpital Fictif, Paris, France</p><p>Connect »</p></footer>
</body></html>
"""


CLOSED = Page(
    "NCT09990001", "Adjuvant Trial in Resected Soft-Tissue Sarcoma", "February 2025", "Closed",
    (("Paul MARTIN, Dr", "CHU Car meau", "N mes, France"),
     ("Claire DUBOIS, Pr", "Centre Hospitalier de B ziers", "Bziers, France"),
     ("Luc PETIT, Dr", "H pital Henri-Mondor", "Cr teil, France"),
     ("Anne ROUX, Dr", "Institut de Canc rologie Lucien Neuwirth", "Saint- tienne, France"),
     ("Marc BLANC, Pr", "CHRU de Besan on - H pital Jean Minjoz", "Besan on, France"),
     ("Hans M LLER, Prof", "Uniklinik K ln", "K ln, Germany")),
)
"""A closed trial: five French cities that lost letters and one German one."""
CLOSED_CITIES = ["Nîmes", "Béziers", "Créteil", "Saint-Étienne", "Besançon", "Köln"]
OPEN = Page(
    "NCT09990002", "Maintenance Therapy After Chemotherapy in Ovarian Cancer", "January 2025",
    "Open",
    (("Julie MOREAU, Dr", "Centre Hospitalier de Ch teauroux", "Ch teauroux, France"),
     ("Pierre LEROY, Dr", "H pital de S te", "S te, France"),
     ("Sophie GIRARD, Pr", "Centre Hospitalier d'Angoul me", "Angoul me, France"),
     ("Nicolas FAURE, Dr", "CHR d'Orl ans", "Orl ans, France"),
     ("Emma ANDRE, Dr", "H pital Nord Franche-Comt", "Montb liard, France"),
     ("Louis MERCIER, Dr", "Centre Hospitalier M tropole Savoie", "Chamb ry, France"),
     ("Marie LAMBERT, Dr", "CHU de Li ge", "Li ge, Belgium")),
)
"""A recruiting trial: six French cities that lost letters and one Belgian one."""
OPEN_CITIES = ["Châteauroux", "Sète", "Angoulême", "Orléans", "Montbéliard", "Chambéry",
               "Liège"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner in its own folder, with no default store and no network settings."""
    monkeypatch.setenv("TRIALFINDER_DB", str(tmp_path / "default.sqlite"))
    monkeypatch.delenv("TRIALFINDER_ONLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def saved(tmp_path: Path, page: Page, name: str = "page.txt") -> Path:
    path = tmp_path / name
    path.write_text(page.text(), encoding="utf-8")
    return path


def served(httpserver: HTTPServer, page: Page, route: str = "/trial") -> str:
    httpserver.expect_request(route).respond_with_data(
        page.html(), content_type="text/html; charset=utf-8")
    return httpserver.url_for(route)


def stored(db: Path, nct: str) -> Trial:
    with Store(db) as store:
        trial = store.get_trial(nct)
    assert trial is not None
    return trial


def copies(db: Path, nct: str) -> dict[str, Trial]:
    """Each source's own copy of the trial, as the store keeps it."""
    with Store(db) as store:
        return {kind: copy for kind in ("registry", "listing")
                if (copy := store.source_copies([nct], kind).get(nct)) is not None}


def registry(httpserver: HTTPServer, body: str) -> RegistryClient:
    """A registry client of the built NCT02260505 record ``body``, on 127.0.0.1."""
    httpserver.clear()
    httpserver.expect_request(f"/studies/{NCT}").respond_with_data(
        body, content_type="application/json")
    return RegistryClient(httpserver.url_for("/").rstrip("/"), max_retries=1,
                          sleep=lambda _s: None, timeout=(2.0, 5.0))


def sync_once(httpserver: HTTPServer, db: Path, body: str, now: str) -> str:
    """One sync of NCT02260505 (merged with the stored page, else the bundled one); its
    outcome."""
    with registry(httpserver, body) as client:
        report = sync([NCT], db=db, client=client, now=now)
    assert report.ok
    return report.trials[0].outcome


def seed_page(tmp_path: Path, updated: str = "January 2019", status: str = "Open",
              name: str = "seed.txt") -> Path:
    """The seed listing of NCT02260505, with another date and status if asked."""
    text = SEED.read_text(encoding="utf-8")
    text = text.replace("Last updated on January 2019", f"Last updated on {updated}")
    text = text.replace("Recruitment Status: Open", f"Recruitment Status: {status}")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- listings of other trials, as text and as HTML over HTTP ----------------------------------


@pytest.mark.parametrize("form", ["text", "html"])
@pytest.mark.parametrize(("page", "cities"), [(CLOSED, CLOSED_CITIES), (OPEN, OPEN_CITIES)])
def test_another_trials_listing_is_stored_repaired_and_placed(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path, form: str, page: Page,
    cities: list[str],
) -> None:
    """A listing of another trial, saved as text or served as HTML, is stored with every city
    repaired and placed, the page's status words, its date and its address; both forms give
    the same record."""
    db = tmp_path / "store.sqlite"
    source = str(saved(tmp_path, page)) if form == "text" else served(httpserver, page)
    result = invoke(runner, "scrape", source, "--db", str(db))
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, f"{page.nct} new: {len(page.sites)} sites\n", "")
    trial = stored(db, page.nct)
    assert [s.city for s in trial.sites] == cities
    assert all(s.has_position and s.city_raw for s in trial.sites)
    assert (trial.status, trial.status_text) == (None, page.status)
    assert trial.source.kind == "listing"
    assert trial.source.as_of == {"February 2025": "2025-02", "January 2025": "2025-01"}[
        page.updated or ""]
    assert trial.source.url == ("page.txt" if form == "text" else source)
    other = tmp_path / "other.sqlite"
    twin = (served(httpserver, page, "/twin") if form == "text"
            else str(saved(tmp_path, page, "twin.txt")))
    assert invoke(runner, "scrape", twin, "--db", str(other)).exit_code == 0
    assert stored(other, page.nct).replace(source=trial.source) == trial


def test_nearest_answers_from_a_scraped_listing(runner: CliRunner, tmp_path: Path) -> None:
    """`nearest` answers from a scraped page: Sète is nearest to Montpellier, recruiting as
    the page says ("Open")."""
    db = str(tmp_path / "store.sqlite")
    assert invoke(runner, "scrape", str(saved(tmp_path, OPEN)), "--db", db).exit_code == 0
    result = invoke(runner, "nearest", "Montpellier", "--trial", OPEN.nct, "--db", db,
                    "--limit", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:4] == [
        "Nearest recruiting sites to Montpellier (34), France",
        f"Trial {OPEN.nct}: {OPEN.title}",
        "",
        "1. Hôpital de Sète (Sète, France) — 27.5 km",
    ]
    data = json.loads(invoke(runner, "nearest", "Montpellier", "--trial", OPEN.nct, "--db", db,
                             "--json").stdout)
    first = data["sites"][0]
    assert (first["city"], first["recruiting"], first["status_words"]) == (
        "Sète", True, "“Open” (as the listing page says)")


def test_a_closed_page_offers_no_site_as_recruiting(runner: CliRunner, tmp_path: Path) -> None:
    """A page that says "Recruitment Status: Closed": no site is offered as recruiting, and
    "Closed" is shown as the page's own word, never a registry status."""
    db = str(tmp_path / "store.sqlite")
    assert invoke(runner, "scrape", str(saved(tmp_path, CLOSED)), "--db", db).exit_code == 0
    result = invoke(runner, "nearest", "Lyon", "--trial", CLOSED.nct, "--db", db)
    assert result.exit_code == 0
    assert ("No site of this trial is recorded as recruiting (trial status: “Closed” (as the "
            "listing page says)).") in result.stdout.splitlines()
    everything = json.loads(invoke(runner, "nearest", "Lyon", "--trial", CLOSED.nct, "--db", db,
                                   "--all", "--json").stdout)
    assert [s["city"] for s in everything["sites"]][:2] == ["Saint-Étienne", "Besançon"]
    assert {(s["recruiting"], s["standing"], s["status"], s["status_words"])
            for s in everything["sites"]} == {
        (False, "not_recruiting", None, "“Closed” (as the listing page says)")}
    assert "Completed" not in invoke(runner, "sites", "--trial", CLOSED.nct, "--db", db).stdout


# -- history ------------------------------------------------------------------------------------


def test_rescraping_records_what_the_page_changed(runner: CliRunner, tmp_path: Path) -> None:
    """Re-scraping an unchanged page changes nothing; a page that lost a site, gained one and
    closed records each, and `changes` shows them as the listing page's."""
    db = str(tmp_path / "store.sqlite")
    first = saved(tmp_path, OPEN)
    assert invoke(runner, "scrape", str(first), "--db", db).stdout == f"{OPEN.nct} new: 7 sites\n"
    again = invoke(runner, "scrape", str(first), "--db", db)
    assert (again.exit_code, again.stdout) == (0, f"{OPEN.nct} unchanged\n")
    later = dataclasses.replace(
        OPEN, updated="March 2025", status="Closed",
        sites=(*OPEN.sites[1:], ("Eva NOEL, Dr", "Centre Hospitalier de Valence",
                                 "Valence, France")))
    result = invoke(runner, "scrape", str(saved(tmp_path, later)), "--db", db)
    assert result.stdout == (f"{OPEN.nct} updated: 1 trial status changed, 1 site added, "
                             "1 site removed\n")
    lines = invoke(runner, "changes", "--trial", OPEN.nct, "--db", db).stdout.splitlines()
    assert [line[11:] for line in lines] == [  # after the day of the scrape
        f"{OPEN.nct} (listing page): trial added (Open)",
        f"{OPEN.nct} (listing page): trial status Open → Closed",
        f"{OPEN.nct} (listing page): site added: Centre Hospitalier de Valence (no status)",
        f"{OPEN.nct} (listing page): site removed: Centre Hospitalier de Châteauroux (was no "
        "status)",
    ]
    data = json.loads(invoke(runner, "changes", "--trial", OPEN.nct, "--db", db, "--json").stdout)
    assert {c["source"] for c in data} == {"listing"}
    assert invoke(runner, "scrape", str(saved(tmp_path, later)), "--db", db,
                  "--json").stdout.count('"outcome": "unchanged"') == 1


SITE_POOL = (
    ("Paul MARTIN, Dr", "CHU Car meau", "N mes, France"),
    ("Claire DUBOIS, Pr", "Centre Hospitalier de B ziers", "Bziers, France"),
    ("Luc PETIT, Dr", "H pital Henri-Mondor", "Cr teil, France"),
    ("Marc BLANC, Pr", "CHRU de Besan on", "Besan on, France"),
    ("Julie MOREAU, Dr", "Centre Hospitalier de Ch teauroux", "Ch teauroux, France"),
    ("Marie LAMBERT, Dr", "CHU de Li ge", "Li ge, Belgium"),
)
STATUS_WORDS = (None, "Open", "Closed", "Recruiting", "Enrolling")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sets(st.sampled_from(range(len(SITE_POOL))), min_size=1),
                          st.sampled_from(STATUS_WORDS)), min_size=2, max_size=4))
def test_history_of_any_sequence_of_pages(versions: list[tuple[set[int], str | None]]) -> None:
    """Scraping any sequence of versions of a page records exactly the sites it added and
    removed and its status words' changes between consecutive versions, and nothing when a
    version is scraped twice."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "store.sqlite"
        before: tuple[set[int], str | None] | None = None
        for n, (chosen, words) in enumerate(versions):
            page = dataclasses.replace(CLOSED, status=words,
                                       sites=tuple(SITE_POOL[i] for i in sorted(chosen)))
            path = saved(Path(folder), page)  # one page, saved again
            result = scrape(path, db=db, now=f"2025-03-01T03:{n:02d}:00+00:00")
            kinds = sorted(c.kind.value for c in result.changes)
            if before is None:
                assert (result.outcome, kinds) == ("new", ["trial_added"])
            else:
                expected = (["site_added"] * len(chosen - before[0])
                            + ["site_removed"] * len(before[0] - chosen)
                            + ["trial_status_changed"] * (words != before[1]))
                assert kinds == sorted(expected)
                assert result.outcome == ("unchanged" if (chosen, words) == before
                                          else "updated")
            assert scrape(path, db=db).outcome == "unchanged"
            before = (chosen, words)


# -- merged with the registry's record ------------------------------------------------------


def test_alternating_syncs_and_scrapes_never_flip_flop(httpserver: HTTPServer,
                                                      tmp_path: Path) -> None:
    """Sync, scrape, sync, scrape of unchanged sources record nothing after the first copy of
    each; a later registry change is recorded against the registry's own previous copy."""
    db = tmp_path / "store.sqlite"
    page = seed_page(tmp_path)
    outcomes = [sync_once(httpserver, db, V1, T1), scrape(page, db=db, now=T2).outcome,
                sync_once(httpserver, db, V1, T3), scrape(page, db=db, now=T4).outcome]
    assert outcomes == ["new", "new", "unchanged", "unchanged"]
    with Store(db) as store:
        assert [(c.kind, c.source) for c in store.changes()] == [
            (ChangeKind.TRIAL_ADDED, "registry")]
    assert sync_once(httpserver, db, V2, T5) == "updated"
    with Store(db) as store:
        assert [(c.kind, c.source) for c in store.changes(since=T5)] == [
            (ChangeKind.SITE_STATUS_CHANGED, "registry"), (ChangeKind.SITE_REMOVED, "registry")]
    assert scrape(page, db=db).outcome == "unchanged"


@pytest.mark.parametrize(("updated", "status", "status_from"), [
    ("January 2019", "Open", "registry"),  # older than the registry record: its status
    ("June 2024", "Closed", "listing"),  # more recent: the page's words
])
def test_scrape_then_sync_is_sync_then_scrape(
    httpserver: HTTPServer, tmp_path: Path, updated: str, status: str, status_from: str,
) -> None:
    """Whichever reaches the store first, the page or the registry's record, the store ends
    with the same merged record and the same copy of each source; the trial's status is the
    more recent source's."""
    page = seed_page(tmp_path, updated, status)
    first, second = tmp_path / "scrape-first.sqlite", tmp_path / "sync-first.sqlite"
    scrape(page, db=first, now=T1)
    sync_once(httpserver, first, V2, T2)
    sync_once(httpserver, second, V2, T2)
    result = scrape(page, db=second, now=T1)
    assert (result.merged, result.status_from) == (True, status_from)
    assert result.summary() == f"{NCT} new: 16 sites (merged with the registry record)"
    merged = stored(first, NCT)
    assert to_jsonable(stored(second, NCT)) == to_jsonable(merged)
    assert copies(first, NCT) == copies(second, NCT)
    assert merged.source.kind == "registry" and merged.merged_with is not None
    assert merged.merged_with.url == "seed.txt"
    assert merged.status_source is not None and merged.status_source.kind == status_from
    # The registry's 15 sites (Saint-Antoine has left it) and the one only the page names.
    assert [(s.listing_match, s.listing_only) for s in merged.sites] == [(True, False)] * 15 + [
        (False, True)]
    answer = trial_recruitment(merged)
    assert answer.standing is (Standing.RECRUITING if status == "Open"
                               else Standing.NOT_RECRUITING)
    assert copies(first, NCT)["listing"] == listing_copy(page, db=first)


def test_the_more_recent_source_gives_the_status_and_says_so(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path,
) -> None:
    """A page updated in January 2024 that says "Closed" is more recent than the registry
    record of May 2023: no site is recruiting, and nearest/sites/show/web say that the status
    comes from the page and when. The registry's record of March 2024 is more recent again:
    recruiting, from the registry."""
    db = tmp_path / "store.sqlite"
    sync_once(httpserver, db, V1, T1)
    page = seed_page(tmp_path, "January 2024", "Closed")
    result = invoke(runner, "scrape", str(page), "--db", str(db))
    assert result.stdout == f"{NCT} new: 16 sites (merged with the registry record)\n"
    origin = ("Trial status from: CenterWatch-style listing page, as of January 2024 (of the two "
              "merged sources, the more recent that states a status; the other: "
              "ClinicalTrials.gov API v2, as of 2 May 2023)")
    sites = invoke(runner, "sites", "--db", str(db)).stdout.splitlines()
    assert sites[1:4] == [
        "Trial status: “Closed” (as the listing page says)",
        "Source: ClinicalTrials.gov API v2, as of 2023-05-02 (fetched 2025-03-01)",
        origin,
    ]
    details = invoke(runner, "nearest", "Lyon", "--db", str(db), "--details").stdout
    assert origin in details.splitlines()
    assert origin in invoke(runner, "show", "--db", str(db)).stdout.splitlines()
    data = json.loads(invoke(runner, "nearest", "Lyon", "--db", str(db), "--all",
                             "--json").stdout)
    assert data["trial"]["status_origin"]["source_kind"] == "listing"
    assert data["trial"]["status_origin"]["as_of"] == "2024-01"
    assert not any(s["recruiting"] for s in data["sites"])
    show = json.loads(invoke(runner, "show", "--db", str(db), "--json").stdout)
    assert show["status_origin"]["words"] == origin

    from starlette.testclient import TestClient

    from trialfinder.web.app import Settings, create_app

    with TestClient(create_app(Settings(db_path=db))) as client:
        assert escape(origin, quote=False) in client.post(
            "/nearest", data={"place": "Lyon", "trial": NCT}).text
        assert escape(origin, quote=False) in client.get(f"/trial/{NCT}").text

    sync_once(httpserver, db, V2, T2)
    trial = stored(db, NCT)
    assert trial.status_source is not None and trial.status_source.kind == "registry"
    assert trial_recruitment(trial).standing is Standing.RECRUITING
    assert invoke(runner, "sites", "--db", str(db)).stdout.splitlines()[3] == (
        "Trial status from: ClinicalTrials.gov API v2, as of 15 March 2024 (of the two merged "
        "sources, the more recent that states a status; the other: CenterWatch-style listing "
        "page, as of January 2024)")


def test_sync_merges_with_the_stored_page_not_the_bundled_one(httpserver: HTTPServer,
                                                              tmp_path: Path) -> None:
    """A scraped page of the trial replaces the bundled listing in every later sync: the
    investigator it names is the one the merged record keeps."""
    db = tmp_path / "store.sqlite"
    text = SEED.read_text(encoding="utf-8").replace("Elsa KALBACHER, Doctor",
                                                    "Armelle DUFRESNE, Dr")
    page = tmp_path / "newer.txt"
    page.write_text(text, encoding="utf-8")
    sync_once(httpserver, db, V1, T1)  # the registry names no one in Besançon

    def besancon() -> set[str]:
        site = next(s for s in stored(db, NCT).sites if s.city == "Besançon")
        return {c.name for c in site.investigators}

    assert besancon() == {"Elsa KALBACHER"}  # from the bundled listing
    scrape(page, db=db, now=T2)
    assert besancon() == {"Armelle DUFRESNE"}
    sync_once(httpserver, db, V2, T3)
    assert besancon() == {"Armelle DUFRESNE"}


def test_listing_prints_what_scrape_stores(runner: CliRunner, httpserver: HTTPServer,
                                          tmp_path: Path) -> None:
    """`listing --json` is the page's copy as `scrape` stores it: alone, and beside the
    registry's record it was merged with."""
    db = tmp_path / "store.sqlite"
    page = saved(tmp_path, CLOSED)
    printed = invoke(runner, "listing", str(page), "--json", "--db", str(db)).stdout
    invoke(runner, "scrape", str(page), "--db", str(db))
    assert json.loads(printed) == to_jsonable(stored(db, CLOSED.nct))
    sync_once(httpserver, db, V1, T1)
    seed = seed_page(tmp_path)
    printed = invoke(runner, "listing", str(seed), "--json", "--db", str(db)).stdout
    invoke(runner, "scrape", str(seed), "--db", str(db))
    assert json.loads(printed) == to_jsonable(copies(db, NCT)["listing"])


# -- bad sources: one line, nothing stored ------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_bad_sources_fail_in_one_line_and_store_nothing(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 404, a page that is not a trial listing, binary data and an oversized page each fail
    in one line (exit 1 for the fetch, 2 for the page), create no store, and leave an existing
    store byte for byte as it was."""
    httpserver.expect_request("/gone").respond_with_data("no such page", status=404)
    httpserver.expect_request("/home").respond_with_data(
        "<html><body><h1>Welcome</h1><p>Find a trial near you.</p></body></html>",
        content_type="text/html")
    httpserver.expect_request("/photo").respond_with_data(b"\x89PNG\r\n\x1a\n" + bytes(64),
                                                          content_type="application/octet-stream")
    noise = tmp_path / "noise.txt"
    noise.write_bytes(bytes(range(256)) * 3)
    big = saved(tmp_path, dataclasses.replace(OPEN, summary="A long summary. " * 100),
                "big.txt")  # a good page, too large
    cases = [
        (httpserver.url_for("/gone"), 1,
         f"The listing page {httpserver.url_for('/gone')} answered HTTP 404 NOT FOUND"),
        (httpserver.url_for("/home"), 2, "is not a trial listing page"),
        (httpserver.url_for("/photo"), 2, "is a PNG image, not a listing page"),
        (str(noise), 2, "is binary data, not a listing page"),
        (str(big), 2, "is larger than 1,000 bytes, the limit for a listing page"),
    ]
    store_folder = tmp_path / "stores"
    store_folder.mkdir()
    existing = store_folder / "existing.sqlite"
    invoke(runner, "scrape", str(saved(tmp_path, CLOSED)), "--db", str(existing))
    monkeypatch.setenv("TRIALFINDER_LISTING_MAX_BYTES", "1000")
    before = _files(store_folder)
    assert set(before) == {"existing.sqlite", "existing.sqlite.lock"}
    for source, code, message in cases:
        for db in (store_folder / "new.sqlite", existing):
            result = invoke(runner, "scrape", source, "--db", str(db))
            assert (result.exit_code, result.stdout) == (code, ""), source
            assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
            assert message in result.stderr
            assert _files(store_folder) == before


def test_a_store_held_by_a_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a sync holds the store, a scrape waits, then gives up: StoreBusy, exit 75, and
    nothing written."""
    db = tmp_path / "store.sqlite"
    page = saved(tmp_path, OPEN)
    with store_lock(db, 1.0), pytest.raises(StoreBusy):
        scrape(page, db=db, lock_timeout=0.2)
    assert not db.exists()
    import trialfinder.sync

    monkeypatch.setattr(trialfinder.sync, "LOCK_TIMEOUT", 0.2)
    with store_lock(db, 1.0):
        result = CliRunner().invoke(app, ["scrape", str(page), "--db", str(db)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        75, "", f"Error: Another trialfinder sync is running on {db}; try again later\n")
    assert not db.exists()


def test_a_store_that_cannot_be_written_is_refused_before_the_page(tmp_path: Path) -> None:
    """A store this user cannot write (or opened read-only) is refused in one line before
    the page is fetched, and stays as it was."""
    db = tmp_path / "store.sqlite"
    scrape(saved(tmp_path, CLOSED), db=db)
    with Store(db, mode="read") as store, pytest.raises(StoreError, match="cannot be written"):
        scrape("http://127.0.0.1:9/never-asked", db=store)
    with unprivileged.shared_folder() as folder:
        shared = folder / "store.sqlite"
        page = saved(folder, OPEN)
        page.chmod(0o644)
        scrape(saved(folder, CLOSED, "closed.txt"), db=shared)
        before = _files(folder)
        refused = unprivileged.cli("scrape", str(page), "--db", str(shared))
        assert (refused.returncode, refused.stdout, refused.stderr) == (
            1, "", f"Error: The store at {shared} cannot be written by this user (read-only "
                   "file or folder)\n")
        assert _files(folder) == before


def test_library_errors_are_the_listing_modules(httpserver: HTTPServer, tmp_path: Path) -> None:
    """The library raises the listing module's errors: a fetch failure and an unusable page."""
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    with pytest.raises(ListingFetchError):
        scrape(httpserver.url_for("/gone"), db=tmp_path / "s.sqlite")
    with pytest.raises(UnusableListing):
        scrape(tmp_path, db=tmp_path / "s.sqlite")
    assert not (tmp_path / "s.sqlite").exists()


def test_scraped_sites_recruit_as_the_page_says() -> None:
    """The status rule reads a scraped page's words for each of its sites (no site status)."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "store.sqlite"
        scrape(saved(Path(folder), OPEN), db=db)
        trial = stored(db, OPEN.nct)
    assert {site_recruitment(s, trial).standing for s in trial.sites} == {Standing.RECRUITING}


def test_a_store_merged_before_copies_were_kept(httpserver: HTTPServer, tmp_path: Path) -> None:
    """A store whose record was merged with the bundled listing before each source's copy was
    kept beside it (schema 4): a scrape merges the page with the registry's part of that
    record, and stores what a fresh store stores."""
    legacy, fresh = tmp_path / "legacy.sqlite", tmp_path / "fresh.sqlite"
    page = seed_page(tmp_path)
    for db in (legacy, fresh):
        sync_once(httpserver, db, V2, T1)
    with Store(legacy) as store:
        store.connection.execute("UPDATE trial_sources SET record = NULL")
        assert len(store.source_copies([NCT], "registry")[NCT].sites) == 16  # merged
    for db in (legacy, fresh):
        scrape(page, db=db, now=T2)
    assert to_jsonable(stored(legacy, NCT)) == to_jsonable(stored(fresh, NCT))
    assert sum(s.listing_only for s in stored(legacy, NCT).sites) == 1


def test_a_merged_trial_the_registry_no_longer_returns(tmp_path: Path) -> None:
    """When a full refresh no longer returns a merged trial, the record and the registry's
    own copy are both marked "not seen since"; the page's copy is untouched, and scraping it
    again changes nothing."""
    from conftest import recorded_trial
    from trialfinder.geocode import placer
    from trialfinder.store import QueryState, prepare_trial

    db = tmp_path / "store.sqlite"
    tempos = recorded_trial()
    with Store(db) as store:
        run = store.start_sync(T1)
        store.record_queries([(QueryState("search:x", "search"), T1, True)], run)
        store.save_page([prepare_trial(placer(store)(tempos))], query="search:x",
                        members=[tempos.nct_id], now=T1)
    sites = tuple((f"{name} PREMIER, Dr", s.facility, f"{s.city}, France")
                  for name, s in zip(("Anne", "Bruno", "Chloé"), tempos.sites[:3], strict=True))
    page = saved(tmp_path, Page(tempos.nct_id, tempos.title, "June 2024", "Open", sites))
    assert scrape(page, db=db, now=T2).merged
    with Store(db) as store:
        assert store.end_full_refresh("search:x", set(), day="2025-03-03", now=T3) == [
            tempos.nct_id]
    kept = copies(db, tempos.nct_id)
    assert kept["registry"].not_seen_since == "2025-03-03"
    assert kept["listing"].not_seen_since is None
    assert stored(db, tempos.nct_id).not_seen_since == "2025-03-03"
    assert trial_recruitment(stored(db, tempos.nct_id)).standing is Standing.UNKNOWN
    assert scrape(page, db=db, now=T4).outcome == "unchanged"
    renamed = saved(tmp_path, Page(tempos.nct_id, tempos.title, "June 2024", "Open", tuple(
        ("Zoé NOUVELLE, Dr", facility, place) for _who, facility, place in sites)))
    scrape(renamed, db=db, now=T5)
    names = {c.name for s in stored(db, tempos.nct_id).sites for c in s.contacts}
    assert "Zoé NOUVELLE" in names
    assert not names & {who.split(",")[0] for who, _f, _p in sites}  # the page's old names


def test_a_page_takes_the_store_s_cached_facility_positions(tmp_path: Path) -> None:
    """A store holding a facility's position (`geocode --online` cached it) places that site
    there, in `listing` and `scrape` alike; the other sites are placed as without a store."""
    from trialfinder.geocode import cache_key

    alone = listing_copy(SEED)
    first = alone.sites[0]
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        store.geocode_put(cache_key(first), 43.2, 5.4, "facility", "Nominatim/OpenStreetMap")
    copy = listing_copy(SEED, db=db)
    assert (copy.sites[0].latitude, copy.sites[0].longitude) == (43.2, 5.4)
    assert [(s.latitude, s.longitude) for s in copy.sites[1:]] == [
        (s.latitude, s.longitude) for s in alone.sites[1:]]
    scrape(SEED, db=db)
    with Store(db) as store:
        stored = store.source_copies([NCT], "listing")[NCT]
    assert (stored.sites[0].latitude, stored.sites[0].longitude) == (43.2, 5.4)
