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
import math
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
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Union

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


# =========================================================================================
# The search index: search.py's section of the store (tables, triggers, their creation and
# back-fill, and the reads `trialfinder search` makes). Everything here is derived from the
# `trials` and `sites` rows: dropping it loses nothing, and it is rebuilt when missing.
#
# - `search_trial`: a small, stable integer key per trial (kept across re-saves of the trial,
#   which may change `trials.rowid`), and whether a registry record carries MeSH terms.
# - `search_words`: FTS5 over `trials.search_text` (search.searchable_text), rowid = key.
# - `search_cell`: one row per placed site, keyed by its octree cell: the site's point on the
#   unit sphere, each coordinate cut into 2**SEARCH_CELL_BITS steps, the three step numbers'
#   bits interleaved (Morton order), so every cube of the octree is one range of keys. The
#   row carries what ranking needs: trial, position, exact latitude and longitude, and u,
#   the last day the site counts as recruiting. A B-tree insert per site (a few µs; an
#   R*Tree insert costs about 30 µs), and a search reads cubes as key ranges.
# - `search_site`: the same rows clustered by trial (direct ranking, unplaced trials).
# - `search_unplaced`: a partial index of `sites` over the rows without a position.
# Triggers on `trials` and `sites` keep all of it current through every write of the store.
# =========================================================================================

SEARCH_INDEX_VERSION = "8"
SEARCH_CELL_BITS = 20
"""Octree depth: the finest cube is 2 / 2**20 of the Earth's radius across (about 12 m)."""
SEARCH_FOREVER = 100_000
"""u of a recruiting site whose standing has no end date (a day number in year 2243)."""
SEARCH_NEVER = -1
"""u of a site whose standing is not recruiting: below every day."""
SEARCH_TERMS_MARK = "\x1f"
"""Put by search.searchable_text before a record's MeSH terms (FTS5 reads it as a space)."""
_EPOCH_JULIAN_DAY = 2440587.5  # julianday('1970-01-01')
# Spreading 21 bits to every third of 63 (Morton order in 3D), one step per line.
_SPREAD = ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
           (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def search_day(day: date) -> int:
    """A day as the index's u dimension counts it (days since 1970-01-01)."""
    return day.toordinal() - _EPOCH_ORDINAL


def _search_until_sql(row: str) -> str:
    """u of a row of `sites`: the last day it counts as recruiting (the status rule's answer
    as the store derived it), SEARCH_NEVER when its standing is not recruiting."""
    return (
        f"CASE WHEN {row}.standing = 'recruiting' THEN coalesce(CAST(julianday("
        f"{row}.recruiting_until) - {_EPOCH_JULIAN_DAY} AS INTEGER), {SEARCH_FOREVER}) "
        f"ELSE {SEARCH_NEVER} END"
    )


def _search_cell_sql(row: str) -> str:
    """The octree cell of a row of `sites` (an SQL expression: subqueries compute each step
    once)."""
    lat, lon = f"radians({row}.latitude)", f"radians({row}.longitude)"
    steps = 1 << SEARCH_CELL_BITS
    axes = [f"max(0, min({steps - 1}, CAST((({axis}) + 1) * {steps // 2} AS INTEGER)))"
            for axis in (f"cos({lat}) * cos({lon})", f"cos({lat}) * sin({lon})", f"sin({lat})")]
    sql = f"SELECT {axes[0]} AS x, {axes[1]} AS y, {axes[2]} AS z"
    for shift, mask in _SPREAD:
        spread = ", ".join(f"({a} | ({a} << {shift})) & {mask} AS {a}" for a in "xyz")
        sql = f"SELECT {spread} FROM ({sql})"
    return f"(SELECT x | (y << 1) | (z << 2) FROM ({sql}))"


def _search_site_sql(row: str, key: str) -> str:
    """The values of `search_site` for a row of `sites`."""
    return (f"{key}, {row}.position, {row}.latitude, {row}.longitude, "
            f"{_search_until_sql(row)}, {_search_cell_sql(row)}")


def _search_key_sql(nct: str) -> str:
    return f"(SELECT key FROM search_trial WHERE nct_id = {nct})"


def _search_placed(row: str) -> str:
    return f"{row}.latitude IS NOT NULL AND {row}.longitude IS NOT NULL"


_SEARCH_TERMS_SQL = (
    f"CASE WHEN new.source_kind = 'registry' THEN instr(new.search_text, char("
    f"{ord(SEARCH_TERMS_MARK)})) > 0 END"
)
def _search_drop_site(row: str) -> str:
    """Statements that remove a site (by trial and position) from the index."""
    key = _search_key_sql(f"{row}.trial")
    return (
        "DELETE FROM search_cell WHERE (cell, key, position) = (SELECT cell, key, position "
        f"FROM search_site WHERE key = {key} AND position = {row}.position);"
        f"DELETE FROM search_site WHERE key = {key} AND position = {row}.position;"
    )


_SEARCH_ADD_SITE = (
    "INSERT OR IGNORE INTO search_trial (nct_id) VALUES (new.trial);"
    # A replaced row (INSERT OR REPLACE) fires no delete trigger: clear it first.
    + _search_drop_site("new")
    + f"INSERT INTO search_site SELECT {_search_site_sql('new', 'k.key')} FROM search_trial k "
    f"WHERE k.nct_id = new.trial AND {_search_placed('new')};"
    "INSERT INTO search_cell SELECT p.cell, p.key, p.position, new.trial, p.latitude, "
    "p.longitude, p.u FROM search_site p WHERE p.key = "
    f"{_search_key_sql('new.trial')} AND p.position = new.position;"
)
_SEARCH_REMOVE_SITE = _search_drop_site("old")
_SEARCH_ADD_TRIAL = (
    "INSERT OR IGNORE INTO search_trial (nct_id) VALUES (new.nct_id);"
    f"UPDATE search_trial SET terms = {_SEARCH_TERMS_SQL} WHERE nct_id = new.nct_id;"
    f"DELETE FROM search_words WHERE rowid = {_search_key_sql('new.nct_id')};"
    "INSERT INTO search_words (rowid, text) SELECT key, new.search_text FROM search_trial "
    "WHERE nct_id = new.nct_id;"
)
_SEARCH_SCHEMA = (
    "CREATE TABLE search_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE search_trial (key INTEGER PRIMARY KEY, nct_id TEXT NOT NULL UNIQUE, "
    "terms INTEGER)",
    "CREATE INDEX search_trial_terms ON search_trial(terms) WHERE terms IS NOT NULL",
    # '|' is a token of its own: search_text puts it between fields, so that a phrase never
    # runs from one field into the next (and no query can contain it).
    "CREATE VIRTUAL TABLE search_words USING fts5(text, columnsize=0, "
    "tokenize=\"unicode61 remove_diacritics 2 tokenchars '|'\")",
    "CREATE TABLE search_cell (cell INTEGER NOT NULL, key INTEGER NOT NULL, "
    "position INTEGER NOT NULL, nct_id TEXT NOT NULL, latitude REAL NOT NULL, "
    "longitude REAL NOT NULL, u INTEGER NOT NULL, PRIMARY KEY (cell, key, position)) "
    "WITHOUT ROWID",
    "CREATE TABLE search_site (key INTEGER NOT NULL, position INTEGER NOT NULL, "
    "latitude REAL NOT NULL, longitude REAL NOT NULL, u INTEGER NOT NULL, "
    "cell INTEGER NOT NULL, PRIMARY KEY (key, position)) WITHOUT ROWID",
    # Covering: a search reads the unplaced sites from the index alone.
    "CREATE INDEX search_unplaced ON sites(trial, position, standing, recruiting_until, "
    "country, latitude, longitude) WHERE latitude IS NULL OR longitude IS NULL",
    f"CREATE TRIGGER search_trial_added AFTER INSERT ON trials BEGIN {_SEARCH_ADD_TRIAL} END",
    "CREATE TRIGGER search_trial_changed AFTER UPDATE OF nct_id, search_text, source_kind "
    f"ON trials BEGIN DELETE FROM search_words WHERE rowid = {_search_key_sql('old.nct_id')};"
    f"UPDATE search_trial SET terms = NULL WHERE nct_id = old.nct_id; {_SEARCH_ADD_TRIAL} END",
    "CREATE TRIGGER search_trial_removed AFTER DELETE ON trials BEGIN "
    f"DELETE FROM search_words WHERE rowid = {_search_key_sql('old.nct_id')};"
    "UPDATE search_trial SET terms = NULL WHERE nct_id = old.nct_id; END",
    f"CREATE TRIGGER search_site_added AFTER INSERT ON sites BEGIN {_SEARCH_ADD_SITE} END",
    "CREATE TRIGGER search_site_changed AFTER UPDATE OF trial, position, latitude, longitude, "
    f"standing, recruiting_until ON sites BEGIN {_SEARCH_REMOVE_SITE} {_SEARCH_ADD_SITE} END",
    f"CREATE TRIGGER search_site_removed AFTER DELETE ON sites BEGIN {_SEARCH_REMOVE_SITE} END",
)
_SEARCH_TABLES = ("search_words", "search_cell", "search_site", "search_trial",
                  "search_meta")
_SEARCH_INDEXES = ("search_trial_terms", "search_unplaced")
_SEARCH_TRIGGERS = ("search_trial_added", "search_trial_changed", "search_trial_removed",
                    "search_site_added", "search_site_changed", "search_site_removed")
_SEARCH_OBJECTS = (*_SEARCH_TABLES, *_SEARCH_INDEXES, *_SEARCH_TRIGGERS)
# What earlier versions of the index left in a store (dropped before building this one).
_SEARCH_OLD_TRIGGERS = ("search_sites_ai", "search_sites_ad", "search_sites_au",
                        "search_trials_ai", "search_trials_au", "search_trials_ad")
_SEARCH_OLD_TABLES = ("search_site_rtree", "search_trial_text", "search_trial_dirty",
                      "search_point")


def _search_recruiting(row: str) -> str:
    """The status rule's answer on a day (the parameter), from the columns the store derived
    with recruitment.py: recruiting then, or not."""
    return (f"{row}.standing = 'recruiting' AND ({row}.recruiting_until IS NULL "
            f"OR {row}.recruiting_until >= ?)")


class _SearchIndex:
    """The `Store` methods of the search index (mixed into `Store`)."""

    _db: sqlite3.Connection
    _label: str
    _search_ready: bool = False

    if TYPE_CHECKING:  # Store's own
        def _read(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor: ...
        def get_trial(self, nct_id: str) -> Trial | None: ...

    # -- creation ----------------------------------------------------------------------

    def _search_index_ensure(self) -> bool:
        """Make the index exist and be current; True when searches can use it. Builds it (one
        transaction) when missing or outdated; a store that cannot be written now (read-only,
        or another process writing) is left as it is and searched without it."""
        if self._search_index_current():
            return True
        if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return False  # an older schema this connection could not upgrade
        db = self._db
        db.execute("PRAGMA busy_timeout = 0")  # a reader must not wait for a running sync
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        finally:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            if not self._search_index_current():  # another process may have built it
                self._search_index_build()
            db.execute("COMMIT")
        except sqlite3.OperationalError:
            db.execute("ROLLBACK")  # read-only file: BEGIN succeeds, the first write fails
            return False
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    def _search_index_current(self) -> bool:
        names = {r[0] for r in self._db.execute(
            f"SELECT name FROM sqlite_master WHERE name IN "
            f"({', '.join('?' for _ in _SEARCH_OBJECTS)})", _SEARCH_OBJECTS)}
        if names != set(_SEARCH_OBJECTS):
            return False
        row = self._db.execute("SELECT value FROM search_meta WHERE key = 'version'").fetchone()
        return row is not None and row[0] == SEARCH_INDEX_VERSION

    def _search_index_build(self) -> None:
        """Drop whatever index there is and build this version's, inside the caller's
        transaction: the searchable text of every trial is recomputed from its record (the
        text's form belongs to this version), then the tables are filled from the rows."""
        db = self._db
        self._search_index_drop()
        self._search_refresh_texts()
        for statement in _SEARCH_SCHEMA:
            db.execute(statement)
        db.execute("INSERT INTO search_trial (nct_id) SELECT nct_id FROM trials ORDER BY nct_id")
        db.execute(
            "UPDATE search_trial SET terms = (SELECT CASE WHEN t.source_kind = 'registry' THEN "
            f"instr(t.search_text, char({ord(SEARCH_TERMS_MARK)})) > 0 END FROM trials t "
            "WHERE t.nct_id = search_trial.nct_id)"
        )
        db.execute("INSERT INTO search_words (rowid, text) SELECT k.key, t.search_text "
                   "FROM trials t JOIN search_trial k ON k.nct_id = t.nct_id")
        db.execute(f"INSERT INTO search_site SELECT {_search_site_sql('s', 'k.key')} FROM "
                   f"sites s JOIN search_trial k ON k.nct_id = s.trial WHERE "
                   f"{_search_placed('s')}")
        db.execute("INSERT INTO search_cell SELECT p.cell, p.key, p.position, k.nct_id, "
                   "p.latitude, p.longitude, p.u FROM search_site p JOIN search_trial k ON "
                   "k.key = p.key ORDER BY p.cell, p.key, p.position")
        db.execute("INSERT INTO search_meta VALUES ('version', ?)", (SEARCH_INDEX_VERSION,))

    def _search_index_drop(self) -> None:
        """Remove every object of the search index (this version's and earlier ones'), inside
        the caller's transaction. A schema upgrade that alters `trials` or `sites` calls this
        first (the triggers read their columns); the next open builds the index again."""
        db = self._db
        for name in (*_SEARCH_TRIGGERS, *_SEARCH_OLD_TRIGGERS):
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
        for name in _SEARCH_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {name}")
        for name in (*_SEARCH_TABLES, *_SEARCH_OLD_TABLES):
            db.execute(f"DROP TABLE IF EXISTS {name}")

    def _search_refresh_texts(self, batch: int = 500) -> None:
        """Recompute `trials.search_text` from each record (without its sites: SQLite strips
        them before Python decodes the rest)."""
        from trialfinder.search import searchable_text

        db = self._db
        ids = [r[0] for r in db.execute("SELECT nct_id FROM trials")]
        for start in range(0, len(ids), batch):
            chunk = json.dumps(ids[start:start + batch])
            rows = db.execute(
                "SELECT t.nct_id, json_remove(t.record_json, '$.sites', '$.site_rows') FROM "
                "json_each(?) j JOIN trials t ON t.nct_id = j.value", (chunk,)
            ).fetchall()
            db.executemany("UPDATE trials SET search_text = ? WHERE nct_id = ?", [
                (searchable_text(_trial_from_record(json.loads(record))), nct)
                for nct, record in rows
            ])

    # -- reads -------------------------------------------------------------------------

    @property
    def search_index_ready(self) -> bool:
        """True when `search` can use the index (else it scans `sites`)."""
        return self._search_ready

    @contextmanager
    def search_snapshot(self) -> Iterator[None]:
        """One read transaction around a search: every read sees the same committed state,
        even while a sync writes (a walk over the tree must not see it half-changed)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    def search_cell_count(self, first: int, last: int, cap: int) -> int:
        """How many placed sites lie in cells ``first``..``last`` (counting stops past
        ``cap``)."""
        return int(self._read(
            "SELECT count(*) FROM (SELECT 1 FROM search_cell WHERE cell BETWEEN ? AND ? "
            "LIMIT ?)", (first, last, cap + 1)).fetchone()[0])

    def search_cell_rows(
        self, first: int, last: int, day: date | None
    ) -> list[tuple[int, int, str, float, float]]:
        """(key, position, nct_id, latitude, longitude) of the placed sites in cells
        ``first``..``last`` that match on ``day`` (None: any standing)."""
        sql = ("SELECT key, position, nct_id, latitude, longitude FROM search_cell "
               "WHERE cell BETWEEN ? AND ?")
        params: list[Any] = [first, last]
        if day is not None:
            sql += " AND u >= ?"
            params.append(search_day(day))
        return self._read(sql, params).fetchall()

    def search_matching(self, phrase: str) -> set[int]:
        """Keys of the trials whose searchable text holds the phrase (FTS5 query syntax: the
        caller quotes it). One row comes back, so a large answer costs little."""
        row = self._read("SELECT json_group_array(rowid) FROM search_words WHERE "
                         "search_words MATCH ?", (phrase,)).fetchone()
        return set(json.loads(row[0])) if row and row[0] else set()

    def search_count_sites(self, keys: Iterable[int], cap: int) -> int:
        """How many placed sites these trials have (counting stops past ``cap``)."""
        return int(self._read(
            "SELECT count(*) FROM (SELECT 1 FROM json_each(?) j CROSS JOIN search_site p "
            "ON p.key = j.value LIMIT ?)", (json.dumps(list(keys)), cap + 1)).fetchone()[0])

    def _search_rows_sql(
        self, keys: Iterable[int] | None, nct_ids: Iterable[str] | None, day: date | None
    ) -> tuple[str, list[Any]]:
        """FROM/WHERE of the placed sites matching on ``day`` (None: any standing) of these
        trials: by key, from `search_site`; else by identifier (None: all) from `sites`,
        which works without the index. Columns: trial, position, lat, lon."""
        params: list[Any] = []
        if keys is not None:
            sql = ("k.nct_id AS trial, p.position AS position, p.latitude AS lat, p.longitude "
                   "AS lon FROM json_each(?) j CROSS JOIN search_trial k ON k.key = j.value "
                   "CROSS JOIN search_site p ON p.key = k.key")
            params.append(json.dumps(list(keys)))
            if day is not None:
                sql += " WHERE p.u >= ?"
                params.append(search_day(day))
            return sql, params
        sql = ("s.trial AS trial, s.position AS position, s.latitude AS lat, s.longitude AS lon "
               f"FROM sites s WHERE {_search_placed('s')}")
        if nct_ids is not None:
            sql += " AND s.trial IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(nct_ids)))
        if day is not None:
            sql += f" AND {_search_recruiting('s')}"
            params.append(day.isoformat())
        return sql, params

    def search_sites_of(
        self, day: date | None, *, keys: Iterable[int] | None = None,
        nct_ids: Iterable[str] | None = None,
    ) -> list[tuple[str, int, float, float]]:
        """(nct_id, position, latitude, longitude) of every placed site of these trials (by
        key, or by identifier; neither: every trial) that matches on ``day``."""
        columns, params = self._search_rows_sql(keys, nct_ids, day)
        return self._read(f"SELECT {columns}", params).fetchall()

    def search_minima(
        self, latitude: float, longitude: float, day: date | None, *,
        keys: Iterable[int] | None = None, nct_ids: Iterable[str] | None = None,
        within_km: float | None = None,
    ) -> list[tuple[str, float]]:
        """Each trial's nearest matching placed site (see `search_sites_of`) as (nct_id,
        distance), nearest first, computed by SQLite with the haversine formula: to pick the
        candidates that `nearest.haversine_km` then ranks exactly (the last bits may differ)."""
        from trialfinder.nearest import EARTH_RADIUS_KM

        columns, params = self._search_rows_sql(keys, nct_ids, day)
        phi = math.radians(latitude)
        distance = (
            f"{2 * EARTH_RADIUS_KM} * asin(min(1.0, sqrt(pow(sin((radians(lat) - {phi!r}) / 2), "
            f"2) + {math.cos(phi)!r} * cos(radians(lat)) * pow(sin(radians(lon - "
            f"{float(longitude)!r}) / 2), 2))))"
        )
        sql = f"SELECT trial, min({distance}) AS d FROM (SELECT {columns}) GROUP BY trial"
        if within_km is not None:
            sql += " HAVING d <= ?"
            params.append(within_km)
        return self._read(sql + " ORDER BY d, trial", params).fetchall()

    def search_texts(self) -> Iterator[tuple[str, str]]:
        """(nct_id, searchable text) of every trial (for a search without the index)."""
        yield from self._read("SELECT nct_id, search_text FROM trials")

    def search_unplaced(
        self, day: date | None, country: str, *, phrase: str | None = None,
        nct_ids: Iterable[str] | None = None,
    ) -> list[tuple[str, int, bool]]:
        """Trials that have matching sites (on ``day``; None: any standing) but none placed:
        (nct_id, position of the first such site, whether one is in ``country``), those in
        the country first, then by identifier. ``phrase`` (an FTS5 query, needs the index)
        or ``nct_ids`` limit the trials."""
        match = "" if day is None else f" AND {_search_recruiting('s')}"
        params: list[Any] = [country]
        where = ""
        if phrase is not None:
            where = (" AND s.trial IN (SELECT k.nct_id FROM search_words w JOIN search_trial "
                     "k ON k.key = w.rowid WHERE search_words MATCH ?)")
            params.append(phrase)
        elif nct_ids is not None:
            where = " AND s.trial IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(nct_ids)))
        if day is not None:
            params.append(day.isoformat())
        if self._search_ready:  # the placed sites, by trial, with their u
            placed = ("SELECT 1 FROM search_trial k CROSS JOIN search_site p ON p.key = k.key "
                      "WHERE k.nct_id = s.trial" + ("" if day is None else " AND p.u >= ?"))
            if day is not None:
                params.append(search_day(day))
        else:
            placed = f"SELECT 1 FROM sites p WHERE p.trial = s.trial AND {_search_placed('p')}"
            if day is not None:
                placed += f" AND {_search_recruiting('p')}"
                params.append(day.isoformat())
        sql = (
            "SELECT trial, position, here FROM (SELECT s.trial AS trial, min(s.position) AS "
            "position, max(lower(s.country) = lower(?)) AS here FROM sites s WHERE "
            f"(s.latitude IS NULL OR s.longitude IS NULL){where}{match} GROUP BY s.trial) s "
            f"WHERE NOT EXISTS ({placed}) ORDER BY here DESC, trial"
        )
        return [(n, p, bool(h)) for n, p, h in self._read(sql, params)]

    def search_trial_site(self, nct_id: str, position: int) -> Trial | None:
        """The trial with only the site at ``position`` among its sites (the rest of the
        record as stored): what the rules need to word one hit, without decoding every
        site of a large trial."""
        row = self._read(
            "SELECT json_remove(record_json, '$.sites'), json_extract(record_json, ?), "
            "json_type(record_json, '$.site_rows') FROM trials WHERE nct_id = ?",
            (f"$.sites[{int(position)}]", nct_id)).fetchone()
        if row is None:
            return None
        if row[2] is not None:  # a schema-2 record (sites as arrays): read it whole
            trial = self.get_trial(nct_id)
            if trial is None or position >= len(trial.sites):
                return None
            return trial.replace(sites=(trial.sites[position],))
        data = json.loads(row[0])
        data["sites"] = [json.loads(row[1])] if row[1] is not None else []
        return _trial_from_record(data)

    def search_terms_missing(self) -> tuple[int, int]:
        """(registry records without MeSH condition terms, registry records)."""
        if not self._search_ready:  # reads every record's row: slow, as a scan is
            row = self._read(
                "SELECT count(*), total(instr(search_text, char(?)) = 0) FROM trials "
                "WHERE source_kind = 'registry'", (ord(SEARCH_TERMS_MARK),)).fetchone()
            return int(row[1]), int(row[0])
        without = self._read("SELECT count(*) FROM search_trial WHERE terms = 0").fetchone()[0]
        total = self._read("SELECT count(*) FROM search_trial WHERE terms IS NOT NULL")\
            .fetchone()[0]
        return int(without), int(total)

    def search_trial_count(self) -> int:
        return int(self._read("SELECT count(*) FROM trials").fetchone()[0])



# ==================================== end of the search index ============================


class Store(_SearchIndex):
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
        self._search_ready = self._search_index_ensure()

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
