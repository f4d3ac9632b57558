"""Registry sync end to end: a real HTTP server on 127.0.0.1 replays registry answers.

The NCT02260505 answers are BUILT fixtures (see tests/fixtures/ctgov/PROVENANCE.md); the
search pages come from `fake_registry.FakeRegistry`, which filters and paginates the way the
real API does, over studies made from the recorded ones. Failures (network down, 500s,
truncated bodies, a process killed mid-write, a second sync at the same time) must never lose
the previous record.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

import unprivileged
from fake_registry import FakeRegistry, nct_of, set_nct, synthetic_studies, touch
from seed_listing import seed_listing_trial
from trialfinder.cli import app
from trialfinder.errors import BadInput, StoreBusy, StoreError
from trialfinder.geocode import placing_version
from trialfinder.models import Status
from trialfinder.records import load_trial
from trialfinder.recruitment import Standing, trial_recruitment
from trialfinder.registry import RegistryClient
from trialfinder.resources import data_path
from trialfinder.store import SCHEMA_VERSION, ChangeKind, Store
from trialfinder.sync import Query, _Prefetch, lock_path, store_lock, sync

FIXTURES = Path(__file__).parent / "fixtures" / "ctgov"
NCT = "NCT02260505"
V1 = (FIXTURES / "built_NCT02260505_v1.json").read_text(encoding="utf-8")
V2 = (FIXTURES / "built_NCT02260505_v2.json").read_text(encoding="utf-8")
LISTINGS = {NCT: seed_listing_trial()}
NIGHT1 = "2025-03-01T03:17:00+00:00"
NIGHT2 = "2025-03-02T03:17:00+00:00"
NIGHT3 = "2025-03-03T03:17:00+00:00"


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    # Threaded: a handler that blocks (a slow registry) must not stall the other requests.
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


@pytest.fixture
def registry(server: HTTPServer) -> FakeRegistry:
    """A fake registry of 30 recruiting studies (NCT90000000…), last updated in January."""
    fake = FakeRegistry(synthetic_studies(30))
    fake.attach(server)
    return fake


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def client(server: HTTPServer | str) -> RegistryClient:
    url = server if isinstance(server, str) else base_url(server)
    return RegistryClient(url, max_retries=1, sleep=lambda _s: None, timeout=(2.0, 5.0))


def serve(server: HTTPServer, body: str, status: int = 200) -> None:
    server.clear()
    server.expect_request(f"/studies/{NCT}").respond_with_data(
        body, status=status, content_type="application/json"
    )


def run(server: HTTPServer, db: Path, *ids: str, **kw: object):  # type: ignore[no-untyped-def]
    if not ids and "condition" not in kw and "statuses" not in kw:
        ids = (NCT,)
    with client(server) as c:
        return sync(ids, db=db, client=c,  # type: ignore[arg-type]
                    listing_records=kw.pop("listing_records", LISTINGS), **kw)


def standings(db: Path, nct: str) -> set[str]:
    with Store(db) as store:
        return {r[0] for r in store.connection.execute(
            "SELECT standing FROM sites WHERE trial = ?", (nct,))}


# -- trials named by id ---------------------------------------------------------------------


def test_sync_v1_then_v2_records_the_changes(server: HTTPServer, tmp_path: Path) -> None:
    """First sync stores the trial; the next one records a site closed and a site removed."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    first = run(server, db, now="2024-01-10T08:00:00+00:00")
    assert [t.summary() for t in first.trials] == [f"{NCT} new: 16 sites"]
    assert first.ok and first.exit_code == 0
    trial = load_trial(NCT, db)
    assert trial.source.kind == "registry"
    assert len(trial.sites) == 16 and all(s.listing_match for s in trial.sites)
    with Store(db) as store:
        assert store.get_raw(NCT) == V1  # the text as received

    serve(server, V1)
    again = run(server, db, now="2024-02-10T08:00:00+00:00")
    assert [t.summary() for t in again.trials] == [f"{NCT} unchanged"]

    serve(server, V2)
    second = run(server, db, now="2024-03-16T08:00:00+00:00")
    assert [t.summary() for t in second.trials] == [
        f"{NCT} updated: 1 site status changed, 1 site removed"
    ]
    with Store(db) as store:
        changes = store.changes(NCT, since="2024-03-01")
    assert [c.describe() for c in changes] == [
        "2024-03-16 NCT02260505: Centre Léon Bérard: Recruiting → Active, not recruiting",
        "2024-03-16 NCT02260505: site removed: Hôpital Saint-Antoine (was Recruiting)",
    ]
    updated = load_trial(NCT, db)
    clb = next(s for s in updated.sites if s.facility == "Centre Léon Bérard")
    assert clb.status is Status.ACTIVE_NOT_RECRUITING
    saint_antoine = [s for s in updated.sites if "Saint-Antoine" in s.facility]
    assert [(s.listing_only, s.status) for s in saint_antoine] == [(True, Status.UNKNOWN)]


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        ("500", "answered 500"),
        ("truncated", "unreadable"),
        ("deep", "NCT02260505 failed: "),
        ("down", "NCT02260505 failed: "),
    ],
)
def test_failures_keep_the_previous_record(
    server: HTTPServer, tmp_path: Path, respond: str, reason: str
) -> None:
    """Registry erroring, a truncated body, a record nested too deep to decode, or no
    network: that trial failed (one line), and v1 stays intact."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db)
    before = load_trial(NCT, db)
    if respond == "500":
        serve(server, "Internal Server Error", status=500)
    elif respond == "truncated":
        serve(server, V2[: len(V2) // 2])
    elif respond == "deep":
        serve(server, "[" * 100_000 + "]" * 100_000)
    else:
        server.stop()
    report = run(server, db)
    (outcome,) = report.trials
    assert outcome.outcome == "failed"
    assert reason in outcome.summary()
    assert "\n" not in outcome.summary()
    assert report.exit_code == 1
    assert load_trial(NCT, db) == before


def test_one_failure_does_not_stop_the_others(server: HTTPServer, tmp_path: Path) -> None:
    """An unknown trial and an undecodable one fail; the next one is still stored."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    server.expect_request("/studies/NCT00000001").respond_with_data(
        "Study not found", status=404, content_type="text/plain"
    )
    server.expect_request("/studies/NCT00000002").respond_with_data(
        b"\xff\xfe{not json", content_type="application/json"
    )
    report = run(server, db, "NCT00000001", "NCT00000002", NCT)
    summaries = [t.summary() for t in report.trials]
    assert summaries[0] == (f"NCT00000001 failed: No study NCT00000001 in ClinicalTrials.gov "
                            f"(at {base_url(server)})")
    assert summaries[1].startswith("NCT00000002 failed: ")
    assert summaries[2] == f"{NCT} new: 16 sites"
    with Store(db) as store:
        assert store.trial_ids() == [NCT]
        assert store.last_sync()[3] == "partial"  # type: ignore[index]


def test_positions_are_decided_at_sync(server: HTTPServer, tmp_path: Path) -> None:
    """Every synced trial is placed by the offline chain before it is saved, stamped with
    the placing version: a site the registry gives no position gets the gazetteer's, and
    what the store holds is what loading returns."""
    db = tmp_path / "store.sqlite"
    study = json.loads((FIXTURES / "study_NCT03830788_prostate_FR16sites_sitestatus_contacts"
                        ".json").read_text(encoding="utf-8"))
    first = study["protocolSection"]["contactsLocationsModule"]["locations"][0]
    del first["geoPoint"]  # Clinique Claude Bernard, Albi
    nct = nct_of(study)
    server.expect_request(f"/studies/{nct}").respond_with_json(study)
    run(server, db, nct, listing_records={})
    with Store(db) as store:
        stored = store.get_trial(nct)
        row = store.connection.execute("SELECT placed_by FROM trials").fetchone()
    assert stored is not None and row == (placing_version(),)
    assert stored.placed_by == placing_version()
    albi = stored.sites[0]
    assert (albi.city, albi.has_position) == ("Albi", True)
    assert albi.latitude is not None and abs(albi.latitude - 43.93) < 0.1
    assert albi.coordinate_source and "gazetteer" in albi.coordinate_source
    assert load_trial(nct, db) == stored


def test_bundled_listing_is_merged_by_default(server: HTTPServer, tmp_path: Path) -> None:
    """Without listing_records, the bundled listing record of the trial is merged in."""
    if not data_path(f"trials/{NCT}.json").is_file():
        pytest.skip("bundled record not built yet")
    serve(server, V1)
    with client(server) as c:
        sync([NCT], db=tmp_path / "s.sqlite", client=c)
    trial = load_trial(NCT, tmp_path / "s.sqlite")
    assert len(trial.sites) == 16 and all(s.listing_match for s in trial.sites)


# -- searches: incremental, full, statuses ----------------------------------------------------


def test_two_nightly_runs_over_an_unchanged_registry(registry: FakeRegistry, server: HTTPServer,
                                                     tmp_path: Path) -> None:
    """The first run of a query stores everything it finds; the second, over an unchanged
    registry, asks only for what was updated since (a day of overlap) and downloads
    nothing."""
    db = tmp_path / "store.sqlite"
    first = run(server, db, condition="cancer", now=NIGHT1, page_size=7)
    matching = {nct_of(s) for s in registry.studies.values()
                if "cancer" in json.dumps(s["protocolSection"]["conditionsModule"]).lower()}
    assert {t.nct_id for t in first.trials} == matching and len(matching) > 7
    assert {t.outcome for t in first.trials} == {"new"}
    served = registry.studies_served
    pages = -(-len(matching) // 7)
    assert [p.get("filter.advanced") for p in registry.pages] == [None] * pages

    second = run(server, db, condition="  CANCER ", now=NIGHT2, page_size=7)
    assert registry.studies_served == served  # nothing downloaded
    assert registry.pages[-1]["filter.advanced"] == (
        "AREA[LastUpdatePostDate]RANGE[2025-02-28,MAX]")
    assert second.trials == ()
    assert second.summary() == ("sync: 0 asked, 0 new, 0 updated, 0 unchanged, 0 failed "
                                "('CANCER': incremental since 2025-02-28)")


def test_five_updated_studies_are_downloaded_and_their_changes_reported(
    registry: FakeRegistry, server: HTTPServer, tmp_path: Path
) -> None:
    """After five studies are updated, the next run downloads those five only and reports
    what changed in them."""
    db = tmp_path / "store.sqlite"
    run(server, db, statuses="RECRUITING", now=NIGHT1)
    updated = sorted(registry.studies)[3:8]
    for nct in updated:
        study = registry.studies[nct]
        touch(study, "2025-03-01")
        locations = study["protocolSection"].get("contactsLocationsModule", {}).get(
            "locations", [])
        if locations:
            locations[0]["status"] = "COMPLETED"
        else:
            touch(study, "2025-03-01", status="ACTIVE_NOT_RECRUITING")
    served = registry.studies_served
    report = run(server, db, statuses="RECRUITING", now=NIGHT2)
    assert registry.studies_served - served == 5
    assert sorted(t.nct_id for t in report.trials) == updated
    assert {t.outcome for t in report.trials} == {"updated"}
    assert all(t.changes for t in report.trials)
    with Store(db) as store:
        kinds = {c.kind for c in store.changes(since="2025-03-02")}
    assert kinds <= {ChangeKind.SITE_STATUS_CHANGED, ChangeKind.TRIAL_STATUS_CHANGED}


def test_a_study_that_stopped_recruiting_is_no_longer_offered(
    registry: FakeRegistry, server: HTTPServer, tmp_path: Path
) -> None:
    """A mirror of recruiting studies asks for updates without the status filter, so a study
    that closed reaches the store: after the next run it is not recruiting."""
    db = tmp_path / "store.sqlite"
    closing = sorted(registry.studies)[0]
    run(server, db, statuses="RECRUITING,NOT_YET_RECRUITING", now=NIGHT1)
    assert registry.pages[0]["filter.overallStatus"] == "NOT_YET_RECRUITING,RECRUITING"
    assert "recruiting" in standings(db, closing)
    touch(registry.studies[closing], "2025-03-01", status="COMPLETED")
    report = run(server, db, statuses="RECRUITING,NOT_YET_RECRUITING", now=NIGHT2)
    assert "filter.overallStatus" not in registry.pages[-1]
    assert [t.summary() for t in report.trials] == [
        f"{closing} updated: 1 trial status changed"]
    assert "recruiting" not in standings(db, closing)
    assert not trial_recruitment(load_trial(closing, db)).recruiting


def test_a_status_mirror_keeps_only_what_matches(registry: FakeRegistry, server: HTTPServer,
                                                 tmp_path: Path) -> None:
    """Without a condition, --status mirrors every study with those statuses; an update of a
    study the store does not hold and whose status does not match is skipped, not stored."""
    db = tmp_path / "store.sqlite"
    outsider = synthetic_studies(1, first_id=91_000_000, status="COMPLETED")[0]
    registry.put(outsider)
    first = run(server, db, statuses="RECRUITING", now=NIGHT1)
    assert len(first.trials) == 30
    for study in (outsider, *synthetic_studies(1, first_id=92_000_000)):
        touch(study, "2025-03-01")
        registry.put(study)
    second = run(server, db, statuses="RECRUITING", now=NIGHT2)
    assert [(t.nct_id, t.outcome) for t in second.trials] == [("NCT92000000", "new")]
    assert second.counts["skipped"] == 1
    assert second.summary().endswith(
        ", 1 skipped (every study, statuses RECRUITING: incremental since 2025-02-28)")
    with Store(db) as store:
        assert nct_of(outsider) not in store.trial_ids()


def test_full_refresh_marks_what_the_registry_no_longer_returns(
    registry: FakeRegistry, server: HTTPServer, tmp_path: Path
) -> None:
    """--full asks for everything again; a study it no longer finds is kept, marked "not
    seen since", and no longer called recruiting; one that comes back says so."""
    db = tmp_path / "store.sqlite"
    run(server, db, statuses="RECRUITING", now=NIGHT1)
    gone = sorted(registry.studies)[5]
    study = registry.studies[gone]
    registry.remove(gone)
    incremental = run(server, db, statuses="RECRUITING", now=NIGHT2)
    assert incremental.searches[0].marked_not_seen == ()
    full = run(server, db, statuses="RECRUITING", full=True, now=NIGHT3)
    assert full.searches[0].since is None
    assert full.searches[0].marked_not_seen == (gone,)
    assert {t.outcome for t in full.trials} == {"unchanged"}
    kept = load_trial(gone, db)
    assert kept.not_seen_since == "2025-03-03"  # the day of the full refresh
    assert trial_recruitment(kept).standing is Standing.UNKNOWN
    assert standings(db, gone) == {"unknown"}
    touch(study, "2025-03-02")
    registry.put(study)
    back = run(server, db, statuses="RECRUITING", now=NIGHT3)
    assert [t.summary() for t in back.trials] == [f"{gone} updated: 1 returned again"]
    assert "recruiting" in standings(db, gone)


def test_a_page_that_cannot_be_decoded_stores_nothing(registry: FakeRegistry,
                                                      server: HTTPServer,
                                                      tmp_path: Path) -> None:
    """Page 2 cut short: page 1 is stored, page 2 stores nothing, the run exits 1 and the
    query is not marked successful (the next run asks again from the start)."""
    db = tmp_path / "store.sqlite"
    registry.broken_page = 2
    report = run(server, db, statuses="RECRUITING", page_size=10, now=NIGHT1)
    assert report.exit_code == 1
    assert report.trials[-1].nct_id == "search" and report.trials[-1].failed
    assert len([t for t in report.trials if t.outcome == "new"]) == 10
    with Store(db) as store:
        assert len(store.trial_ids()) == 10
        state = store.query_state(Query.of(None, None, "RECRUITING").key)
        assert state is not None and state.last_success is None
        assert store.last_sync()[3] == "partial"  # type: ignore[index]
    again = run(server, db, statuses="RECRUITING", page_size=10, now=NIGHT2)
    assert again.searches[0].since is None and again.ok
    assert len([t for t in again.trials if t.outcome == "new"]) == 20


def test_a_study_that_cannot_be_parsed_fails_alone(registry: FakeRegistry, server: HTTPServer,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A study that decodes but cannot be parsed (here: the parser raises on it) fails, in
    one line; the rest of its page is stored; the run exits 1, never 70."""
    from trialfinder import registry as registry_module

    db = tmp_path / "store.sqlite"
    bad = sorted(registry.studies)[2]
    careful = registry_module.parse_study

    def parse(study: dict, **kwargs: object):  # type: ignore[no-untyped-def]
        if nct_of(study) == bad:
            raise RecursionError("maximum recursion depth exceeded")
        return careful(study, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry_module, "parse_study", parse)
    report = run(server, db, statuses="RECRUITING", now=NIGHT1)
    failed = [t for t in report.trials if t.failed]
    assert [t.summary() for t in failed] == [
        f"{bad} failed: unreadable registry record (RecursionError: maximum recursion depth "
        "exceeded)"]
    assert report.exit_code == 1
    key = Query.of(None, None, "RECRUITING").key
    with Store(db) as store:
        assert len(store.trial_ids()) == 29
        state = store.query_state(key)
        assert state is not None and state.retry == (bad,) and state.last_success == NIGHT1
    # The next night is incremental, and asks for the study that failed by id first.
    monkeypatch.undo()
    again = run(server, db, statuses="RECRUITING", now=NIGHT2)
    assert (again.searches[0].since is not None, again.searches[0].retried) == (True, 1)
    assert [(t.nct_id, t.outcome) for t in again.trials] == [(bad, "new")]
    assert registry.by_id == [bad]
    with Store(db) as store:
        state = store.query_state(key)
        assert state is not None and state.retry == () and state.trials == 30


def test_malformed_and_duplicated_search_results(registry: FakeRegistry, server: HTTPServer,
                                                 tmp_path: Path) -> None:
    """A result whose id is not an ASCII NCT id is skipped with a warning; a study returned
    on two pages is counted once, with a warning."""
    db = tmp_path / "store.sqlite"
    wide, twice = synthetic_studies(2, first_id=93_000_000)
    set_nct(wide, "NCT０３８３０７８８")
    registry.put(wide)
    original = registry.search

    def repeat_one(args: dict[str, str]) -> tuple[int, str, bytes]:
        status, kind, body = original(args)
        page = json.loads(body)
        if "pageToken" in args:
            page["studies"].append(twice)
        else:
            page["studies"].insert(0, twice)
        return status, kind, json.dumps(page).encode()

    registry.search = repeat_one  # type: ignore[method-assign]
    warnings: list[str] = []
    with client(server) as c:
        report = sync([], db=db, client=c, statuses="RECRUITING", page_size=10,
                      listing_records={}, on_warning=warnings.append)
    repeats = sum("pageToken" in p for p in registry.pages)
    assert repeats >= 2
    assert sorted(warnings) == [
        *["NCT93000001 was returned twice by the search; counted once"] * repeats,
        "skipped a search result whose identifier ('NCT\\uff10\\uff13\\uff18\\uff13\\uff10"
        "\\uff17\\uff18\\uff18') is not a ClinicalTrials.gov identifier",
    ]
    assert report.ok and report.warnings == tuple(warnings)
    assert [t.nct_id for t in report.trials].count("NCT93000001") == 1
    with Store(db) as store:
        assert len(store.trial_ids()) == 31


def test_trials_by_id_and_a_search_in_one_run(registry: FakeRegistry, server: HTTPServer,
                                              tmp_path: Path) -> None:
    """A trial named by id is fetched (one request) and not stored again from the search;
    both are remembered as queries."""
    db = tmp_path / "store.sqlite"
    named = sorted(registry.studies)[0]
    report = run(server, db, named, statuses="RECRUITING", now=NIGHT1)
    assert [t.nct_id for t in report.trials].count(named) == 1
    assert report.counts["asked"] == 30
    assert registry.by_id == [named]
    run(server, db, named, statuses="RECRUITING", now=NIGHT2)
    assert registry.by_id == [named, named]  # fetched every run
    with Store(db) as store:
        assert [q.kind for q in store.queries()] == ["search", "trial"]


def test_options_that_cannot_be_used(tmp_path: Path) -> None:
    """Bad combinations and values are refused before anything is stored."""
    db = tmp_path / "s.sqlite"
    c = client("http://127.0.0.1:9")
    cases = [
        ({"country": "France"}, "--country filters a search: give --condition or --status too"),
        ({"condition": "  "}, "--condition is empty: give the condition to search for"),
        ({"statuses": "RECRUITING,OPEN"}, "Unknown registry status 'OPEN' (expected some of "),
        ({"full": True}, "--full refreshes a search: give --condition or --status too"),
    ]
    for kwargs, message in cases:
        with pytest.raises(BadInput) as caught:
            sync([NCT], db=db, client=c, **kwargs)  # type: ignore[arg-type]
        assert str(caught.value).startswith(message)
    with pytest.raises(BadInput, match=r"^Nothing to sync"):
        sync([], db=db, client=c)
    assert not db.exists()


def test_query_keys_ignore_case_accents_and_spacing() -> None:
    """One query however it is typed; statuses in any order and case."""
    assert Query.of(" Cancer  du sein", "FRANCE", "recruiting,NOT_YET_RECRUITING").key == \
        Query.of("cancer du  SEIN", "France", ["Not yet recruiting", "RECRUITING"]).key
    assert Query.of("cancer", None, None).key != Query.of("cancer", "France", None).key


# -- the prefetch thread --------------------------------------------------------------------


def test_prefetch_runs_ahead_and_hands_errors_over() -> None:
    """The next page downloads while one is processed; an error in the thread is raised in
    the consumer after the pages before it; closing stops the thread."""
    fetched: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(3):
            fetched.append(n)
            yield n
        raise ValueError("page 4 unreadable")

    prefetch = _Prefetch(pages)
    got = []
    with pytest.raises(ValueError, match="page 4 unreadable"):
        for page in prefetch:
            time.sleep(0.05)
            assert len(fetched) >= page + 1  # at least this one, often the next
            got.append(page)
    assert got == [0, 1, 2]
    prefetch.close()
    assert not prefetch.alive

    endless = _Prefetch(lambda: iter(range(10**9)))
    next(iter(endless))
    endless.close()
    assert not endless.alive


# -- locks, kills, signals ------------------------------------------------------------------


def test_second_sync_waits_then_gives_up(tmp_path: Path) -> None:
    """While one sync holds the store, another waits lock_timeout seconds, then StoreBusy."""
    db = tmp_path / "store.sqlite"
    with store_lock(db):
        started = time.monotonic()
        with pytest.raises(StoreBusy) as caught:
            sync([NCT], db=db, client=client("http://127.0.0.1:9"), lock_timeout=0.4)
        assert time.monotonic() - started >= 0.4
    assert str(caught.value) == (
        f"Another trialfinder sync is running on {db}; try again later"
    )
    assert caught.value.exit_code == 75


def test_the_lock_follows_the_file_through_symlinks(tmp_path: Path) -> None:
    """Two syncs through a symlink and its target exclude each other: the lock is beside
    the real file."""
    target = tmp_path / "real" / "store.sqlite"
    target.parent.mkdir()
    Store(target).close()
    link = tmp_path / "link.sqlite"
    link.symlink_to(target)
    assert lock_path(link) == lock_path(target) == Path(f"{target}.lock")
    with store_lock(target), pytest.raises(StoreBusy):
        sync([NCT], db=link, client=client("http://127.0.0.1:9"), lock_timeout=0.2)


SLOW_SYNC = """
import datetime, sys
from trialfinder import clock
from trialfinder.registry import RegistryClient
clock.today = lambda: datetime.date(2025, 3, 1)  # as tests/conftest.py
from trialfinder.sync import sync
db, url = sys.argv[1], sys.argv[2]
with RegistryClient(url, timeout=(5.0, 60.0)) as client:
    report = sync(["NCT02260505"], db=db, client=client, listing_records={})
print(report.trials[0].summary())
"""

KILLED_IN_TRANSACTION = """
import os, signal, sys
from trialfinder import store
from trialfinder.registry import RegistryClient
from trialfinder.sync import sync

original = store.Store._write

def write_then_die(self, *args, **kwargs):
    original(self, *args, **kwargs)  # old rows deleted, new ones written: then SIGKILL
    os.kill(os.getpid(), signal.SIGKILL)

store.Store._write = write_then_die
with RegistryClient(sys.argv[2]) as client:
    sync(["NCT02260505"], db=sys.argv[1], client=client, listing_records={})
"""


def slow_study(started: threading.Event, release: threading.Event):  # type: ignore[no-untyped-def]
    """A registry that sends half the answer, then hangs until released."""

    def handler(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            data = V2.encode()
            yield data[: len(data) // 2]
            started.set()
            release.wait(30)
            yield data[len(data) // 2:]

        return Response(body(), content_type="application/json",
                        headers={"Content-Length": str(len(V2.encode()))})

    return handler


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_sync_exits_75_then_first_finishes(server: HTTPServer, tmp_path: Path) -> None:
    """A cron sync started while another runs exits 75 at once its wait is over; the first
    one completes normally."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db, listing_records={})
    started, release = threading.Event(), threading.Event()
    server.clear()
    server.expect_request(f"/studies/{NCT}").respond_with_handler(slow_study(started, release))
    first = spawn(SLOW_SYNC, str(db), base_url(server))
    try:
        assert started.wait(20), first.stderr.read() if first.stderr else ""
        env = {"TRIALFINDER_REGISTRY_URL": base_url(server)}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("trialfinder.sync.LOCK_TIMEOUT", 0.5)
            result = CliRunner().invoke(app, ["sync", "--db", str(db)], env=env)
        assert result.exit_code == 75
        assert result.stderr == (
            f"Error: Another trialfinder sync is running on {db}; try again later\n"
        )
        assert result.stdout == ""
    finally:
        release.set()
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert out.strip() == f"{NCT} updated: 1 site status changed, 1 site removed"


def test_killed_while_the_registry_answers(server: HTTPServer, tmp_path: Path) -> None:
    """A sync killed while the answer streams in leaves the store as it was, and unlocked;
    the next sync marks the dead run aborted."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db)
    before = load_trial(NCT, db)
    started, release = threading.Event(), threading.Event()
    server.clear()
    server.expect_request(f"/studies/{NCT}").respond_with_handler(slow_study(started, release))
    child = spawn(SLOW_SYNC, str(db), base_url(server))
    try:
        assert started.wait(20)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        release.set()
    assert child.returncode == -signal.SIGKILL
    assert load_trial(NCT, db) == before
    with Store(db) as store:
        assert store.runs()[0].outcome is None  # unfinished: nobody said anything
    serve(server, V1)
    assert run(server, db).trials[0].outcome == "unchanged"  # the lock died with the process
    with Store(db) as store:
        assert [r.outcome for r in store.runs()] == ["ok", "aborted", "ok"]


def test_killed_inside_the_transaction(server: HTTPServer, tmp_path: Path) -> None:
    """SIGKILL between the first and the last row of a write: the old record is intact."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db, listing_records={})
    before = load_trial(NCT, db)
    serve(server, V2)
    child = spawn(KILLED_IN_TRANSACTION, str(db), base_url(server))
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert os.path.exists(f"{db}-wal")  # noqa: PTH110 - the WAL the dead process left
    with Store(db) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store._db.execute("SELECT count(*) FROM sites").fetchone()[0] == 16
        assert [c.kind for c in store.changes()] == [ChangeKind.TRIAL_ADDED]
    assert load_trial(NCT, db) == before
    report = run(server, db, listing_records={})
    assert report.trials[0].summary() == f"{NCT} updated: 1 site status changed, 1 site removed"


SEARCH_THEN_WAIT = """
import datetime, sys
from trialfinder import clock
clock.today = lambda: datetime.date(2025, 3, 1)  # as tests/conftest.py
from trialfinder.cli import app
sys.argv = ["trialfinder", "sync", "NCT02260505", "--status", "RECRUITING", "--db",
            sys.argv[1], "--registry-url", sys.argv[2]]
app()
"""


def test_sigterm_ends_a_sync_like_ctrl_c(registry: FakeRegistry, server: HTTPServer,
                                        tmp_path: Path) -> None:
    """SIGTERM while the prefetch thread waits for a search page: what was written stays,
    the run is recorded as aborted, the process ends at once (exit 130, one line) and frees
    the lock."""
    db = tmp_path / "store.sqlite"
    registry.put(json.loads(V1))
    started, release = threading.Event(), threading.Event()
    original = registry.search

    def slow(args: dict[str, str]) -> tuple[int, str, bytes]:
        started.set()
        release.wait(30)
        return original(args)

    registry.search = slow  # type: ignore[method-assign]
    writer = spawn(SEARCH_THEN_WAIT, str(db), base_url(server))
    try:
        assert started.wait(30)
        writer.send_signal(signal.SIGTERM)
        out, err = writer.communicate(timeout=10)
    finally:
        release.set()
    assert writer.returncode == 130
    assert out == f"{NCT} new: 16 sites\n"
    assert err == "Error: interrupted\n"
    with Store(db) as store:
        assert store.trial_ids() == [NCT]
        (latest,) = store.runs(1)
        assert latest.outcome == "aborted"
    with store_lock(db, timeout=0.5):
        pass  # nobody holds it


# -- the command line -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_sync_and_changes(server: HTTPServer, tmp_path: Path) -> None:
    """`trialfinder sync` prints a line per new or updated trial and one summary line for
    cron; `changes` lists the history."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    runner = CliRunner()
    url = base_url(server)
    first = runner.invoke(app, ["sync", "--db", str(db), "--registry-url", url])
    assert (first.exit_code, first.stdout, first.stderr) == (
        0, f"{NCT} new: 16 sites\nsync: 1 asked, 1 new, 0 updated, 0 unchanged, 0 failed "
           "(1 trial by id)\n", "")
    again = runner.invoke(app, ["sync", "--db", str(db), "--registry-url", url])
    assert again.stdout == ("sync: 1 asked, 0 new, 0 updated, 1 unchanged, 0 failed "
                            "(1 trial by id)\n")
    verbose = runner.invoke(app, ["sync", "-v", "--db", str(db), "--registry-url", url])
    assert verbose.stdout.splitlines()[0] == f"{NCT} unchanged"
    serve(server, V2)
    second = runner.invoke(app, ["sync", NCT, "--db", str(db), "--registry-url", url, "--json"])
    assert second.exit_code == 0
    summary = json.loads(second.stdout)
    assert summary["ok"] is True
    assert summary["counts"] == {"new": 0, "updated": 1, "unchanged": 0, "failed": 0}
    assert summary["trials"][0]["changes"] == {"site_removed": 1, "site_status_changed": 1}

    changes = runner.invoke(app, ["changes", "--db", str(db), "--trial", NCT.lower()])
    assert changes.exit_code == 0
    lines = changes.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("NCT02260505: trial added (Recruiting)")
    assert lines[1].endswith("Centre Léon Bérard: Recruiting → Active, not recruiting")
    assert lines[2].endswith("site removed: Hôpital Saint-Antoine (was Recruiting)")
    as_json = runner.invoke(app, ["changes", "--db", str(db), "--json", "--since", "2000-01-01"])
    assert [(c["kind"], c["source"]) for c in json.loads(as_json.stdout)] == [
        ("trial_added", "registry"), ("site_status_changed", "registry"),
        ("site_removed", "registry")]
    future = runner.invoke(app, ["changes", "--db", str(db), "--since", "2999-01-01"])
    assert future.stdout == "No changes recorded.\n"
    bad = runner.invoke(app, ["changes", "--db", str(db), "--since", "yesterday"])
    assert (bad.exit_code, bad.stderr) == (
        2, "Error: 'yesterday' is not a date (expected YYYY-MM-DD)\n")


def test_cli_sync_failure_exits_1_with_one_line(tmp_path: Path) -> None:
    """With the registry unreachable, sync says why in one line and exits 1."""
    db = tmp_path / "store.sqlite"
    url = f"http://127.0.0.1:{free_port()}"
    # A 1 s bound leaves no time for a retry: no real backoff waits in the test.
    result = CliRunner().invoke(app, ["sync", "--db", str(db), "--registry-url", url],
                                env={"TRIALFINDER_REGISTRY_GIVE_UP": "1"})
    assert result.exit_code == 1
    line, summary = result.stdout.splitlines()
    assert line.startswith(f"{NCT} failed: ")
    assert summary == "sync: 1 asked, 0 new, 0 updated, 0 unchanged, 1 failed (1 trial by id)"
    assert result.stderr.startswith(f"Error: 1 of 1 trials failed; {NCT}: ")
    assert result.stderr.count("\n") == 1


def test_cli_search_sync_in_its_own_process(registry: FakeRegistry, server: HTTPServer,
                                            tmp_path: Path) -> None:
    """The real command in its own process: a line per new trial, the summary line, exit 0;
    the next night only the summary."""
    db = tmp_path / "store.sqlite"
    command = [sys.executable, "-c", unprivileged.CLI, "sync", "--status", "RECRUITING",
               "--condition", "cancer", "--db", str(db), "--registry-url", base_url(server)]
    env = {**os.environ, "TRIALFINDER_DEBUG": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    *lines, summary = done.stdout.splitlines()
    assert lines and all(" new: " in line for line in lines)
    assert summary == (f"sync: {len(lines)} asked, {len(lines)} new, 0 updated, 0 unchanged, "
                       "0 failed ('cancer', statuses RECRUITING: full refresh)")
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    since = (date.today() - timedelta(days=1)).isoformat()  # the run's real start, less a day
    assert again.stdout in [
        "sync: 0 asked, 0 new, 0 updated, 0 unchanged, 0 failed ('cancer', statuses "
        f"RECRUITING: incremental since {day})\n"
        for day in (since, (date.today() - timedelta(days=2)).isoformat())]


def test_empty_condition_is_a_usage_error(tmp_path: Path) -> None:
    """An empty --condition is refused before anything is fetched or stored."""
    result = CliRunner().invoke(app, ["sync", "--condition", "  ", "--db",
                                      str(tmp_path / "s.sqlite"), "--registry-url",
                                      "http://127.0.0.1:9"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: --condition is empty: give the condition to search for\n"
    assert not (tmp_path / "s.sqlite").exists()


# -- status ---------------------------------------------------------------------------------


def test_status_for_cron_monitoring(registry: FakeRegistry, server: HTTPServer,
                                    tmp_path: Path) -> None:
    """`trialfinder status` sums up the store and its runs; --max-age exits 1 when the last
    success is too old or missing; a dead unfinished run is marked aborted."""
    db = tmp_path / "store.sqlite"
    runner = CliRunner()
    never = runner.invoke(app, ["status", "--db", str(db), "--max-age", "24"])
    assert never.exit_code == 1
    assert never.stdout == f"No store at {db} yet; fill it with `trialfinder sync`.\n"
    assert never.stderr == "Error: no successful sync recorded in this store\n"
    run(server, db, statuses="RECRUITING", now=NIGHT1, listing_records={})
    with Store(db) as store:
        store.start_sync(now=NIGHT2, arguments={"nct_ids": [], "statuses": ["RECRUITING"]})
    status = runner.invoke(app, ["status", "--db", str(db)])
    assert status.exit_code == 0
    lines = status.stdout.splitlines()
    with Store(db) as store:
        sites = store.counts()[1]
    assert lines[:3] == [f"Store: {db} (schema {SCHEMA_VERSION})", f"Trials: 30; sites: {sites}",
                         f"Last successful sync: {NIGHT1} ("
                         f"{lines[2].split('(')[1]}"]
    assert lines[3:] == [
        "1 unfinished run marked aborted (its process is gone)",
        "Last runs:",
        f"  #2 {NIGHT2} aborted [--status RECRUITING] — the process ended without "
        "finishing the run",
        f"  #1 {NIGHT1} ok: 30 asked, 30 new, 0 updated, 0 unchanged, 0 failed [--status "
        "RECRUITING]",
        "Queries:",
        f"  every study, statuses RECRUITING — 30 trials: last success {NIGHT1}, last full "
        f"refresh {NIGHT1}",
    ]
    data = json.loads(runner.invoke(app, ["status", "--db", str(db), "--json"]).stdout)
    assert (data["schema"], data["trials"], data["last_success"]["id"]) == (SCHEMA_VERSION, 30, 1)
    assert [r["outcome"] for r in data["runs"]] == ["aborted", "ok"]
    assert data["queries"][0]["statuses"] == ["RECRUITING"]
    old = runner.invoke(app, ["status", "--db", str(db), "--max-age", "1"])
    assert old.exit_code == 1
    assert old.stderr.startswith("Error: the last successful sync was ")
    assert old.stderr.endswith(" hours ago (more than 1)\n")
    fresh = runner.invoke(app, ["status", "--db", str(db), "--max-age", "1000000"])
    assert fresh.exit_code == 0


def test_status_leaves_a_running_sync_alone(tmp_path: Path) -> None:
    """While a sync holds the lock, its unfinished run is shown running, not aborted."""
    db = tmp_path / "store.sqlite"
    with Store(db) as store:
        store.start_sync(now=NIGHT1)
    with store_lock(db):
        result = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert "A sync is running now." in result.stdout
    assert f"  #1 {NIGHT1} running" in result.stdout.splitlines()


# -- read-only stores -----------------------------------------------------------------------


def test_a_store_that_cannot_be_written(server: HTTPServer) -> None:
    """As a user who cannot write the store's folder: `status`, `changes` and `show` read
    it; `sync` says in one line that it cannot write, exit 1, and nothing is lost."""
    serve(server, V1)
    with unprivileged.shared_folder() as folder:
        db = folder / "store.sqlite"
        run(server, db)
        status = unprivileged.cli("status", "--db", str(db))
        changes = unprivileged.cli("changes", "--db", str(db))
        show = unprivileged.cli("show", NCT, "--db", str(db))
        refused = unprivileged.cli("sync", NCT, "--db", str(db), "--registry-url",
                                   base_url(server))
        kept = load_trial(NCT, db)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"Store: {db} (schema {SCHEMA_VERSION}, read-only)"
    assert (changes.returncode, changes.stdout.count("trial added")) == (0, 1)
    assert show.returncode == 0 and NCT in show.stdout
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (f"Error: The store at {db} cannot be written by this user "
                              "(read-only file or folder)\n")
    assert len(kept.sites) == 16


# -- positions refreshed ----------------------------------------------------------------------


def test_outdated_positions_are_placed_again(server: HTTPServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A record placed by older rules is placed again when loaded (and written back);
    `geocode --refresh` does every stored trial at once."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db)
    with Store(db) as store:
        store.connection.execute("UPDATE trials SET placed_by = 'rules 0', record_json = "
                                 "json_set(record_json, '$.placed_by', 'rules 0')")
    loaded = load_trial(NCT, db)
    assert loaded.placed_by == placing_version()
    with Store(db) as store:
        assert store.connection.execute("SELECT placed_by FROM trials").fetchone() == (
            placing_version(),)
        store.connection.execute("UPDATE trials SET placed_by = 'rules 0', record_json = "
                                 "json_set(record_json, '$.placed_by', 'rules 0')")
    result = CliRunner().invoke(app, ["geocode", "--refresh", "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"Placed 1 trials again (16 sites, 16 with a position) with "
                             f"{placing_version()}.\n")
    with Store(db) as store:
        assert store.get_trial(NCT).placed_by == placing_version()  # type: ignore[union-attr]
    both = CliRunner().invoke(app, ["geocode", "--refresh", "--online", "--db", str(db)])
    assert both.exit_code == 2


def test_sync_refuses_a_read_only_store_before_fetching(tmp_path: Path) -> None:
    """A store opened read-only cannot be synced into (one StoreError line)."""
    db = tmp_path / "store.sqlite"
    Store(db).close()
    with Store(db, mode="read") as store, pytest.raises(StoreError, match="cannot be written"):
        sync([NCT], db=store, client=client("http://127.0.0.1:9"))


def test_status_reads_an_older_store_it_cannot_upgrade(server: HTTPServer,
                                                       tmp_path: Path) -> None:
    """A schema-3 store opened read-only (it cannot be upgraded) still gets a status: its
    runs without the details schema 4 keeps."""
    from test_store import _as_version
    from trialfinder.sync import store_status

    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db, now=NIGHT1)
    _as_version(db, 3)
    with Store(db, mode="read") as store:
        status = store_status(store, now=NIGHT2)
    assert (status.schema, status.read_only, status.trials, status.sites) == (3, True, 1, 16)
    assert status.last_success is not None and status.last_success.counts == {}
    assert status.queries == () and status.age_hours() == 24.0



# -- trials placed by another version: every sync places them again --------------------------

FAR = "Anchorage"
"""Where the "older rules" of these tests put the sites they placed from the gazetteer: far
from every synthetic study (in France and the lower 48 states), like a namesake elsewhere."""


@pytest.fixture
def addresses_only(server: HTTPServer) -> FakeRegistry:
    """A fake registry of 30 recruiting studies whose first recruiting site has no registry
    point: the placing rules place it from the gazetteer, by its address."""
    studies = synthetic_studies(30)
    for study in studies:
        for location in study["protocolSection"]["contactsLocationsModule"].get("locations", []):
            if location.get("status") == "RECRUITING" and "geoPoint" in location:
                del location["geoPoint"]
                break
    fake = FakeRegistry(studies)
    fake.attach(server)
    return fake


def _placed_by_older_rules(monkeypatch: pytest.MonkeyPatch, server: HTTPServer,
                           db: Path) -> int:
    """Fill the store as an older version of the placing rules did: synced under rules "0",
    which put every site it placed from the gazetteer in Anchorage (the namesake mistake).
    The current rules are in force again afterwards; returns how many sites were misplaced."""
    from trialfinder import geocode
    from trialfinder.gazetteer import Gazetteer

    current = geocode.PLACING_RULES
    monkeypatch.setattr(geocode, "PLACING_RULES", "0")
    run(server, db, statuses="RECRUITING", now=NIGHT1, listing_records={})
    far = Gazetteer.bundled().resolve(FAR).place
    moved = 0
    with Store(db) as store:
        trials = []
        for trial in store.iter_trials():
            sites = []
            for site in trial.sites:
                if site.coordinate_source == geocode.GAZETTEER_SOURCE:
                    site = replace(site, latitude=far.latitude, longitude=far.longitude)
                    moved += 1
                sites.append(site)
            trials.append(trial.replace(sites=tuple(sites)))
        store.rewrite_trials(trials)
    monkeypatch.setattr(geocode, "PLACING_RULES", current)
    return moved


def _search(db: Path, place: str) -> dict:
    result = CliRunner().invoke(app, ["search", "--near", place, "--limit", "5", "--json",
                                      "--db", str(db)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _nearest_km(db: Path, place: str, nct: str) -> float:
    """The distance `nearest` gives to the trial's nearest recruiting site."""
    result = CliRunner().invoke(app, ["nearest", place, "--trial", nct, "--max-km", "20000",
                                      "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    return float(json.loads(result.stdout)["sites"][0]["distance_km"])


@pytest.mark.parametrize("fix", ["sync", "geocode --refresh"])
def test_search_and_nearest_agree_once_outdated_positions_are_placed_again(
    addresses_only: FakeRegistry, server: HTTPServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, fix: str,
) -> None:
    """After an upgrade of the placing rules, `search` ranks by the positions the older rules
    stored (and says so) while `nearest` places again: they disagree. One sync (an
    incremental one, which fetches nothing) or `geocode --refresh` places every outdated
    trial again; then they agree, and the note is gone."""
    db = tmp_path / "store.sqlite"
    assert _placed_by_older_rules(monkeypatch, server, db) >= 10

    before = _search(db, FAR)
    assert before["index"]["trials_placed_by_another_version"] == 30
    assert before["notes"] == [
        "30 trials in the store were placed by another version of trialfinder's placing rules "
        "or gazetteer, so their positions may be out of date. Place them again with "
        "`trialfinder geocode --refresh` (offline), or the next `trialfinder sync` will."]
    hits = [(t["nct_id"], t["site"]["distance_km"]) for t in before["trials"]]
    assert [km for _n, km in hits] == [0.0] * 5  # the misplaced sites, "in Anchorage"
    nearest = {nct: _nearest_km(db, FAR, nct) for nct, _km in hits}
    assert all(km > 1000 for km in nearest.values())  # where the current rules place them
    # `nearest` wrote back the five trials it placed again: the others wait.
    assert _search(db, FAR)["index"]["trials_placed_by_another_version"] == 25

    if fix == "sync":
        result = CliRunner().invoke(app, ["sync", "--status", "RECRUITING", "--db", str(db),
                                          "--registry-url", base_url(server)])
        assert result.exit_code == 0, result.output
        assert result.stdout == (
            "sync: 0 asked, 0 new, 0 updated, 0 unchanged, 0 failed, 25 trials placed again "
            "by the current rules (every study, statuses RECRUITING: incremental since "
            "2025-02-28)\n")
    else:
        result = CliRunner().invoke(app, ["geocode", "--refresh", "--db", str(db)])
        assert result.exit_code == 0, result.output

    after = _search(db, FAR)
    assert after["notes"] == [] and after["index"]["trials_placed_by_another_version"] == 0
    hits = [(t["nct_id"], t["site"]["distance_km"]) for t in after["trials"]]
    assert len(hits) == 5 and all(km > 1000 for _n, km in hits)
    assert hits == [(nct, _nearest_km(db, FAR, nct)) for nct, _km in hits]
    with Store(db) as store:
        assert not store.search_has_fresh()  # the index's tree took in the new positions
        assert store.placed_otherwise_count(placing_version()) == 0


def test_a_sync_by_id_places_the_other_outdated_trials_and_says_how_many(
    registry: FakeRegistry, server: HTTPServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sync of one trial by id also places again the stored trials another version placed:
    the summary line counts them (singular and plural), `--json` has the count, and `status`
    shows it in the run's line; trials the run itself stored are placed by the current rules
    and not counted."""
    from trialfinder import geocode

    db = tmp_path / "store.sqlite"
    current = geocode.PLACING_RULES
    monkeypatch.setattr(geocode, "PLACING_RULES", "0")
    run(server, db, "NCT90000000", now=NIGHT1)
    monkeypatch.setattr(geocode, "PLACING_RULES", current)
    runner = CliRunner()
    url = base_url(server)
    one = runner.invoke(app, ["sync", "NCT90000001", "--db", str(db), "--registry-url", url])
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines()[-1] == (
        "sync: 1 asked, 1 new, 0 updated, 0 unchanged, 0 failed, 1 trial placed again by the "
        "current rules (1 trial by id)")
    status = runner.invoke(app, ["status", "--db", str(db)]).stdout.splitlines()
    assert status[status.index("Last runs:") + 1].endswith(
        "ok: 1 asked, 1 new, 0 updated, 0 unchanged, 0 failed, 1 trial placed again "
        "[NCT90000001]")

    monkeypatch.setattr(geocode, "PLACING_RULES", "4")  # an upgrade: both are outdated now
    both = json.loads(runner.invoke(app, ["sync", "NCT90000002", "--json", "--db", str(db),
                                          "--registry-url", url]).stdout)
    assert (both["placed_again"], both["counts"]["new"]) == (2, 1)
    with Store(db) as store:
        assert {t.placed_by for t in store.iter_trials()} == {placing_version()}
        assert placing_version().startswith("rules 4; ")


def test_nothing_is_placed_again_when_every_trial_is_current(
    registry: FakeRegistry, server: HTTPServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the current rules placed every stored trial, a sync writes no position again:
    no rewrite, the records as they were, no count in the summary line, 0 in JSON."""
    db = tmp_path / "store.sqlite"
    run(server, db, statuses="RECRUITING", now=NIGHT1, listing_records={})
    with Store(db) as store:
        records = store.connection.execute(
            "SELECT nct_id, record_json, fetched_at FROM trials ORDER BY nct_id").fetchall()
    rewrites: list[int] = []
    rewrite = Store.rewrite_trials

    def counted(self: Store, trials: object, **kw: bool) -> int:
        rewrites.append(1)
        return rewrite(self, trials, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "rewrite_trials", counted)
    again = run(server, db, statuses="RECRUITING", now=NIGHT2, listing_records={})
    assert again.placed_again == 0 and again.to_jsonable()["placed_again"] == 0
    assert "placed again" not in again.summary()
    assert rewrites == []
    with Store(db) as store:
        assert store.connection.execute(
            "SELECT nct_id, record_json, fetched_at FROM trials ORDER BY nct_id").fetchall() \
            == records


def test_an_unreadable_outdated_record_is_a_warning_not_a_failed_sync(
    registry: FakeRegistry, server: HTTPServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outdated record that cannot be decoded is left as it is with a warning naming it
    (the next sync tries again); the others are placed again and the run succeeds."""
    from trialfinder import geocode

    db = tmp_path / "store.sqlite"
    current = geocode.PLACING_RULES
    monkeypatch.setattr(geocode, "PLACING_RULES", "0")
    run(server, db, "NCT90000000", "NCT90000001", "NCT90000002", now=NIGHT1)
    monkeypatch.setattr(geocode, "PLACING_RULES", current)
    with Store(db) as store:
        store.connection.execute("UPDATE trials SET record_json = '{\"nct_id\": ' WHERE "
                                 "nct_id = 'NCT90000001'")
    warnings: list[str] = []
    report = run(server, db, "NCT90000003", now=NIGHT2, on_warning=warnings.append)
    assert report.ok and report.placed_again == 2
    assert warnings == [
        f"could not place a stored record again: The store at {db} holds an unreadable "
        "record of NCT90000001 (Expecting value: line 1 column 12 (char 11)); run "
        "`trialfinder sync NCT90000001` to replace it"]
    assert report.to_jsonable()["warnings"] == warnings
    with Store(db) as store:
        assert store.placed_otherwise_count(placing_version()) == 1
