"""The SQLite store: schema, incremental saves, history of changes, geocode cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from trialfinder.errors import BadInput, StoreError
from trialfinder.models import Contact, Precision, Site, Source, Status, Trial
from trialfinder.store import SCHEMA_VERSION, Change, ChangeKind, Store

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
    assert {"trials", "sites", "contacts", "changes", "syncs", "geocode_cache"} <= tables
    assert store.schema_version == SCHEMA_VERSION
    indexes = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert indexes.isdisjoint({"sites_lat_lon", "sites_status"})  # dropped in schema 2


def _as_version_1(path: Path) -> None:
    """Turn a store into what trialfinder wrote with schema 1 (two more indexes on sites)."""
    raw = sqlite3.connect(path)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f"DROP TRIGGER {name}")  # the search index's: they read the columns below
    raw.execute("DROP INDEX search_unplaced")  # the search index's too (schema 1 had none)
    for table, column in (("trials", "search_text"), ("trials", "placed_by"),
                          ("sites", "standing"), ("sites", "recruiting_until"),
                          ("sites", "matched"), ("sites", "unplaced_reason")):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # added by schema 3
    raw.execute("CREATE INDEX sites_lat_lon ON sites(latitude, longitude)")
    raw.execute("CREATE INDEX sites_status ON sites(status)")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()


def test_schema_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    """Opening a schema-1 store drops its unused indexes, adds the derived columns of schema 3
    (recomputed from the records) and keeps every record."""
    path = tmp_path / "store.sqlite"
    with Store(path) as db:
        db.save_trial(trial(CLB, HEGP), "v1", now=T1)
    _as_version_1(path)
    with Store(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 3
        names = {r[0] for r in db._db.execute("SELECT name FROM sqlite_master")}
        assert names.isdisjoint({"sites_lat_lon", "sites_status"})
        assert db.get_trial("NCT02260505") == trial(CLB, HEGP)
        assert db.get_raw("NCT02260505") == "v1"
        standings = db._db.execute("SELECT DISTINCT standing FROM sites").fetchall()
        assert standings == [("recruiting",)]


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
    """A site status change, a site removed, a site added and a contact change are recorded."""
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
        "2024-03-15 NCT02260505: site removed: Institut Paoli-Calmettes (was Recruiting)",
        "2024-03-15 NCT02260505: Hôpital Européen Georges Pompidou: contacts none → "
        "Bruno Landi (PRINCIPAL_INVESTIGATOR)",
    ]
    assert store.changes("NCT02260505") == [store.changes()[0], *result.changes]


def test_effective_status_drives_site_changes(store: Store) -> None:
    """A site without its own status changes when the trial's status does, and so does a site
    still marked recruiting once the trial closes (its stale RECRUITING is not believed)."""
    store.save_trial(trial(CLB, IPC), None, now=T1)
    result = store.save_trial(trial(CLB, IPC, status=Status.COMPLETED, last_update="2024-03-01"),
                              None, now=T2)
    kinds = [(c.kind, c.facility, c.old, c.new) for c in result.changes]
    assert kinds == [
        (ChangeKind.TRIAL_STATUS_CHANGED, None, "RECRUITING", "COMPLETED"),
        (ChangeKind.SITE_STATUS_CHANGED, "Centre Léon Bérard", "RECRUITING", "COMPLETED"),
        (ChangeKind.SITE_STATUS_CHANGED, "Institut Paoli-Calmettes", "RECRUITING", "COMPLETED"),
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

    def broken(self: Store, nct: str, sites: list) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "_insert_sites", broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        store.save_trial(trial(HEGP, last_update="2024-02-01"), "v2", now=T2)
    monkeypatch.undo()
    assert store.get_trial("NCT02260505") == first
    assert store.get_raw("NCT02260505") == "v1"
    assert len(store.changes()) == 1
    assert store._db.execute("SELECT count(*) FROM sites").fetchone()[0] == 2
    assert not store._db.in_transaction


def test_syncs_are_recorded(store: Store) -> None:
    """A sync has a start, an end and an outcome; changes point at it."""
    sync_id = store.start_sync(now=T1)
    store.save_trial(trial(CLB), None, sync_id=sync_id, now=T1)
    store.finish_sync(sync_id, "ok", now=T2)
    assert store.last_sync() == (sync_id, T1, T2, "ok")
    assert store.changes()[0].sync_id == sync_id


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


def test_contact_phone_digits_in_any_script() -> None:
    from trialfinder.store import _digits

    assert _digits("+33 (0)4 78-78") == "330478" + "78"
    assert _digits("٠١٢ 34²") == "٠١٢34²"
    assert _digits(None) == ""
