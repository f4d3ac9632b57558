"""The SQLite store: schema, incremental saves, history of changes, geocode cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unprivileged
from trialfinder.errors import BadInput, StoreError
from trialfinder.models import Contact, Precision, Site, Source, Status, Trial
from trialfinder.store import (
    SCHEMA_VERSION,
    Change,
    ChangeKind,
    QueryState,
    Store,
    prepare_trial,
)

T1 = "2024-01-10T08:00:00+00:00"
T2 = "2024-03-15T08:00:00+00:00"
T3 = "2024-05-20T08:00:00+00:00"


def site(facility: str, city: str, status: Status | None = Status.RECRUITING,
         contacts: tuple[Contact, ...] = (), **kw: object) -> Site:
    fields: dict = {"latitude": 45.74848, "longitude": 4.84669, "precision": Precision.CITY,
                    **kw}
    return Site(facility=facility, city=city, country="France", status=status,
                contacts=contacts, **fields)


def trial(*sites: Site, status: Status = Status.RECRUITING, last_update: str = "2024-01-05",
          retrieved: str = T1) -> Trial:
    return Trial(
        nct_id="NCT02260505",
        title="Imatinib maintenance or interruption in GIST",
        source=Source("registry", "ClinicalTrials.gov API v2", last_update, retrieved=retrieved),
        status=status,
        last_update=last_update,
        central_contacts=(Contact("Study desk", role="CONTACT", email="desk@example.org"),),
        sites=sites,
    )


CLB = site("Centre Léon Bérard", "Lyon",
           contacts=(Contact("Jean-Yves Blay, MD", role="PRINCIPAL_INVESTIGATOR"),))
HEGP = site("Hôpital Européen Georges Pompidou", "Paris")
IPC = site("Institut Paoli-Calmettes", "Marseille", status=None)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as db:
        yield db


def test_schema_is_versioned_and_marked(store: Store) -> None:
    """A new store carries the schema version and every table the library uses."""
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"trials", "sites", "contacts", "changes", "syncs", "geocode_cache",
            "trial_sources", "sync_queries", "query_trials"} <= tables
    assert store.schema_version == SCHEMA_VERSION
    indexes = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert indexes.isdisjoint({"sites_lat_lon", "sites_status"})  # dropped in schema 2


def _as_version(path: Path, version: int) -> None:
    """Turn a store into what trialfinder wrote with an older schema: 5 (no index of the
    placing versions), 4 (no copies of each source beside a merged record either), 3 (no
    history by source, no run details, no query memory), 2 (no derived columns either), 1
    (two more indexes)."""
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX trials_placed_by")
    if version == 5:
        raw.execute(f"PRAGMA user_version = {version}")
        raw.commit()
        raw.close()
        return
    raw.execute("ALTER TABLE trial_sources DROP COLUMN record")
    if version == 4:
        raw.execute(f"PRAGMA user_version = {version}")
        raw.commit()
        raw.close()
        return
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f"DROP TRIGGER {name}")  # the search index's: they read the columns below
    raw.execute("DROP INDEX IF EXISTS search_unplaced")  # the search index's too
    for table in ("trial_sources", "query_trials", "sync_queries"):
        raw.execute(f"DROP TABLE {table}")
    for column in ("arguments", "counts", "pid", "note"):
        raw.execute(f"ALTER TABLE syncs DROP COLUMN {column}")
    raw.execute("ALTER TABLE changes DROP COLUMN source")
    if version <= 2:
        for table, column in (("trials", "search_text"), ("trials", "placed_by"),
                              ("sites", "standing"), ("sites", "recruiting_until"),
                              ("sites", "matched"), ("sites", "unplaced_reason")):
            raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # added by schema 3
    if version <= 1:
        raw.execute("CREATE INDEX sites_lat_lon ON sites(latitude, longitude)")
        raw.execute("CREATE INDEX sites_status ON sites(status)")
    raw.execute(f"PRAGMA user_version = {version}")
    raw.commit()
    raw.close()


def _as_version_1(path: Path) -> None:
    _as_version(path, 1)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_old_store_is_upgraded_in_place(tmp_path: Path, version: int) -> None:
    """Opening a store of schema 1, 2 or 3 brings it to the current schema in place: unused
    indexes dropped, derived columns recomputed from the records, the new tables made, every
    record, raw copy and change kept; history goes on from the stored records."""
    path = tmp_path / "store.sqlite"
    with Store(path) as db:
        db.save_trial(trial(CLB, HEGP), "v1", now=T1)
    _as_version(path, version)
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 6
        names = {r[0] for r in db._db.execute("SELECT name FROM sqlite_master")}
        assert names.isdisjoint({"sites_lat_lon", "sites_status"})
        assert {"trial_sources", "sync_queries", "query_trials"} <= names
        assert db.get_trial("NCT02260505") == trial(CLB, HEGP)
        assert db.get_raw("NCT02260505") == "v1"
        standings = db._db.execute("SELECT DISTINCT standing FROM sites").fetchall()
        assert standings == [("recruiting",)]
        assert [(c.kind, c.source) for c in db.changes()] == [
            (ChangeKind.TRIAL_ADDED, "registry")]
        # Until the trial has a basis of its own again, only its recorded status compares.
        closed = db.save_trial(trial(CLB, HEGP, status=Status.COMPLETED,
                                     last_update="2024-03-01"), None, now=T2)
        assert [c.kind for c in closed.changes] == [ChangeKind.TRIAL_STATUS_CHANGED]
        later = db.save_trial(trial(CLB, status=Status.COMPLETED, last_update="2024-04-01"),
                              None, now=T3)
        assert [c.kind for c in later.changes] == [ChangeKind.SITE_REMOVED]


def test_schema_4_store_gains_the_copies_column(tmp_path: Path) -> None:
    """A schema-4 store is upgraded in place (the column for sources' own copies added): its
    records, bases and history stay, and the next copy is compared with the kept basis."""
    path = tmp_path / "store.sqlite"
    with Store(path) as db:
        db.save_trial(trial(CLB, HEGP), "v1", now=T1)
    _as_version(path, 4)
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 6
        assert db.get_trial("NCT02260505") == trial(CLB, HEGP)
        assert db.source_copies(["NCT02260505"], "registry") == {
            "NCT02260505": trial(CLB, HEGP)}
        later = db.save_trial(trial(CLB, last_update="2024-04-01"), None, now=T2)
        assert [c.kind for c in later.changes] == [ChangeKind.SITE_REMOVED]


def test_schema_5_store_gains_the_index_of_placing_versions(tmp_path: Path) -> None:
    """A schema-5 store is upgraded in place with the index that finds the trials placed by
    another version; read as it is (read-only), it says it cannot count them cheaply."""
    path = tmp_path / "store.sqlite"
    with Store(path) as db:
        db.save_trial(trial(CLB).replace(placed_by="rules 1"), None, now=T1)
    _as_version(path, 5)
    with Store(path, mode="read") as reader:
        assert reader.schema_version == 5
        assert reader.placed_otherwise_count("rules 2") is None
        assert [[t.nct_id for t in b] for b in reader.trials_placed_otherwise("rules 2")] == [
            ["NCT02260505"]]  # still found, by reading every record
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 6
        plan = db._db.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM trials WHERE "
                              "placed_by < 'x'").fetchall()
        assert "trials_placed_by" in plan[0][3]
        assert (db.placed_otherwise_count("rules 1"), db.placed_otherwise_count("rules 2")) \
            == (0, 1)


placings = st.one_of(st.none(), st.sampled_from(["rules 2; gazetteer a", "rules 3; gazetteer a",
                                                  "rules 3; gazetteer b", "rules 3", "", "r"]))


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(stamps=st.lists(placings, max_size=12), version=placings.filter(lambda v: v is not None),
       batch=st.integers(min_value=1, max_value=5))
def test_trials_placed_otherwise_are_those_another_version_placed(
    stamps: list[str | None], version: str, batch: int
) -> None:
    """The trials placed by another version than the current one are those whose stamp
    differs (never stamped included), counted and listed alike, in batches that the caller
    may rewrite as it goes without any being skipped or given twice."""
    with Store(":memory:") as db:
        for number, stamp in enumerate(stamps):
            record = trial(CLB).replace(nct_id=f"NCT{number:08d}", placed_by=stamp)
            db.save_trial(record, None, now=T1)
        expected = {f"NCT{n:08d}" for n, stamp in enumerate(stamps) if stamp != version}
        assert db.placed_otherwise_count(version) == len(expected)
        given_back: list[str] = []
        for found in db.trials_placed_otherwise(version, batch=batch):
            assert 1 <= len(found) <= batch
            given_back += [t.nct_id for t in found]
            db.rewrite_trials([t.replace(placed_by=version) for t in found])
        assert sorted(given_back) == sorted(expected)
        assert db.placed_otherwise_count(version) == 0


def test_an_unreadable_record_placed_otherwise_goes_to_the_callback(store: Store) -> None:
    """A record that cannot be decoded is handed to ``on_unreadable`` (else raised), and the
    others are still given."""
    store.save_trial(trial(CLB), None, now=T1)
    store.save_trial(trial(HEGP).replace(nct_id="NCT00000002"), None, now=T1)
    store._db.execute("UPDATE trials SET record_json = '[' WHERE nct_id = 'NCT00000002'")
    errors: list[StoreError] = []
    found = [t.nct_id for b in store.trials_placed_otherwise("v", on_unreadable=errors.append)
             for t in b]
    assert found == ["NCT02260505"]
    assert [str(e) for e in errors] == [
        "The store at :memory: holds an unreadable record of NCT00000002 (Expecting value: "
        "line 1 column 2 (char 1)); run `trialfinder sync NCT00000002` to replace it"]
    with pytest.raises(StoreError, match="unreadable record of NCT00000002"):
        list(store.trials_placed_otherwise("v"))


def test_upgrade_that_fails_is_one_error_for_a_writer(tmp_path: Path) -> None:
    """A writer that cannot upgrade the store says so in one line (a reader reads the old
    schema as it is)."""
    path = tmp_path / "store.sqlite"
    Store(path).close()
    _as_version(path, 3)
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE sync_queries (key TEXT)")  # in the upgrade's way
    raw.commit()
    raw.close()
    with Store(path) as reader:
        assert reader.schema_version == 3
    with pytest.raises(StoreError, match=r"^Cannot upgrade the store at .*: table "
                       r"sync_queries already exists$"):
        Store(path, mode="write")


def test_schema_1_store_is_read_as_it_is_while_a_writer_holds_it(tmp_path: Path) -> None:
    """A reader does not wait for a running sync to upgrade: it reads the old schema."""
    path = tmp_path / "store.sqlite"
    with Store(path) as db:
        db.save_trial(trial(CLB), None, now=T1)
    _as_version_1(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with Store(path) as db:
            assert db.schema_version == 1
            assert db.get_trial("NCT02260505") == trial(CLB)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION


def test_file_store_uses_wal_and_creates_parent_dirs(tmp_path: Path) -> None:
    """A store on disk is created with its folders and runs in WAL mode with foreign keys."""
    path = tmp_path / "a" / "b" / "store.sqlite"
    with Store(path) as db:
        assert db.journal_mode == "wal"
        assert db._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with Store(path) as again:  # reopening an existing store is fine
        assert again.schema_version == SCHEMA_VERSION


def test_corrupt_file_is_refused_in_one_line(tmp_path: Path) -> None:
    """A file that is not SQLite gives one clear error, and is left as it was."""
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"this is not a database, just some text that happens to be long " * 20)
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert str(caught.value) == f"The store at {path} is not a trialfinder database"
    assert path.read_bytes().startswith(b"this is not a database")


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    """Someone else's SQLite file is not taken over."""
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(StoreError, match="is not a trialfinder database"):
        Store(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer trialfinder is not read with an older schema."""
    path = tmp_path / "store.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer trialfinder"):
        Store(path)


def test_save_new_then_read_back(store: Store) -> None:
    """A first save stores the record as it was and records the trial as added."""
    record = trial(CLB, HEGP, IPC)
    result = store.save_trial(record, '{"raw": true}', now=T1)
    assert result.outcome == "new"
    assert result.changes == (Change(T1, "NCT02260505", ChangeKind.TRIAL_ADDED, new="RECRUITING"),)
    assert store.get_trial("NCT02260505") == record
    assert store.get_raw("NCT02260505") == '{"raw": true}'
    assert store.trial_ids() == ["NCT02260505"]
    assert store.get_trial("NCT00000000") is None


def test_same_content_is_not_rewritten(store: Store) -> None:
    """Same last update and content: nothing is written, not even the fetch time."""
    store.save_trial(trial(CLB, HEGP), None, now=T1)
    again = store.save_trial(trial(CLB, HEGP, retrieved=T2), None, now=T2)
    assert again.outcome == "unchanged"
    assert again.changes == ()
    fetched = store._db.execute("SELECT fetched_at FROM trials").fetchone()[0]
    assert fetched == T1
    assert len(store.changes()) == 1


def test_history_of_site_changes(store: Store) -> None:
    """A site's recorded status change, a site removed, a site added and a contact change
    are recorded, each with what it was and what it is."""
    store.save_trial(trial(CLB, HEGP, IPC), None, now=T1)
    clb_closed = site("Centre Leon Berard", "LYON", status=Status.ACTIVE_NOT_RECRUITING,
                      contacts=CLB.contacts)
    hegp_new_pi = site("Hôpital Européen Georges Pompidou", "Paris",
                       contacts=(Contact("Bruno Landi", role="PRINCIPAL_INVESTIGATOR"),))
    lille = site("Centre Oscar Lambret", "Lille")
    result = store.save_trial(trial(clb_closed, hegp_new_pi, lille, last_update="2024-03-12"),
                              None, now=T2)
    assert result.outcome == "updated"
    lines = [c.describe() for c in result.changes]
    assert lines == [
        "2024-03-15 NCT02260505: Centre Leon Berard: Recruiting → Active, not recruiting",
        "2024-03-15 NCT02260505: site added: Centre Oscar Lambret (Recruiting)",
        "2024-03-15 NCT02260505: site removed: Institut Paoli-Calmettes (was no status)",
        "2024-03-15 NCT02260505: Hôpital Européen Georges Pompidou: contacts none → "
        "Bruno Landi (PRINCIPAL_INVESTIGATOR)",
    ]
    assert store.changes("NCT02260505") == [store.changes()[0], *result.changes]
    assert {c.source for c in result.changes} == {"registry"}


def test_a_trial_status_change_is_one_entry(store: Store) -> None:
    """When the trial closes, one entry says so: the sites whose status is the trial's, or
    whose own RECRUITING is no longer believed, get no entry of their own (nothing was
    recorded about them)."""
    many = [site(f"Centre {i}", "Lyon", status=None) for i in range(30)]
    store.save_trial(trial(CLB, *many), None, now=T1)
    result = store.save_trial(trial(CLB, *many, status=Status.COMPLETED,
                                    last_update="2024-03-01"), None, now=T2)
    assert [(c.kind, c.old, c.new) for c in result.changes] == [
        (ChangeKind.TRIAL_STATUS_CHANGED, "RECRUITING", "COMPLETED")]
    assert result.changes[0].describe() == (
        "2024-03-15 NCT02260505: trial status Recruiting → Completed")
    standings = {r[0] for r in store._db.execute("SELECT standing FROM sites")}
    assert standings == {"not_recruiting"}  # what the rule derives is still kept, per site


def test_contact_changes_say_old_and_new_phone_and_email(store: Store) -> None:
    """A new phone number or e-mail is reported with the old and the new one; the same
    number written nationally or internationally is no change."""
    desk = Contact("QUESNEL", role="CONTACT", phone="03 22 45 59 14", email="q@chu-amiens.fr")
    store.save_trial(trial(site("CHU Amiens", "Amiens", contacts=(desk,))), None, now=T1)
    same = Contact("Quesnel", role="CONTACT", phone="+33 3 22 45 59 14",
                   email="Q@CHU-Amiens.fr")
    unchanged = store.save_trial(trial(site("CHU Amiens", "Amiens", contacts=(same,)),
                                       last_update="2024-02-01"), None, now=T2)
    assert unchanged.outcome == "updated" and unchanged.changes == ()
    moved = Contact("QUESNEL", role="CONTACT", phone="+33 3 22 45 60 00",
                    email="quesnel@chu-amiens.fr")
    result = store.save_trial(trial(site("CHU Amiens", "Amiens", contacts=(moved,)),
                                    last_update="2024-03-01"), None, now=T3)
    (change,) = result.changes
    assert change.kind is ChangeKind.SITE_CONTACT_CHANGED
    assert change.describe() == (
        "2024-05-20 NCT02260505: CHU Amiens: contacts Quesnel (CONTACT): +33 3 22 45 59 14, "
        "Q@CHU-Amiens.fr → QUESNEL (CONTACT): +33 3 22 45 60 00, quesnel@chu-amiens.fr")


def test_central_contact_change_is_a_trial_entry(store: Store) -> None:
    """The study desk (central contact) changing its e-mail is one trial-level entry."""
    store.save_trial(trial(CLB), None, now=T1)
    desk = Contact("Study desk", role="CONTACT", email="trials@example.org")
    result = store.save_trial(trial(CLB, last_update="2024-02-01").replace(
        central_contacts=(desk,)), None, now=T2)
    assert [(c.kind, c.old, c.new) for c in result.changes] == [
        (ChangeKind.TRIAL_CONTACT_CHANGED, "Study desk (CONTACT): desk@example.org",
         "Study desk (CONTACT): trials@example.org")]


def test_history_compares_each_source_with_itself(store: Store) -> None:
    """A listing scrape saved between two registry copies is never diffed against them:
    registry, listing, registry again, listing again record nothing; a real registry
    change is then recorded against the previous registry copy."""
    registry = trial(CLB, HEGP)
    listing = Trial(
        nct_id="NCT02260505", title="Imatinib maintenance or interruption in GIST",
        source=Source("listing", "CenterWatch-style listing page", "2019-01"),
        status_text="Open", sites=(site("Centre Leon Berard", "Lyon", status=None),),
    )
    store.save_trial(registry, None, now=T1)
    flips = [store.save_trial(listing, None, now=T2), store.save_trial(registry, None, now=T2),
             store.save_trial(listing, None, now=T3), store.save_trial(registry, None, now=T3)]
    assert [(r.outcome, r.changes) for r in flips] == [("updated", ())] * 4
    closed = store.save_trial(trial(CLB, status=Status.COMPLETED, last_update="2024-06-01"),
                              None, now=T3)
    assert [(c.kind, c.source) for c in closed.changes] == [
        (ChangeKind.TRIAL_STATUS_CHANGED, "registry"), (ChangeKind.SITE_REMOVED, "registry")]


def test_each_source_keeps_its_basis_through_the_others_saves(store: Store) -> None:
    """A listing's basis survives a registry save and a rewrite in place of the record: the
    next copy of the listing is compared with its own last copy (a site it dropped, its
    status words changed), not with nothing."""
    page = Trial(
        nct_id="NCT02260505", title="Imatinib maintenance or interruption in GIST",
        source=Source("listing", "CenterWatch-style listing page", "2019-01"),
        status_text="Open", sites=(site("Centre Leon Berard", "Lyon", status=None),
                                   site("Institut Bergonie", "Bordeaux", status=None)),
    )
    store.save_trial(page, None, now=T1)
    store.save_trial(trial(CLB, HEGP), None, now=T2)
    assert store.rewrite_trials([trial(CLB, HEGP)]) == 1
    closed = page.replace(status_text="Closed", sites=page.sites[:1])
    result = store.save_trial(closed, None, now=T3)
    assert [c.describe() for c in result.changes] == [
        "2024-05-20 NCT02260505 (listing page): trial status Open → Closed",
        "2024-05-20 NCT02260505 (listing page): site removed: Institut Bergonie (was no "
        "status)",
    ]


def test_contact_title_and_order_are_not_changes(store: Store) -> None:
    """Reordering contacts or changing an investigator's title or case is not a change."""
    a = Contact("Jean-Yves BLAY", role="PRINCIPAL_INVESTIGATOR", title="Pr")
    b = Contact("Desk", role="CONTACT", phone="+33 4 78 78 28 28")
    store.save_trial(trial(site("Centre Léon Bérard", "Lyon", contacts=(a, b))), None, now=T1)
    a2 = Contact("Jean-Yves Blay", role="PRINCIPAL_INVESTIGATOR", title="Dr")
    b2 = Contact("desk", role="CONTACT", phone="+33478782828")
    result = store.save_trial(
        trial(site("Centre Léon Bérard", "Lyon", contacts=(b2, a2)), last_update="2024-02-01"),
        None, now=T2,
    )
    assert result.outcome == "updated"
    assert result.changes == ()


def test_repeated_site_keys_are_paired_in_order(store: Store) -> None:
    """Sites without facility names in one city share a key; removing one is one removal."""
    blank = site("", "Paris")
    store.save_trial(trial(blank, blank, blank), None, now=T1)
    result = store.save_trial(trial(blank, blank, last_update="2024-02-01"), None, now=T2)
    assert [c.kind for c in result.changes] == [ChangeKind.SITE_REMOVED]
    assert result.changes[0].describe().endswith("site removed: |paris|france (was Recruiting)")


def test_site_kept_only_from_the_listing_counts_as_removed(store: Store) -> None:
    """A registry site that only the listing still names has left the trial."""
    store.save_trial(trial(CLB, HEGP), None, now=T1)
    stale = site("Hôpital Européen Georges Pompidou", "Paris", status=Status.UNKNOWN,
                 listing_match=False, listing_only=True)
    result = store.save_trial(trial(CLB, stale, last_update="2024-02-01"), None, now=T2)
    assert [(c.kind, c.facility) for c in result.changes] == [
        (ChangeKind.SITE_REMOVED, "Hôpital Européen Georges Pompidou")
    ]
    third = store.save_trial(trial(CLB, stale, last_update="2024-03-01"), None, now=T3)
    assert third.changes == ()  # still listing-only: nothing new to report


def test_changes_since(store: Store) -> None:
    """--since keeps the changes on or after a day, given as a date or text."""
    store.save_trial(trial(CLB), None, now=T1)
    store.save_trial(trial(CLB, HEGP, last_update="2024-03-01"), None, now=T2)
    store.save_trial(trial(HEGP, last_update="2024-05-01"), None, now=T3)
    assert [c.at for c in store.changes(since="2024-03-15")] == [T2, T3]
    assert [c.at for c in store.changes(since=date(2024, 4, 1))] == [T3]
    assert [c.kind for c in store.changes("NCT02260505", since="2024-05-20T08:00:00+00:00")] == [
        ChangeKind.SITE_REMOVED
    ]
    assert store.changes("NCT99999999") == []
    with pytest.raises(BadInput, match="'last week' is not a date"):
        store.changes(since="last week")


def test_failed_save_rolls_back(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error half-way through a save leaves the previous record and history untouched."""
    first = trial(CLB, HEGP)
    store.save_trial(first, "v1", now=T1)

    def broken(self: Store, changes: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "_record", broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        store.save_trial(trial(HEGP, last_update="2024-02-01"), "v2", now=T2)
    monkeypatch.undo()
    assert store.get_trial("NCT02260505") == first
    assert store.get_raw("NCT02260505") == "v1"
    assert len(store.changes()) == 1
    assert store._db.execute("SELECT count(*) FROM sites").fetchone()[0] == 2
    assert not store._db.in_transaction


def test_syncs_are_recorded(store: Store) -> None:
    """A sync has a start, its arguments, an end, an outcome and its counts; changes point at
    it; a run that never finished is marked aborted when asked."""
    sync_id = store.start_sync(now=T1, arguments={"nct_ids": ["NCT02260505"]}, pid=42)
    store.save_trial(trial(CLB), None, sync_id=sync_id, now=T1)
    store.finish_sync(sync_id, "ok", now=T2, counts={"asked": 1, "new": 1})
    assert store.last_sync() == (sync_id, T1, T2, "ok")
    assert store.changes()[0].sync_id == sync_id
    dead = store.start_sync(now=T3)
    success = store.last_success()
    assert success is not None and success.id == sync_id
    assert store.abandon_unfinished(now=T3) == 1
    assert store.abandon_unfinished(now=T3) == 0
    latest, first = store.runs()
    assert (latest.id, latest.outcome, latest.note) == (
        dead, "aborted", "the process ended without finishing the run")
    assert (first.arguments, first.counts, first.pid) == (
        {"nct_ids": ["NCT02260505"]}, {"asked": 1, "new": 1}, 42)


def test_geocode_cache(store: Store) -> None:
    """Positions found online are kept with their fetch time; a miss is kept too."""
    assert store.geocode_get("facility:centre leon berard|lyon|france") is None
    store.geocode_put("facility:centre leon berard|lyon|france", 45.7431, 4.8811, "facility",
                      "Nominatim", raw='{"osm_id": 1}', now="2024-01-01T00:00:00+00:00")
    cached = store.geocode_get("facility:centre leon berard|lyon|france")
    assert cached is not None
    assert (cached.latitude, cached.longitude, cached.precision, cached.raw) == (
        45.7431, 4.8811, "facility", '{"osm_id": 1}')
    assert cached.age_days(datetime(2024, 4, 1, tzinfo=UTC)) == 91
    store.geocode_put("facility:nowhere|lyon|france", None, None, None, "Nominatim")
    miss = store.geocode_get("facility:nowhere|lyon|france")
    assert miss is not None and miss.latitude is None
    assert miss.age_days() < 1


def test_iter_sites_filters_by_status_and_box(store: Store) -> None:
    """Sites of every trial can be listed by effective status and inside a box."""
    paris = site("Hôpital Saint-Antoine", "Paris", status=None, latitude=48.85341,
                 longitude=2.3488)
    store.save_trial(trial(CLB, paris, IPC), None, now=T1)
    everything = list(store.iter_sites())
    assert [(n, s.facility, s.status, s.site_status) for n, s in everything] == [
        ("NCT02260505", "Centre Léon Bérard", Status.RECRUITING, Status.RECRUITING),
        ("NCT02260505", "Hôpital Saint-Antoine", Status.RECRUITING, None),
        ("NCT02260505", "Institut Paoli-Calmettes", Status.RECRUITING, None),
    ]
    around_paris = list(store.iter_sites(within=(48.0, 2.0, 49.5, 3.0)))
    assert [s.facility for _, s in around_paris] == ["Hôpital Saint-Antoine"]
    assert list(store.iter_sites(statuses=[Status.COMPLETED])) == []


def test_stored_record_is_to_jsonable() -> None:
    """The stored record is to_jsonable(trial); it reads back as the same trial, and its hash
    ignores the fetch time."""
    import json as _json

    from trialfinder.models import to_jsonable
    from trialfinder.registry import parse_study
    from trialfinder.store import _serialise, _trial_from_record, prepare_trial

    fixtures = Path(__file__).parent / "fixtures" / "ctgov"
    for name in ("study_NCT04267848_nsclc_1148sites_sitestatus_contacts.json",
                 "built_NCT02260505_v1.json"):
        parsed = parse_study(_json.loads((fixtures / name).read_text(encoding="utf-8")),
                             retrieved=T1).trial
        record_json, content_hash = _serialise(parsed)
        assert _json.loads(record_json) == to_jsonable(parsed)
        assert _trial_from_record(_json.loads(record_json)) == parsed
        later = _serialise(parsed.replace(source=parsed.source.__class__(
            **{**to_jsonable(parsed.source), "retrieved": T2})))
        assert later[1] == content_hash and later[0] != record_json
        assert [row[2] for row in prepare_trial(parsed).site_rows] == [
            s.key() for s in parsed.sites]


def test_schema2_records_with_site_arrays_still_read() -> None:
    """A record written by schema 2 (sites as arrays in the old Site field order) reads as
    the same trial."""
    from trialfinder.models import Contact, Precision, Site, Source, Trial
    from trialfinder.store import _trial_from_record

    site = Site("Centre Léon Bérard", "Lyon", "France", Status.RECRUITING, None, "69008",
                45.7, 4.8, Precision.CITY, "geoPoint", (Contact("Y", "CONTACT"),))
    trial = Trial("NCT00000001", "T", Source("registry", "API", "2024-01"), sites=(site,))
    record = {
        "nct_id": "NCT00000001", "title": "T", "status": None,
        "source": {"kind": "registry", "description": "API", "as_of": "2024-01"},
        "site_rows": [["Centre Léon Bérard", "Lyon", "France", "RECRUITING", None, "69008",
                       45.7, 4.8, "city centre", "geoPoint",
                       [["Y", "CONTACT", None, None, None, None]], None, [], None, False,
                       False]],
    }
    assert _trial_from_record(record) == trial


def test_every_site_and_contact_field_survives_the_store(store: Store) -> None:
    """Odd text (quotes, backslashes, line separators), an int coordinate, every optional
    field set: what is saved is what is read back."""
    import dataclasses

    from trialfinder.models import Contact, Precision, Site

    full = Site(
        facility='Centre "Léon" Bérard\\\n', city="Lyon", country="France",
        status=Status.RECRUITING, state="Rhône", zip="69008", latitude=45.74, longitude=1e-05,
        precision=Precision.FACILITY, coordinate_source="gazetteer",
        contacts=(Contact("Pr Y. \u2028", role="CONTACT", title="Pr", phone="+33 4 78",
                          email="y@x.fr", affiliation="CLB"),),
        facility_raw="Centre Leon Berard", unrepaired=("Berard",), listing_match=True,
        listing_only=False, shared_position=True,
    )
    bare = Site("", "Nowhere", "")
    odd = dataclasses.replace(full, latitude=45, status=None, listing_match=None)
    stored = trial(full, bare, odd)
    store.save_trial(stored, None, now=T1)
    assert store.get_trial("NCT02260505") == stored


def test_schema_1_record_with_site_objects_still_reads(tmp_path: Path) -> None:
    """Records written by schema 1 keep their sites as objects: they read as before."""
    import json as _json

    from trialfinder.models import to_jsonable

    path = tmp_path / "store.sqlite"
    stored = trial(CLB, HEGP)
    with Store(path) as db:
        db.save_trial(stored, None, now=T1)
    raw = sqlite3.connect(path)
    raw.execute("UPDATE trials SET record_json = ?", (_json.dumps(to_jsonable(stored)),))
    raw.commit()
    raw.close()
    _as_version_1(path)
    with Store(path) as db:
        assert db.get_trial("NCT02260505") == stored


def other(nct: str, *sites: Site, status: Status = Status.RECRUITING) -> Trial:
    return trial(*sites, status=status).replace(nct_id=nct)


def test_a_page_is_saved_whole_or_not_at_all(store: Store) -> None:
    """save_page writes every trial of a page in one transaction: a row that cannot be
    written leaves none of the page stored (and the previous page's trials in place)."""
    store.save_page([prepare_trial(other("NCT00000001", CLB))], query=None)
    good = prepare_trial(other("NCT00000002", CLB))
    bad = prepare_trial(other("NCT00000003", HEGP))
    broken_row = list(bad.site_rows[0])
    broken_row[3] = None  # facility NOT NULL
    bad = bad._replace(site_rows=[tuple(broken_row)])
    with pytest.raises(StoreError, match=r"^Cannot write to the store at :memory:: NOT NULL"):
        store.save_page([good, bad], query=None)
    assert store.trial_ids() == ["NCT00000001"]
    assert not store._db.in_transaction


def _search_query(store: Store, key: str, *ids: str, statuses: tuple[str, ...] = ()) -> None:
    state = QueryState(key, "search", "gist", None, statuses)
    store.record_queries([(state, T1, True)], sync_id=store.start_sync(now=T1))
    store.save_page([prepare_trial(other(n, CLB)) for n in ids], query=key, members=ids,
                    now=T1)


def test_full_refresh_marks_trials_it_no_longer_returns(store: Store) -> None:
    """A trial a full refresh no longer returns leaves the query; if no other query holds it
    and its stored status does not explain it, it is marked "not seen since", no longer
    recruiting, with one change; returned again later, it says so."""
    _search_query(store, "search:a", "NCT00000001", "NCT00000002", "NCT00000003",
                  statuses=("RECRUITING",))
    _search_query(store, "search:b", "NCT00000003")
    store.save_trial(other("NCT00000002", CLB, status=Status.COMPLETED).replace(
        last_update="2024-02-01"), None, now=T2)  # its absence is explained
    marked = store.end_full_refresh("search:a", {"NCT00000004"}, day="2024-03-15",
                                    statuses=("RECRUITING",), now=T2)
    assert marked == ["NCT00000001"]
    assert store.query_members("search:a") == set()
    assert store.query_members("search:b") == {"NCT00000003"}
    lost = store.get_trial("NCT00000001")
    assert lost is not None and lost.not_seen_since == "2024-03-15"
    standing = store._db.execute("SELECT DISTINCT standing FROM sites WHERE trial = ?",
                                 ("NCT00000001",)).fetchall()
    assert standing == [("unknown",)]
    (change,) = store.changes("NCT00000001", since="2024-03-15")
    assert change.describe() == (
        "2024-03-15 NCT00000001: no longer returned by the registry (not seen since "
        "2024-03-15); no longer called recruiting")
    back = store.save_trial(other("NCT00000001", CLB), None, now=T3)
    assert [c.kind for c in back.changes] == [ChangeKind.TRIAL_SEEN_AGAIN]
    assert store.end_full_refresh("search:a", set(), day="2024-05-20") == []


def test_a_trial_named_by_id_is_never_marked_not_seen(store: Store) -> None:
    """A trial that a sync fetches by id is asked for directly: a search that stops
    returning it does not mark it."""
    _search_query(store, "search:a", "NCT00000001")
    store.record_queries([(QueryState("trial:NCT00000001", "trial", nct_id="NCT00000001"),
                           T1, False)], sync_id=1)
    assert store.end_full_refresh("search:a", set(), day="2024-03-15") == []


def test_query_memory(store: Store) -> None:
    """The store remembers each query's last run, last success and last full refresh."""
    state = QueryState("search:x", "search", "lung cancer", "France", ("RECRUITING",))
    assert store.query_state("search:x") is None
    store.record_queries([(state, None, False)], sync_id=1)
    assert store.query_state("search:x") == QueryState(
        "search:x", "search", "lung cancer", "France", ("RECRUITING",), last_run_id=1)
    store.record_queries([(state, T1, True)], sync_id=2)
    store.record_queries([(state, T2, False)], sync_id=3)
    remembered = store.query_state("search:x")
    assert remembered is not None
    assert (remembered.last_success, remembered.last_full, remembered.last_success_id) == (
        T2, T1, 3)
    assert [q.key for q in store.queries()] == ["search:x"]


def test_rewriting_a_record_keeps_its_raw_copy_and_history(store: Store) -> None:
    """Positions decided again are written in place: raw JSON, fetch time, basis and
    history stay; the next save of the same content is a change of nothing."""
    store.save_trial(trial(CLB, HEGP), '{"raw": 1}', now=T1)
    moved = trial(CLB, HEGP).replace(placed_by="rules 9", sites=(
        CLB, site("Hôpital Européen Georges Pompidou", "Paris", latitude=48.84,
                  longitude=2.27, precision=Precision.FACILITY)))
    assert store.rewrite_trials([moved, other("NCT09999999", CLB)]) == 1
    assert store.get_trial("NCT02260505") == moved
    assert store.get_raw("NCT02260505") == '{"raw": 1}'
    assert store._db.execute("SELECT fetched_at, placed_by FROM trials").fetchone() == (
        T1, "rules 9")
    assert len(store.changes()) == 1
    again = store.save_trial(trial(CLB, HEGP, last_update="2024-02-01"), None, now=T2)
    assert again.changes == ()


def test_rewrite_without_waiting_leaves_a_busy_store_alone(tmp_path: Path) -> None:
    """A reader placing a record again does not wait for a running writer: nothing written."""
    path = tmp_path / "store.sqlite"
    with Store(path) as db:
        db.save_trial(trial(CLB), None, now=T1)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with Store(path) as db:
            assert db.rewrite_trials([trial(CLB).replace(placed_by="x")], wait=False) == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_store_mode_read_never_writes(tmp_path: Path) -> None:
    """mode="read" opens an existing store read-only and refuses a missing one."""
    path = tmp_path / "store.sqlite"
    with pytest.raises(StoreError, match=r"^No store at "):
        Store(path, mode="read")
    with Store(path) as db:
        db.save_trial(trial(CLB), None, now=T1)
    with Store(path, mode="read") as db:
        assert db.read_only and db.get_trial("NCT02260505") == trial(CLB)
        with pytest.raises(StoreError, match="cannot be written by this user"):
            db.prepare_for_writing()
        with pytest.raises(StoreError, match=r"^Cannot write NCT02260505 to the store"):
            db.save_trial(trial(HEGP), None)


READ_AS_NOBODY = """
import sys
from trialfinder.store import Store
try:
    with Store(sys.argv[1]) as db:
        trial = db.get_trial("NCT02260505")
        print(db.read_only, len(trial.sites) if trial else None, db.counts())
    Store(sys.argv[1], mode="write")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("layout", ["read-only folder", "read-only file", "leftover log"])
def test_a_store_that_cannot_be_written_is_read(layout: str) -> None:
    """A user who cannot write the store (its folder or file read-only, or a write-ahead log
    left by its owner) still reads it, the log's commits included; writing is refused in one
    line. (Run as an unprivileged user: root ignores permissions.)"""
    with unprivileged.shared_folder() as folder:
        path = folder / "store.sqlite"
        owner = Store(path)
        owner.save_trial(trial(CLB, HEGP), None, now=T1)
        if layout == "leftover log":
            owner.save_trial(trial(CLB, HEGP, IPC, last_update="2024-02-01"), None, now=T2)
            assert (folder / "store.sqlite-wal").exists()
        else:
            owner.close()
        if layout == "read-only file":
            folder.chmod(0o777)
            path.chmod(0o444)
        done = unprivileged.run(READ_AS_NOBODY, str(path))
        if layout == "leftover log":
            owner.close()
    assert done.stderr == ""
    sites = 3 if layout == "leftover log" else 2
    assert done.stdout.splitlines() == [
        f"True {sites} (1, {sites})",
        f"StoreError The store at {path} cannot be written by this user (read-only file or "
        "folder)",
    ]


def _damaged_store(path: Path) -> Path:
    """A store of 30 trials whose pages are overwritten every 20 KB past the header."""
    with Store(path) as db:
        many = tuple(site(f"Centre {i}", "Lyon") for i in range(400))
        for n in range(30):
            db.save_trial(other(f"NCT{n:08d}", *many), None, now=T1)
    size = path.stat().st_size
    with path.open("r+b") as raw:
        for offset in range(8192, size, 4096 * 5):
            raw.seek(offset)
            raw.write(b"\xde\xad\xbe\xef" * 256)
    return path


def test_a_damaged_store_fails_every_read_in_one_line(tmp_path: Path) -> None:
    """Pages overwritten in the middle of the file: a read that meets them is one StoreError
    naming the store (exit 1), never an SQLite error escaping; whole scans always meet
    them."""
    path = _damaged_store(tmp_path / "store.sqlite")
    reads = {
        "trial_ids": lambda db: db.trial_ids(), "counts": lambda db: db.counts(),
        "changes": lambda db: db.changes(), "runs": lambda db: db.runs(),
        "iter_trials": lambda db: list(db.iter_trials()),
        "iter_sites": lambda db: list(db.iter_sites()),
        "get_trial": lambda db: db.get_trial("NCT00000007"),
        "read": lambda db: db.read("SELECT count(*), sum(length(facility)) FROM sites"),
    }
    failed = set()
    for name, read in reads.items():
        try:
            with Store(path) as db:
                read(db)
        except StoreError as error:
            assert "\n" not in str(error) and str(path) in str(error)
            failed.add(name)
    assert {"iter_trials", "iter_sites", "read", "counts"} <= failed


@pytest.mark.parametrize("command", [["search", "--near", "Lyon"], ["status"], ["changes"],
                                     ["show", "NCT00000007"], ["sites", "-t", "NCT00000007"],
                                     ["nearest", "Lyon", "-t", "NCT00000007"]])
def test_every_command_on_a_damaged_store_exits_1(tmp_path: Path, command: list[str]) -> None:
    """search, status, changes, show, sites, nearest on a damaged store: one line saying so,
    exit 1 (never 70)."""
    from typer.testing import CliRunner

    from trialfinder.cli import app

    path = _damaged_store(tmp_path / "store.sqlite")
    result = CliRunner().invoke(app, [*command, "--db", str(path)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: The store at {path} is damaged (database disk image is malformed); move it "
        "aside and fill a new one with `trialfinder sync`\n")
