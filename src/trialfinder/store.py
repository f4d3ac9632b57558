"""The local SQLite store: trial records, their sites, a history of changes, a geocode cache.

One `Store` owns one database file. Every write of a trial is one transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``), so a sync that dies half-way (network gone, process
killed) leaves the previous good record in place. The schema is versioned with
``PRAGMA user_version`` and marked as ours with ``PRAGMA application_id``.

The ``record_json`` column is the truth (``models.to_jsonable(trial)``, its sites as compact
arrays: see ``_serialise``); the ``sites`` and ``contacts`` tables are derived from it for
querying across trials and for diffing.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Union

from trialfinder.errors import BadInput, StoreError
from trialfinder.models import (
    Contact,
    Status,
    Trial,
    to_jsonable,
    trial_from_jsonable,
)
from trialfinder.text import fold

SCHEMA_VERSION = 3
# 2: no (latitude, longitude) and (status) indexes on `sites`. Nothing read through them (the
# search has its own R*Tree) and keeping them cost a third of the write time of a sync.
# 3: what the rules derive, kept beside the record for queries across trials: each site's
# standing (recruitment.py) and the day a recruiting-type status stops counting as verified,
# how its position was decided, the trial's searchable text and placing version. Derived
# rows are recomputed from the records on upgrade (`_rederive`).
_UPGRADES: dict[int, tuple[str, ...]] = {
    1: ("DROP INDEX IF EXISTS sites_lat_lon", "DROP INDEX IF EXISTS sites_status"),
    2: (
        "ALTER TABLE trials ADD COLUMN search_text TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE trials ADD COLUMN placed_by TEXT",
        "ALTER TABLE sites ADD COLUMN standing TEXT NOT NULL DEFAULT 'not_stated'",
        "ALTER TABLE sites ADD COLUMN recruiting_until TEXT",
        "ALTER TABLE sites ADD COLUMN matched TEXT",
        "ALTER TABLE sites ADD COLUMN unplaced_reason TEXT",
    ),
}
_REDERIVE_FROM = 3
"""Upgrading to this version (or past it) recomputes every trial's derived rows."""
APPLICATION_ID = 0x54464E44  # "TFND": tells our files from any other SQLite database
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE trials (
    nct_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    overall_status TEXT,
    last_update TEXT,
    as_of TEXT,
    source_kind TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    record_json TEXT NOT NULL,
    raw_json TEXT,
    search_text TEXT NOT NULL DEFAULT '',
    placed_by TEXT
);
CREATE TABLE sites (
    trial TEXT NOT NULL REFERENCES trials(nct_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    site_key TEXT NOT NULL,
    facility TEXT NOT NULL,
    city TEXT NOT NULL,
    state TEXT,
    zip TEXT,
    country TEXT NOT NULL,
    status TEXT NOT NULL,
    site_status TEXT,
    latitude REAL,
    longitude REAL,
    precision TEXT NOT NULL,
    coordinate_source TEXT,
    listing_only INTEGER NOT NULL DEFAULT 0,
    contacts_hash TEXT NOT NULL,
    standing TEXT NOT NULL DEFAULT 'not_stated',
    recruiting_until TEXT,
    matched TEXT,
    unplaced_reason TEXT,
    PRIMARY KEY (trial, position)
);
CREATE TABLE contacts (
    trial TEXT NOT NULL REFERENCES trials(nct_id) ON DELETE CASCADE,
    site_position INTEGER,
    scope TEXT NOT NULL CHECK (scope IN ('site', 'central', 'official')),
    name TEXT NOT NULL,
    role TEXT,
    title TEXT,
    phone TEXT,
    email TEXT,
    FOREIGN KEY (trial, site_position) REFERENCES sites(trial, position) ON DELETE CASCADE
);
CREATE INDEX contacts_site ON contacts(trial, site_position);
CREATE TABLE syncs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    outcome TEXT
);
CREATE TABLE changes (
    id INTEGER PRIMARY KEY,
    sync_id INTEGER REFERENCES syncs(id),
    trial TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('trial_added', 'trial_status_changed', 'site_added',
        'site_removed', 'site_status_changed', 'site_contact_changed')),
    site_key TEXT,
    facility TEXT,
    old TEXT,
    new TEXT
);
CREATE INDEX changes_trial_at ON changes(trial, at);
CREATE INDEX changes_at ON changes(at);
CREATE TABLE geocode_cache (
    key TEXT PRIMARY KEY,
    latitude REAL,
    longitude REAL,
    precision TEXT,
    source TEXT,
    fetched_at TEXT NOT NULL,
    raw TEXT
);
"""
# The columns of `sites`: `status` is the registry status the site's standing rests on (its
# own, else the trial's; recruitment.py), `site_status` the site's own, NULL if none.
# `standing` is recruitment.py's answer on the day of the save; `recruiting_until` the last
# day a recruiting-type status still counts as verified (recruitment.verification_expires):
# a site is recruiting on day D when standing = 'recruiting' and (recruiting_until IS NULL or
# recruiting_until >= D). `matched` lists the address fields its position agrees with
# (comma-separated). `contacts_hash` fingerprints the site's contacts so a re-sync can tell
# a contact change without reading the contacts back.


class ChangeKind(StrEnum):
    TRIAL_ADDED = "trial_added"
    TRIAL_STATUS_CHANGED = "trial_status_changed"
    SITE_ADDED = "site_added"
    SITE_REMOVED = "site_removed"
    SITE_STATUS_CHANGED = "site_status_changed"
    SITE_CONTACT_CHANGED = "site_contact_changed"


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded difference between two successive records of a trial."""

    at: str
    """ISO timestamp of the save that saw the change."""
    nct_id: str
    kind: ChangeKind
    site_key: str | None = None
    facility: str | None = None
    old: str | None = None
    """Before: a status value, or the contacts as "Name (ROLE); …"; None for an addition."""
    new: str | None = None
    sync_id: int | None = None

    def describe(self) -> str:
        """One line for people: '2024-03-15 NCT02260505: Centre Léon Bérard: Recruiting → …'."""
        day = self.at[:10]
        where = self.facility or self.site_key or "?"
        prefix = f"{day} {self.nct_id}"
        if self.kind is ChangeKind.TRIAL_ADDED:
            return f"{prefix}: trial added ({_label(self.new)})"
        if self.kind is ChangeKind.TRIAL_STATUS_CHANGED:
            return f"{prefix}: trial status {_label(self.old)} → {_label(self.new)}"
        if self.kind is ChangeKind.SITE_ADDED:
            return f"{prefix}: site added: {where} ({_label(self.new)})"
        if self.kind is ChangeKind.SITE_REMOVED:
            return f"{prefix}: site removed: {where} (was {_label(self.old)})"
        if self.kind is ChangeKind.SITE_STATUS_CHANGED:
            return f"{prefix}: {where}: {_label(self.old)} → {_label(self.new)}"
        return f"{prefix}: {where}: contacts {self.old or 'none'} → {self.new or 'none'}"

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "nct_id": self.nct_id,
            "kind": self.kind.value,
            "site_key": self.site_key,
            "facility": self.facility,
            "old": self.old,
            "new": self.new,
            "sync_id": self.sync_id,
            "description": self.describe(),
        }


def _label(status: str | None) -> str:
    from trialfinder.recruitment import status_label

    if not status:
        return "no status"
    try:
        return status_label(Status(status))
    except ValueError:
        return status


@dataclass(frozen=True, slots=True)
class SaveResult:
    outcome: Literal["new", "updated", "unchanged"]
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class CachedPosition:
    """A geocoder's answer kept in the store (latitude None: the place was not found)."""

    key: str
    latitude: float | None
    longitude: float | None
    precision: str | None
    source: str | None
    fetched_at: str
    raw: str | None = None

    def age_days(self, now: datetime | None = None) -> float:
        now = now or datetime.now(UTC)
        fetched = datetime.fromisoformat(self.fetched_at)
        if fetched.tzinfo is None:
            fetched = fetched.replace(tzinfo=UTC)
        return (now - fetched).total_seconds() / 86400


@dataclass(frozen=True, slots=True)
class StoredSite:
    """A row of the `sites` table, for searches across trials."""

    nct_id: str
    position: int
    site_key: str
    facility: str
    city: str
    state: str | None
    zip: str | None
    country: str
    status: Status
    """Effective status: the site's own, else the trial's."""
    site_status: Status | None
    latitude: float | None
    longitude: float | None
    precision: str
    coordinate_source: str | None
    listing_only: bool


StoreLike = Union["Store", str, Path, None]
"""What library calls accept for the store: an open `Store`, a path, or None (no store)."""


@contextmanager
def using_store(db: StoreLike, *, create: bool = False) -> Iterator[Store | None]:
    """The store ``db`` designates, open for the block: an open `Store` is used as is (and
    left open), a path is opened and closed; None, or a path to no file (unless ``create``),
    gives None: reading never creates a store."""
    if isinstance(db, Store):
        yield db
        return
    if db is None or (not create and str(db) != ":memory:"
                      and not Path(db).expanduser().exists()):
        yield None
        return
    with Store(db) as store:
        yield store


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """One trialfinder SQLite database. Use as a context manager, or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._label = self.path
        memory = self.path == ":memory:"
        try:
            if not memory:
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing implicit.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"Cannot open the store at {self._label}: {exc}") from None
        try:
            self._setup(memory)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(f"The store at {self._label} is locked; try again") from None
            raise StoreError(f"The store at {self._label} is not a trialfinder database") from None
        except StoreError:
            self._db.close()
            raise

    def _setup(self, memory: bool) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        # Reading the header first: a file that is not SQLite fails here, before any write.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        self._check_version(version, app_id)
        if not memory:
            # WAL: readers (nearest) never wait for a sync; synchronous=NORMAL is safe
            # against a killed process (only a power cut may drop the last commits).
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        if version == 0:
            self._create_schema()
        elif version < SCHEMA_VERSION:
            self._upgrade()

    def _check_version(self, version: int, app_id: int) -> None:
        if version == 0 and app_id == 0:
            tables = self._db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if tables:
                raise StoreError(f"The store at {self._label} is not a trialfinder database")
            return
        if app_id != APPLICATION_ID:
            raise StoreError(f"The store at {self._label} is not a trialfinder database")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"The store at {self._label} was written by a newer trialfinder (schema "
                f"{version}; this one knows {SCHEMA_VERSION}): upgrade trialfinder"
            )
        if version < 1:
            raise StoreError(f"The store at {self._label} is not a trialfinder database")

    def _create_schema(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created it between our check and our lock.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _upgrade(self) -> None:
        """Bring an older schema up to date in one transaction. A store that cannot be
        written now (read-only, or a sync holds it) is read as it is: every version this
        code knows is readable, and the next writer upgrades it."""
        db = self._db
        db.execute("PRAGMA busy_timeout = 0")  # a reader must not wait for a running sync
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return
        finally:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            rederive = version < _REDERIVE_FROM
            while version < SCHEMA_VERSION:
                for statement in _UPGRADES[version]:
                    db.execute(statement)
                version += 1
            if rederive:
                self._rederive()
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.OperationalError:
            db.execute("ROLLBACK")  # read-only file: BEGIN succeeds, the first write fails
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _rederive(self) -> None:
        """Recompute every trial's derived rows (sites, contacts, derived trial columns) from
        its record, inside the caller's transaction; records and history are untouched."""
        db = self._db
        for (record_json, raw_json, fetched_at) in db.execute(
            "SELECT record_json, raw_json, fetched_at FROM trials"
        ).fetchall():
            trial = _trial_from_record(json.loads(record_json))
            self._write(prepare_trial(trial, raw_json), fetched_at, True)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for derived indexes kept in the same file (search.py)."""
        return self._db

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- trials ------------------------------------------------------------------------

    def get_trial(self, nct_id: str) -> Trial | None:
        row = self._read(
            "SELECT record_json FROM trials WHERE nct_id = ?", (nct_id,)
        ).fetchone()
        if row is None:
            return None
        try:
            return _trial_from_record(json.loads(row[0]))
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(
                f"The store at {self._label} holds an unreadable record of {nct_id} ({exc}); "
                f"run `trialfinder sync {nct_id}` to replace it"
            ) from None

    def get_raw(self, nct_id: str) -> str | None:
        """The registry's JSON text as received for the stored record, if kept."""
        row = self._read("SELECT raw_json FROM trials WHERE nct_id = ?", (nct_id,)).fetchone()
        return None if row is None else row[0]

    def trial_ids(self) -> list[str]:
        return [r[0] for r in self._read("SELECT nct_id FROM trials ORDER BY nct_id")]

    def save_trial(
        self,
        trial: Trial,
        raw_json: str | None,
        *,
        sync_id: int | None = None,
        now: str | None = None,
    ) -> SaveResult:
        """Store ``trial`` in one transaction and record what changed since the stored copy.

        Nothing is written when the record's last update and content are both unchanged.
        """
        return self.save_prepared(prepare_trial(trial, raw_json), sync_id=sync_id, now=now)

    def save_prepared(
        self, prepared: PreparedTrial, *, sync_id: int | None = None, now: str | None = None
    ) -> SaveResult:
        """``save_trial`` for a trial already turned into rows by `prepare_trial` (which may
        have run in another process: a sync parses while this one writes)."""
        now = now or utc_now()
        nct = prepared.nct_id
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                previous = db.execute(
                    "SELECT last_update, content_hash, overall_status FROM trials "
                    "WHERE nct_id = ?",
                    (nct,),
                ).fetchone()
                if (
                    previous is not None
                    and previous[0] == prepared.last_update
                    and previous[1] == prepared.content_hash
                ):
                    db.execute("ROLLBACK")
                    return SaveResult("unchanged")
                if previous is None:
                    changes = [
                        Change(now, nct, ChangeKind.TRIAL_ADDED, new=prepared.status,
                               sync_id=sync_id)
                    ]
                else:
                    changes = self._diff(prepared, previous[2], now, sync_id)
                self._write(prepared, now, previous is not None)
                db.executemany(
                    "INSERT INTO changes (sync_id, trial, at, kind, site_key, facility, old, new)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (c.sync_id, c.nct_id, c.at, c.kind.value, c.site_key, c.facility,
                         c.old, c.new)
                        for c in changes
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write {nct} to the store at {self._label}: {exc}")\
                from None
        return SaveResult("new" if previous is None else "updated", tuple(changes))

    def _write(self, prepared: PreparedTrial, now: str, replacing: bool) -> None:
        db = self._db
        nct = prepared.nct_id
        if replacing:
            db.execute("DELETE FROM contacts WHERE trial = ?", (nct,))
            db.execute("DELETE FROM sites WHERE trial = ?", (nct,))
        db.execute(
            "INSERT OR REPLACE INTO trials (nct_id, title, overall_status, last_update, as_of, "
            "source_kind, content_hash, fetched_at, record_json, raw_json, search_text, "
            "placed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (nct, prepared.title, prepared.status, prepared.last_update, prepared.as_of,
             prepared.source_kind, prepared.content_hash, now, prepared.record_json,
             prepared.raw_json, prepared.search_text, prepared.placed_by),
        )
        self._insert_sites(nct, prepared.site_rows)
        db.executemany(
            "INSERT INTO contacts (trial, site_position, scope, name, role, title, phone, email) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            prepared.contact_rows,
        )

    def _insert_sites(self, nct: str, rows: list[SiteInsert]) -> None:
        self._db.executemany(
            "INSERT INTO sites (trial, position, site_key, facility, city, state, zip, country, "
            "status, site_status, latitude, longitude, precision, coordinate_source, "
            "listing_only, contacts_hash, standing, recruiting_until, matched, unplaced_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _diff(
        self, prepared: PreparedTrial, old_status: str | None, now: str, sync_id: int | None
    ) -> list[Change]:
        nct = prepared.nct_id
        changes: list[Change] = []
        new_status = prepared.status
        if old_status != new_status:
            changes.append(Change(now, nct, ChangeKind.TRIAL_STATUS_CHANGED, old=old_status,
                                  new=new_status, sync_id=sync_id))
        old_rows = self._db.execute(
            "SELECT position, site_key, facility, status, contacts_hash FROM sites "
            "WHERE trial = ? AND listing_only = 0 ORDER BY position",
            (nct,),
        ).fetchall()
        # A key may repeat (sites without facility names in one city): pair them in order.
        old_by_key: dict[str, list[tuple[Any, ...]]] = {}
        for row in old_rows:
            old_by_key.setdefault(row[1], []).append(row)
        contact_changed: list[tuple[int, SiteInsert]] = []
        for new in prepared.site_rows:
            if new[_LISTING_ONLY]:
                continue  # not in the registry: not a site of the trial any more
            key, facility, status = new[_KEY], new[_FACILITY], new[_STATUS]
            bucket = old_by_key.get(key)
            if not bucket:
                changes.append(Change(now, nct, ChangeKind.SITE_ADDED, key, facility, None,
                                      status, sync_id))
                continue
            old = bucket.pop(0)
            if old[3] != status:
                changes.append(Change(now, nct, ChangeKind.SITE_STATUS_CHANGED, key, facility,
                                      old[3], status, sync_id))
            if old[4] != new[_CONTACTS_HASH]:
                contact_changed.append((old[0], new))
        for bucket in old_by_key.values():
            for old in bucket:
                changes.append(Change(now, nct, ChangeKind.SITE_REMOVED, old[1], old[2],
                                      old[3], None, sync_id))
        for old_position, new in contact_changed:
            before = self._db.execute(
                "SELECT name, role FROM contacts WHERE trial = ? AND site_position = ?",
                (nct, old_position),
            ).fetchall()
            after = [(c[3], c[4]) for c in prepared.contact_rows
                     if c[1] == new[_POSITION] and c[2] == "site"]
            changes.append(Change(
                now, nct, ChangeKind.SITE_CONTACT_CHANGED, new[_KEY], new[_FACILITY],
                _contacts_text(before) or None, _contacts_text(after) or None, sync_id,
            ))
        return changes

    # -- history -----------------------------------------------------------------------

    def changes(self, nct_id: str | None = None, since: date | str | None = None) -> list[Change]:
        """Recorded changes, oldest first; ``since`` is a date or an ISO date/time, inclusive."""
        sql = "SELECT at, trial, kind, site_key, facility, old, new, sync_id FROM changes"
        where: list[str] = []
        params: list[Any] = []
        if nct_id is not None:
            where.append("trial = ?")
            params.append(nct_id)
        if since is not None:
            where.append("at >= ?")
            params.append(parse_since(since))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at, id"
        return [
            Change(r[0], r[1], ChangeKind(r[2]), r[3], r[4], r[5], r[6], r[7])
            for r in self._read(sql, params)
        ]

    def start_sync(self, now: str | None = None) -> int:
        with self._transaction():
            cursor = self._db.execute("INSERT INTO syncs (started) VALUES (?)",
                                      (now or utc_now(),))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_sync(self, sync_id: int, outcome: str, now: str | None = None) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE syncs SET finished = ?, outcome = ? WHERE id = ?",
                (now or utc_now(), outcome, sync_id),
            )

    def last_sync(self) -> tuple[int, str, str | None, str | None] | None:
        """(id, started, finished, outcome) of the latest sync, if any."""
        row = self._read(
            "SELECT id, started, finished, outcome FROM syncs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else tuple(row)  # type: ignore[return-value]

    # -- geocode cache -----------------------------------------------------------------

    def geocode_get(self, key: str) -> CachedPosition | None:
        row = self._read(
            "SELECT key, latitude, longitude, precision, source, fetched_at, raw "
            "FROM geocode_cache WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else CachedPosition(*row)

    def geocode_put(
        self,
        key: str,
        latitude: float | None,
        longitude: float | None,
        precision: str | None,
        source: str | None,
        raw: str | None = None,
        now: str | None = None,
    ) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO geocode_cache "
                "(key, latitude, longitude, precision, source, fetched_at, raw) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, latitude, longitude, precision, source, now or utc_now(), raw),
            )

    # -- sites across trials -----------------------------------------------------------

    def iter_sites(
        self,
        *,
        statuses: Iterable[Status] | None = None,
        within: tuple[float, float, float, float] | None = None,
    ) -> Iterator[tuple[str, StoredSite]]:
        """Every stored site as (nct_id, site); optionally only some effective statuses, or
        only inside a (min_lat, min_lon, max_lat, max_lon) box (uses the position index)."""
        sql = (
            "SELECT trial, position, site_key, facility, city, state, zip, country, status, "
            "site_status, latitude, longitude, precision, coordinate_source, listing_only "
            "FROM sites"
        )
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            wanted = [Status(s).value for s in statuses]
            where.append(f"status IN ({', '.join('?' for _ in wanted)})")
            params += wanted
        if within is not None:
            where.append("latitude BETWEEN ? AND ? AND longitude BETWEEN ? AND ?")
            params += [within[0], within[2], within[1], within[3]]
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY trial, position"
        for r in self._read(sql, params):
            yield r[0], StoredSite(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], Status(r[8]),
                Status(r[9]) if r[9] else None, r[10], r[11], r[12], r[13], bool(r[14]),
            )

    # -- plumbing ----------------------------------------------------------------------

    def _read(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot read the store at {self._label}: {exc}") from None

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._label)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, label: str) -> None:
        self._db = db
        self._label = label

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write to the store at {self._label}: {exc}") from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as error:
                self._db.execute("ROLLBACK")
                raise StoreError(f"Cannot write to the store at {self._label}: {error}") \
                    from None
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"Cannot write to the store at {self._label}: {exc}") from None


SiteInsert = tuple[Any, ...]
"""A row of `sites` as inserted: (trial, position, site_key, facility, city, state, zip,
country, status, site_status, latitude, longitude, precision, coordinate_source,
listing_only, contacts_hash, standing, recruiting_until, matched, unplaced_reason)."""
_POSITION, _KEY, _FACILITY, _STATUS, _LISTING_ONLY, _CONTACTS_HASH = 1, 2, 3, 8, 14, 15


class PreparedTrial(NamedTuple):
    """A trial turned into the rows the store writes, by `prepare_trial`. Plain values only,
    so it crosses a process boundary as cheaply as a tuple of strings can."""

    nct_id: str
    title: str
    status: str | None
    last_update: str | None
    as_of: str | None
    source_kind: str
    content_hash: str
    record_json: str
    raw_json: str | None
    site_rows: list[SiteInsert]
    contact_rows: list[tuple[Any, ...]]
    search_text: str = ""
    placed_by: str | None = None


_fold = lru_cache(maxsize=16384)(fold)


def prepare_trial(
    trial: Trial, raw_json: str | None = None, *, today: date | None = None
) -> PreparedTrial:
    """The rows of ``trial`` for `Store.save_prepared` (pure: no store needed). Standings are
    the status rule's answer on ``today`` (default: the real today)."""
    from trialfinder.recruitment import site_recruitment, trial_recruitment, verification_expires
    from trialfinder.search import searchable_text

    record_json, content_hash = _serialise(trial)
    nct = trial.nct_id
    overall = trial_recruitment(trial, today)
    expires = verification_expires(trial)
    until = expires.isoformat() if expires is not None else None
    site_rows: list[SiteInsert] = []
    contact_rows: list[tuple[Any, ...]] = [
        (nct, None, "central", c.name, c.role, c.title, c.phone, c.email)
        for c in trial.central_contacts
    ]
    contact_rows += [
        (nct, None, "official", c.name, c.role, c.title, c.phone, c.email)
        for c in trial.officials
    ]
    for position, s in enumerate(trial.sites):
        answer = site_recruitment(s, trial, today, overall=overall)
        site_rows.append((
            nct, position,
            f"{_fold(s.facility)}|{_fold(s.city)}|{_fold(s.country)}",  # Site.key()
            s.facility, s.city, s.state, s.zip, s.country,
            _value(answer.status) or _value(Status.UNKNOWN),
            _value(s.status),
            s.latitude, s.longitude, s.precision.value, s.coordinate_source,
            int(s.listing_only), _contacts_hash(s.contacts),
            answer.standing.value, until, ",".join(s.matched) or None, s.unplaced_reason,
        ))
        contact_rows += [
            (nct, position, "site", c.name, c.role, c.title, c.phone, c.email)
            for c in s.contacts
        ]
    return PreparedTrial(
        nct, trial.title, _value(trial.status), trial.last_update, trial.source.as_of,
        trial.source.kind, content_hash, record_json, raw_json, site_rows, contact_rows,
        searchable_text(trial), trial.placed_by,
    )


def _contacts_hash(contacts: tuple[Contact, ...]) -> str:
    """What counts as a contact change: a person added or removed at the site, or their role,
    phone or e-mail changed. Order, titles ("Pr") and case/accents of names do not count."""
    if not contacts:
        return ""
    keys = sorted(
        "\x1f".join((
            _fold(c.name),
            c.role or "",
            _digits(c.phone),
            (c.email or "").strip().lower(),
        ))
        for c in contacts
    )
    return hashlib.blake2b("\x1e".join(keys).encode(), digest_size=12).hexdigest()


_NOT_ASCII_DIGITS = re.compile(r"[^0-9]+")


def _digits(phone: str | None) -> str:
    """The digits of a phone number (any script's, as ``str.isdigit`` sees them)."""
    if not phone:
        return ""
    if phone.isascii():
        return _NOT_ASCII_DIGITS.sub("", phone)
    return "".join(ch for ch in phone if ch.isdigit())


def _contacts_text(contacts: Iterable[tuple[str, str | None]]) -> str:
    return "; ".join(f"{name} ({role})" if role else name for name, role in contacts)


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _serialise(trial: Trial) -> tuple[str, str]:
    """(record_json, content_hash) of a trial: ``models.to_jsonable(trial)`` as compact JSON.

    The hash leaves out the fetch time, so the same content fetched twice is equal.
    """
    record = to_jsonable(trial)
    body = _DUMPS(record)
    source = dict(record["source"])
    source.pop("retrieved", None)
    stable = _DUMPS({**record, "source": source})
    return body, hashlib.sha256(stable.encode()).hexdigest()


# Schema 2 kept each site as an array in the Site field order of that time.
_SCHEMA2_SITE_FIELDS = ("facility", "city", "country", "status", "state", "zip", "latitude",
                        "longitude", "precision", "coordinate_source", "contacts",
                        "facility_raw", "unrepaired", "listing_match", "listing_only",
                        "shared_position")
_SCHEMA2_CONTACT_FIELDS = ("name", "role", "title", "phone", "email", "affiliation")


def _trial_from_record(data: dict[str, Any]) -> Trial:
    """Inverse of ``_serialise``; also reads schema-2 records, whose sites are arrays."""
    rows = data.pop("site_rows", None)
    if rows is not None:
        sites = []
        for row in rows:
            site = dict(zip(_SCHEMA2_SITE_FIELDS, row, strict=True))
            site["contacts"] = [dict(zip(_SCHEMA2_CONTACT_FIELDS, c, strict=True))
                                for c in site["contacts"]]
            sites.append(site)
        data["sites"] = sites
    return trial_from_jsonable(data)


def _value(status: Status | None) -> str | None:
    return None if status is None else status._value_  # ._value_: no enum descriptor call


def parse_since(since: date | str) -> str:
    if isinstance(since, datetime):
        return since.isoformat()
    if isinstance(since, date):
        return since.isoformat()
    text = since.strip()
    try:
        if "T" in text or " " in text:
            return datetime.fromisoformat(text).isoformat()
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadInput(f"'{since}' is not a date (expected YYYY-MM-DD)") from None
