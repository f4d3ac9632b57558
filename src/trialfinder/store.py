"""The local SQLite store: trial records, their sites, a history of changes, the sync runs.

One `Store` owns one database file. Every write is one transaction (``BEGIN IMMEDIATE`` …
``COMMIT``): a trial named by id, or a whole search page, so a sync that dies half-way
(network gone, process killed) leaves the previous good records in place. The schema is
versioned with ``PRAGMA user_version``, marked as ours with ``PRAGMA application_id``, and
upgraded here from every earlier version.

The ``record_json`` column is the truth (``models.to_jsonable(trial)``); the ``sites`` and
``contacts`` tables and the derived columns are computed from it in Python by
`prepare_trial`, with the rule modules (recruitment.py, search.py), never in SQL.

History compares like with like: each source of a trial (the registry, a listing page) keeps
its own *basis* in ``trial_sources`` — the recorded statuses, sites and contacts of the last
copy from that source, before any merge — and a new copy is compared with the basis of its
own source only. So a registry copy is never diffed against a listing scrape: alternating
the two cannot flip-flop the history. Every change row says its ``source``.

A store that this process cannot write (a read-only file or directory) is opened read-only
(SQLite ``mode=ro``, else ``immutable=1`` when the write-ahead log's index cannot be made):
readers work, writers get one clear error.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Union
from urllib.parse import quote

from trialfinder.contacts import same_phone
from trialfinder.errors import BadInput, StoreError
from trialfinder.i18n import _
from trialfinder.models import (
    Contact,
    Status,
    Trial,
    to_jsonable,
    trial_from_jsonable,
)
from trialfinder.resources import no_store_at
from trialfinder.terms import SEARCH_TERMS_MARK, searchable_text
from trialfinder.text import fold

SCHEMA_VERSION = 6
# 2: no (latitude, longitude) and (status) indexes on `sites`. Nothing read through them (the
# search has its own R*Tree) and keeping them cost a third of the write time of a sync.
# 3: what the rules derive, kept beside the record for queries across trials: each site's
# standing (recruitment.py) and the day a recruiting-type status stops counting as verified,
# how its position was decided, the trial's searchable text and placing version. Derived
# rows are recomputed from the records on upgrade (`_rederive`).
# 4: history by source (`trial_sources`, `changes.source`, new change kinds), what each sync
# run was asked and did (`syncs.arguments/counts/pid/note`), and the incremental sync's
# memory: the last successful run per query (`sync_queries`) and the trials each search
# query brought in (`query_trials`). `sites.contacts_hash` is no longer written (the bases
# replaced it) and keeps its default.
# 5: each source's own copy of a trial whose record merges two sources (a listing page and
# the registry): `trial_sources.record`, NULL when the trial's record is that copy itself.
# 6: an index on `trials.placed_by`, so that the trials placed by another version of the
# placing rules or gazetteer are found without reading every record (`placed_otherwise`):
# `search` counts them for its note, `sync` places them again.
_PLACED_BY_INDEX = "CREATE INDEX IF NOT EXISTS trials_placed_by ON trials(placed_by)"
_TRIAL_SOURCES_4 = """CREATE TABLE trial_sources (
    trial TEXT NOT NULL REFERENCES trials(nct_id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    basis TEXT NOT NULL,
    PRIMARY KEY (trial, source)
) WITHOUT ROWID"""
_TRIAL_SOURCES = _TRIAL_SOURCES_4.replace("basis TEXT NOT NULL,",
                                          "basis TEXT NOT NULL,\n    record TEXT,")
_SYNC_QUERIES = """CREATE TABLE sync_queries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('search', 'trial')),
    condition TEXT,
    country TEXT,
    statuses TEXT,
    nct_id TEXT,
    last_run_id INTEGER,
    last_success TEXT,
    last_success_id INTEGER,
    last_full TEXT,
    retry TEXT
)"""
_QUERY_TRIALS = """CREATE TABLE query_trials (
    query TEXT NOT NULL REFERENCES sync_queries(key) ON DELETE CASCADE,
    trial TEXT NOT NULL,
    PRIMARY KEY (query, trial)
) WITHOUT ROWID"""
_CHANGES = """CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    sync_id INTEGER REFERENCES syncs(id),
    trial TEXT NOT NULL,
    at TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'registry',
    kind TEXT NOT NULL,
    site_key TEXT,
    facility TEXT,
    old TEXT,
    new TEXT
)"""
_CHANGES_INDEXES = (
    "CREATE INDEX changes_trial_at ON changes(trial, at)",
    "CREATE INDEX changes_at ON changes(at)",
)
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
    3: (
        "ALTER TABLE syncs ADD COLUMN arguments TEXT",
        "ALTER TABLE syncs ADD COLUMN counts TEXT",
        "ALTER TABLE syncs ADD COLUMN pid INTEGER",
        "ALTER TABLE syncs ADD COLUMN note TEXT",
        # The kind CHECK of schema 3 goes (kinds are checked in Python): rebuild the table.
        _CHANGES.format(name="changes_v4"),
        "INSERT INTO changes_v4 (id, sync_id, trial, at, source, kind, site_key, facility, "
        "old, new) SELECT id, sync_id, trial, at, 'registry', kind, site_key, facility, old, "
        "new FROM changes",
        "DROP TABLE changes",
        "ALTER TABLE changes_v4 RENAME TO changes",
        *_CHANGES_INDEXES,
        _TRIAL_SOURCES_4,
        _SYNC_QUERIES,
        _QUERY_TRIALS,
    ),
    4: ("ALTER TABLE trial_sources ADD COLUMN record TEXT",),
    5: (_PLACED_BY_INDEX,),
}
_REDERIVE_FROM = 3
"""Upgrading to this version (or past it) recomputes every trial's derived rows."""
APPLICATION_ID = 0x54464E44  # "TFND": tells our files from any other SQLite database
BUSY_TIMEOUT_MS = 5000
_SCHEMA = f"""
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
{_PLACED_BY_INDEX};
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
    contacts_hash TEXT NOT NULL DEFAULT '',
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
    outcome TEXT,
    arguments TEXT,
    counts TEXT,
    pid INTEGER,
    note TEXT
);
{_CHANGES.format(name="changes")};
{";".join(_CHANGES_INDEXES)};
CREATE TABLE geocode_cache (
    key TEXT PRIMARY KEY,
    latitude REAL,
    longitude REAL,
    precision TEXT,
    source TEXT,
    fetched_at TEXT NOT NULL,
    raw TEXT
);
{_TRIAL_SOURCES};
{_SYNC_QUERIES};
{_QUERY_TRIALS};
"""
# The columns of `sites`: `status` is the registry status the site's standing rests on (its
# own, else the trial's; recruitment.py), `site_status` the site's own, NULL if none.
# `standing` is recruitment.py's answer on the day of the save; `recruiting_until` the last
# day a recruiting-type status still counts as verified (recruitment.verification_expires):
# a site is recruiting on day D when standing = 'recruiting' and (recruiting_until IS NULL or
# recruiting_until >= D). `matched` lists the address fields its position agrees with
# (comma-separated).
#
# `syncs`: one row per run; `arguments` (JSON) what it was asked, `counts` (JSON) what it
# did, `pid` the process that ran it, `note` the first failure. A run whose `finished` is
# NULL while nobody holds the sync lock died without a word: `abandon_unfinished` marks it.
#
# `sync_queries`: per search query (normalised condition, country, statuses) and per trial
# named by id, the last run that asked it and the start of the last successful one (and of
# the last successful full refresh): an incremental sync asks the registry only for what
# changed since. `query_trials`: the trials a search query returned, so a full refresh can
# tell which ones the registry no longer returns.
#
# `trial_sources`: per trial and source ("registry", "listing"), the last copy from that
# source: its content hash, when it came, its basis (what history compares) and, when the
# trial's record merges it with another source's copy (`merge.merge`), the copy itself
# (`record`, `models.to_jsonable` JSON, placed as it would be stored alone); a NULL `record`
# means the trial's record is this copy.


class ChangeKind(StrEnum):
    TRIAL_ADDED = "trial_added"
    TRIAL_STATUS_CHANGED = "trial_status_changed"
    TRIAL_CONTACT_CHANGED = "trial_contact_changed"
    """The trial's central contacts (the study desk), with old and new phone/e-mail."""
    TRIAL_NOT_SEEN = "trial_not_seen"
    """A full refresh of the queries that brought the trial in no longer returned it."""
    TRIAL_SEEN_AGAIN = "trial_seen_again"
    SITE_ADDED = "site_added"
    SITE_REMOVED = "site_removed"
    SITE_STATUS_CHANGED = "site_status_changed"
    """The site's own *recorded* status, never one derived from the trial's."""
    SITE_CONTACT_CHANGED = "site_contact_changed"


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded difference between two successive copies of a trial from one source."""

    at: str
    """ISO timestamp of the save that saw the change."""
    nct_id: str
    kind: ChangeKind
    site_key: str | None = None
    facility: str | None = None
    old: str | None = None
    """Before: a status value, or the contacts that changed as "Name (ROLE): phone, e-mail;
    …"; None for an addition."""
    new: str | None = None
    sync_id: int | None = None
    source: str = "registry"
    """Which source's copies were compared: "registry", "listing"."""

    def describe(self) -> str:
        """One line for people: '2024-03-15 NCT02260505: Centre Léon Bérard: Recruiting → …'."""
        day = self.at[:10]
        where = self.facility or self.site_key or "?"
        prefix = f"{day} {self.nct_id}"
        if self.source == "listing":
            prefix += " " + _("(listing page)")
        kind = self.kind
        if kind is ChangeKind.TRIAL_ADDED:
            text = _("trial added ({status})").format(status=status_words(self.new))
        elif kind is ChangeKind.TRIAL_STATUS_CHANGED:
            text = _("trial status {old} → {new}").format(old=status_words(self.old),
                                                          new=status_words(self.new))
        elif kind is ChangeKind.TRIAL_CONTACT_CHANGED:
            text = _("trial contacts {old} → {new}").format(old=self.old or _("none"),
                                                            new=self.new or _("none"))
        elif kind is ChangeKind.TRIAL_NOT_SEEN:
            text = _("no longer returned by the registry (not seen since {day}); no longer "
                     "called recruiting").format(day=self.new)
        elif kind is ChangeKind.TRIAL_SEEN_AGAIN:
            text = _("returned by the registry again (not seen since {day})").format(
                day=self.old)
        elif kind is ChangeKind.SITE_ADDED:
            text = _("site added: {site} ({status})").format(site=where,
                                                             status=status_words(self.new))
        elif kind is ChangeKind.SITE_REMOVED:
            text = _("site removed: {site} (was {status})").format(
                site=where, status=status_words(self.old))
        elif kind is ChangeKind.SITE_STATUS_CHANGED:
            text = _("{site}: {old} → {new}").format(site=where, old=status_words(self.old),
                                                      new=status_words(self.new))
        else:
            text = _("{site}: contacts {old} → {new}").format(
                site=where, old=self.old or _("none"), new=self.new or _("none"))
        return f"{prefix}: {text}"

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "nct_id": self.nct_id,
            "kind": self.kind.value,
            "source": self.source,
            "site_key": self.site_key,
            "facility": self.facility,
            "old": self.old,
            "new": self.new,
            "sync_id": self.sync_id,
            "description": self.describe(),
        }


def status_words(status: str | None) -> str:
    """A recorded registry status as people read it ("Active, not recruiting")."""
    from trialfinder.recruitment import status_label

    if not status:
        return _("no status")
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
    """The registry status the site's standing rests on: its own, else the trial's."""
    site_status: Status | None
    latitude: float | None
    longitude: float | None
    precision: str
    coordinate_source: str | None
    listing_only: bool


@dataclass(frozen=True, slots=True)
class SyncRun:
    """One run of `trialfinder sync`, as recorded."""

    id: int
    started: str
    finished: str | None
    outcome: str | None
    """"ok", "partial" (some trials failed), "failed", "aborted"; None while running."""
    arguments: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    """asked, new, updated, unchanged, failed, skipped (a run's summary)."""
    pid: int | None = None
    note: str | None = None

    def to_jsonable(self) -> dict[str, Any]:
        return {"id": self.id, "started": self.started, "finished": self.finished,
                "outcome": self.outcome, "arguments": self.arguments, "counts": self.counts,
                "note": self.note}


@dataclass(frozen=True, slots=True)
class QueryState:
    """What the store remembers of one sync query (a search, or a trial named by id)."""

    key: str
    kind: Literal["search", "trial"]
    condition: str | None = None
    country: str | None = None
    statuses: tuple[str, ...] = ()
    nct_id: str | None = None
    last_run_id: int | None = None
    last_success: str | None = None
    """ISO timestamp of the start of the last successful run of this query."""
    last_success_id: int | None = None
    last_full: str | None = None
    """Start of the last successful full refresh (a search asked without a date filter)."""
    trials: int = 0
    """Trials this search query returned (and the store keeps)."""
    retry: tuple[str, ...] = ()
    """Studies of this search that failed to be read or stored on its last run: the next run
    asks for them by id (an incremental search would not return them again)."""

    def to_jsonable(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "condition": self.condition,
                "country": self.country, "statuses": list(self.statuses),
                "nct_id": self.nct_id, "last_run_id": self.last_run_id,
                "last_success": self.last_success, "last_success_id": self.last_success_id,
                "last_full": self.last_full, "trials": self.trials, "retry": list(self.retry)}


StoreLike = Union["Store", str, Path, None]
"""What library calls accept for the store: an open `Store`, a path, or None (no store)."""
Mode = Literal["auto", "read", "write"]


@contextmanager
def using_store(
    db: StoreLike, *, create: bool = False, mode: Mode = "auto"
) -> Iterator[Store | None]:
    """The store ``db`` designates, open for the block: an open `Store` is used as is (and
    left open), a path is opened and closed; None, or a path to no file (unless ``create``),
    gives None: reading never creates a store."""
    if isinstance(db, Store):
        yield db
        return
    if db is None or (not create and no_store_at(db)):
        yield None
        return
    with Store(db, mode=mode) as store:
        yield store


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def writable_path(db: StoreLike) -> str | None:
    """The path of the store ``db`` designates (None: no store given), checked writable by
    this user (else `StoreError`): what a sync or a scrape checks before any work."""
    path = db.path if isinstance(db, Store) else (None if db is None else str(db))
    if path is not None and ((isinstance(db, Store) and db.read_only)
                             or (path != ":memory:" and not can_write(path))):
        raise _unwritable(path)
    return path


def _unwritable(path: str) -> StoreError:
    return StoreError(_("The store at {path} cannot be written by this user (read-only file "
                        "or folder)").format(path=path))


def can_write(path: str | Path) -> bool:
    """Whether this process may write the store at ``path`` (and its -wal/-shm beside it)."""
    target = Path(path).expanduser()
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # a store not made yet: its nearest existing folder decides
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not target.exists() or os.access(target, os.R_OK | os.W_OK)


# =========================================================================================
# The search index: search.py's section of the store (tables, triggers, their creation and
# back-fill, and the reads `trialfinder search` makes). Everything here is derived from the
# `trials` and `sites` rows: dropping it loses nothing, and it is rebuilt when missing.
#
# - `search_trial`: a small, stable integer key per trial (kept across re-saves of the trial,
#   which may change `trials.rowid`), and whether a registry record carries MeSH terms.
# - `search_words`: FTS5 over `trials.search_text` (terms.searchable_text), rowid = key.
# - `search_cell`: the tree. One row per placed site, keyed by its octree cell: the site's
#   point on the unit sphere, each coordinate cut into 2**SEARCH_CELL_BITS steps, the three
#   step numbers' bits interleaved (Morton order), so every cube of the octree is one range
#   of keys. The row carries what ranking needs: trial, position, exact latitude and
#   longitude, and u, the last day the site counts as recruiting.
# - `search_fresh`: placed sites written since the tree was last brought up to date, the
#   same rows clustered by trial (so written where the table ends). A write scatters its
#   sites over the whole tree: a page of 1,000 studies (about 9,000 sites) dirties one tree
#   page per site, and every dirty page is written twice (write-ahead log, checkpoint), which
#   at a million sites wrote 4 times the store's growth. So the triggers add sites here, and
#   `_search_fold` moves them into the tree in one sorted pass: at the end of every write
#   outside a sync, at the end of a sync, and during a sync whenever they outnumber the
#   tree's sites (so a mirror that grows the tree folds it O(log n) times). A search reads
#   them directly (`search_minima` over this table), so it is exact at every moment.
# - `search_site`: every placed site clustered by trial (direct ranking, deletes).
# - `search_tally`: per trial and u, how many placed and unplaced sites it has; the partial
#   index `search_alone` holds the rows with no placed site, so "trials whose matching
#   sites are all unplaced" is a short range read, not a probe per trial.
# - `search_unplaced`: a partial index of `sites` over the rows without a position.
# Triggers on `trials` and `sites` keep all of it current through every write of the store;
# `sites` rows are written by delete + insert only (a REPLACE is refused: the index needs
# the old row's values).
# =========================================================================================

SEARCH_INDEX_VERSION = "9"
SEARCH_CELL_BITS = 20
"""Octree depth: the finest cube is 2 / 2**20 of the Earth's radius across (about 12 m)."""
SEARCH_FOREVER = 100_000
"""u of a recruiting site whose standing has no end date (a day number in year 2243)."""
SEARCH_NEVER = -1
"""u of a site whose standing is not recruiting: below every day."""
SEARCH_FOLD_MIN = 25_000
"""During a sync, fresh sites are folded into the tree once they are more than this many
and more than the tree holds (`search_fresh`)."""
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


def _search_is_placed(row: str) -> str:
    """1 for a placed row of `sites`, 0 for one without a position."""
    return f"({_search_placed(row)})"


_SEARCH_TERMS_SQL = (
    f"CASE WHEN new.source_kind = 'registry' THEN instr(new.search_text, char("
    f"{ord(SEARCH_TERMS_MARK)})) > 0 END"
)


def _search_tally_sql(row: str, sign: str) -> str:
    """Statements that count a row of `sites` in `search_tally` (``sign`` "+") or take it
    out ("-"), the rows left with nothing deleted."""
    key, u, placed = _search_key_sql(f"{row}.trial"), _search_until_sql(row), \
        _search_is_placed(row)
    if sign == "+":
        return (
            f"INSERT INTO search_tally (key, u, placed, unplaced) SELECT k.key, {u}, {placed}, "
            f"1 - {placed} FROM search_trial k WHERE k.nct_id = {row}.trial ON CONFLICT (key, u) "
            "DO UPDATE SET placed = placed + excluded.placed, unplaced = unplaced + "
            "excluded.unplaced;"
        )
    return (
        f"UPDATE search_tally SET placed = placed - {placed}, unplaced = unplaced - (1 - "
        f"{placed}) WHERE key = {key} AND u = {u};"
        f"DELETE FROM search_tally WHERE key = {key} AND u = {u} AND placed = 0 AND "
        "unplaced = 0;"
    )


def _search_drop_site(row: str) -> str:
    """Statements that remove a site (by trial and position) from the index."""
    key = _search_key_sql(f"{row}.trial")
    return (
        _search_tally_sql(row, "-")
        + "DELETE FROM search_cell WHERE (cell, key, position) = (SELECT cell, key, position "
        f"FROM search_site WHERE key = {key} AND position = {row}.position);"
        f"DELETE FROM search_fresh WHERE key = {key} AND position = {row}.position;"
        f"DELETE FROM search_site WHERE key = {key} AND position = {row}.position;"
    )


_SEARCH_ADD_SITE = (
    "INSERT OR IGNORE INTO search_trial (nct_id) VALUES (new.trial);"
    + _search_tally_sql("new", "+")
    + f"INSERT INTO search_site SELECT {_search_site_sql('new', 'k.key')} FROM search_trial k "
    f"WHERE k.nct_id = new.trial AND {_search_placed('new')};"
    "INSERT INTO search_fresh SELECT p.key, p.position, new.trial, p.latitude, p.longitude, "
    f"p.u, p.cell FROM search_site p WHERE p.key = {_search_key_sql('new.trial')} AND "
    "p.position = new.position;"
)
_SEARCH_REMOVE_SITE = _search_drop_site("old")
_SEARCH_ADD_TRIAL = (
    "INSERT OR IGNORE INTO search_trial (nct_id) VALUES (new.nct_id);"
    f"UPDATE search_trial SET terms = {_SEARCH_TERMS_SQL} WHERE nct_id = new.nct_id;"
    f"DELETE FROM search_words WHERE rowid = {_search_key_sql('new.nct_id')};"
    "INSERT INTO search_words (rowid, text) SELECT key, new.search_text FROM search_trial "
    "WHERE nct_id = new.nct_id;"
)
_SEARCH_CELL_COLUMNS = "cell, key, position, nct_id, latitude, longitude, u"
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
    "CREATE TABLE search_fresh (key INTEGER NOT NULL, position INTEGER NOT NULL, "
    "nct_id TEXT NOT NULL, latitude REAL NOT NULL, longitude REAL NOT NULL, "
    "u INTEGER NOT NULL, cell INTEGER NOT NULL, PRIMARY KEY (key, position)) WITHOUT ROWID",
    "CREATE TABLE search_site (key INTEGER NOT NULL, position INTEGER NOT NULL, "
    "latitude REAL NOT NULL, longitude REAL NOT NULL, u INTEGER NOT NULL, "
    "cell INTEGER NOT NULL, PRIMARY KEY (key, position)) WITHOUT ROWID",
    "CREATE TABLE search_tally (key INTEGER NOT NULL, u INTEGER NOT NULL, "
    "placed INTEGER NOT NULL, unplaced INTEGER NOT NULL, PRIMARY KEY (key, u)) WITHOUT ROWID",
    "CREATE INDEX search_alone ON search_tally(u, key) WHERE placed = 0",
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
    "CREATE TRIGGER search_site_replaced BEFORE INSERT ON sites WHEN EXISTS (SELECT 1 FROM "
    "sites WHERE trial = new.trial AND position = new.position) BEGIN SELECT RAISE(ABORT, "
    "'a row of sites is replaced by deleting it first (the search index needs its values)'); "
    "END",
    f"CREATE TRIGGER search_site_added AFTER INSERT ON sites BEGIN {_SEARCH_ADD_SITE} END",
    "CREATE TRIGGER search_site_changed AFTER UPDATE OF trial, position, latitude, longitude, "
    f"standing, recruiting_until ON sites BEGIN {_SEARCH_REMOVE_SITE} {_SEARCH_ADD_SITE} END",
    f"CREATE TRIGGER search_site_removed AFTER DELETE ON sites BEGIN {_SEARCH_REMOVE_SITE} END",
)
_SEARCH_TABLES = ("search_words", "search_cell", "search_fresh", "search_site",
                  "search_tally", "search_trial", "search_meta")
_SEARCH_INDEXES = ("search_trial_terms", "search_alone", "search_unplaced")
_SEARCH_TRIGGERS = ("search_trial_added", "search_trial_changed", "search_trial_removed",
                    "search_site_replaced", "search_site_added", "search_site_changed",
                    "search_site_removed")
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


def _search_u(day: date | None) -> int:
    """The least u that matches on ``day`` (None: any standing)."""
    return SEARCH_NEVER if day is None else search_day(day)


class _SearchIndex:
    """The `Store` methods of the search index (mixed into `Store`)."""

    _db: sqlite3.Connection
    _label: str
    _search_ready: bool = False
    _search_deferring: int = 0
    """Inside `search_deferred` (a sync, between `start_sync` and `finish_sync`, is one):
    fresh sites wait to be folded in bulk."""

    if TYPE_CHECKING:  # Store's own
        def _read(self, sql: str, params: Iterable[Any] = ()) -> Rows: ...
        def get_trial(self, nct_id: str) -> Trial | None: ...
        def _writing(self, nct: str | None = None, *, wait: bool = True,
                     settle: bool = False) -> AbstractContextManager[bool]: ...

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
        db.execute(f"INSERT INTO search_tally SELECT k.key, {_search_until_sql('s')} AS u, "
                   f"total({_search_is_placed('s')}), total(1 - {_search_is_placed('s')}) "
                   "FROM sites s JOIN search_trial k ON k.nct_id = s.trial GROUP BY k.key, u")
        db.execute("INSERT INTO search_meta VALUES ('version', ?)", (SEARCH_INDEX_VERSION,))
        db.execute("INSERT INTO search_meta SELECT 'cells', count(*) FROM search_cell")

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

    # -- keeping the tree up to date ------------------------------------------------------

    def _search_settle(self) -> None:
        """At the end of a write transaction (before its COMMIT): fold the fresh sites into
        the tree, unless writes are deferred (`search_deferred`) and they are still few
        (`SEARCH_FOLD_MIN`, or fewer than the tree holds)."""
        if not self._search_ready:
            return
        if self._search_deferring:
            fresh = self._db.execute("SELECT count(*) FROM search_fresh").fetchone()[0]
            if fresh <= SEARCH_FOLD_MIN or fresh <= self._search_tree_size():
                return
        self._search_fold()

    def _search_tree_size(self) -> int:
        """Sites in the tree when it was last built or folded (sites removed since are not
        counted off: a size to compare with, not an exact count)."""
        row = self._db.execute("SELECT value FROM search_meta WHERE key = 'cells'").fetchone()
        return int(row[0]) if row is not None else 0

    def _search_fold(self) -> None:
        """Move the fresh sites into the tree in one pass in cell order (inside the caller's
        transaction), each tree page written once however many sites it gains."""
        db = self._db
        moved = db.execute(f"INSERT INTO search_cell ({_SEARCH_CELL_COLUMNS}) SELECT "
                           f"{_SEARCH_CELL_COLUMNS} FROM search_fresh ORDER BY cell, key, "
                           "position").rowcount
        if moved <= 0:
            return
        db.execute("DELETE FROM search_fresh")
        db.execute("INSERT OR REPLACE INTO search_meta VALUES ('cells', ?)",
                   (str(self._search_tree_size() + moved),))

    @contextmanager
    def search_deferred(self) -> Iterator[None]:
        """A run of write transactions (a sync, `geocode --refresh`) whose sites are folded
        into the tree once at the end (one transaction; see `search_fresh` above) rather
        than at the end of each: far fewer writes, and searches meanwhile read the waiting
        sites directly."""
        self._search_defer()
        try:
            yield
        finally:
            self._search_db_fold()

    def _search_defer(self) -> None:
        self._search_deferring += 1

    def _search_db_fold(self) -> None:
        """End one deferral; the last one folds in its own transaction."""
        self._search_deferring -= 1
        if self._search_deferring or not self._search_ready or self._db.in_transaction:
            return
        with self._writing():
            self._search_fold()

    def _search_sync_finished(self) -> None:
        """Inside `finish_sync`'s transaction: what the sync wrote goes into the tree."""
        self._search_deferring = max(0, self._search_deferring - 1)
        if self._search_ready and not self._search_deferring:
            self._search_fold()

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
        """How many sites of the tree lie in cells ``first``..``last`` (counting stops past
        ``cap``)."""
        return int(self._read(
            "SELECT count(*) FROM (SELECT 1 FROM search_cell WHERE cell BETWEEN ? AND ? "
            "LIMIT ?)", (first, last, cap + 1)).fetchone()[0])

    def search_cell_rows(
        self, first: int, last: int, day: date | None
    ) -> list[tuple[int, int, str, float, float]]:
        """(key, position, nct_id, latitude, longitude) of the sites of the tree in cells
        ``first``..``last`` that match on ``day`` (None: any standing)."""
        sql = ("SELECT key, position, nct_id, latitude, longitude FROM search_cell "
               "WHERE cell BETWEEN ? AND ?")
        params: list[Any] = [first, last]
        if day is not None:
            sql += " AND u >= ?"
            params.append(search_day(day))
        return self._read(sql, params).fetchall()

    def search_has_fresh(self) -> bool:
        """Whether placed sites wait outside the tree (during a sync, or after one died)."""
        return self._read("SELECT 1 FROM search_fresh LIMIT 1").fetchone() is not None

    def search_match_count(self, phrase: str) -> int:
        """How many trials' searchable text holds the phrase (FTS5 query syntax)."""
        return int(self._read("SELECT count(*) FROM search_words WHERE search_words MATCH ?",
                              (phrase,)).fetchone()[0])

    def search_matching(self, phrase: str, among: Iterable[int] | None = None) -> set[int]:
        """Keys of the trials whose searchable text holds the phrase (FTS5 query syntax: the
        caller quotes it), among these keys if given. One row comes back, so a large answer
        costs little."""
        sql = ("SELECT json_group_array(rowid) FROM search_words WHERE search_words MATCH ?")
        params: list[Any] = [phrase]
        if among is not None:
            # "+rowid": checked as FTS5 reads the phrase's list once; a plain rowid IN would
            # run one FTS5 query per key (about 20 µs each).
            sql += " AND +rowid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(among)))
        row = self._read(sql, params).fetchone()
        return set(json.loads(row[0])) if row and row[0] else set()

    def search_matches(self, phrase: str, key: int) -> bool:
        """Whether this trial's searchable text holds the phrase (one look-up: FTS5 finds a
        rowid in the phrase's lists without reading them through)."""
        return self._read("SELECT 1 FROM search_words WHERE search_words MATCH ? AND "
                          "rowid = ?", (phrase, key)).fetchone() is not None

    def search_sites_per_trial(self) -> float:
        """Placed sites per trial, about (the tree's size when last folded, per trial)."""
        trials = self._read("SELECT max(key) FROM search_trial").fetchone()[0]
        return self._search_tree_size() / max(1, trials or 0)

    def search_count_sites(self, keys: Iterable[int], day: date | None = None) -> int:
        """How many placed sites these trials have that match on ``day`` (None: any)."""
        return int(self._read(
            "SELECT total(t.placed) FROM json_each(?) j CROSS JOIN search_tally t ON "
            "t.key = j.value AND t.u >= ?", (json.dumps(list(keys)), _search_u(day))
        ).fetchone()[0])

    def _search_rows_sql(
        self, keys: Iterable[int] | None, nct_ids: Iterable[str] | None, day: date | None,
        *, fresh: bool = False,
    ) -> tuple[str, list[Any]]:
        """FROM/WHERE of the placed sites matching on ``day`` (None: any standing): of these
        trials by key, from `search_site`; the fresh ones (``fresh``), from `search_fresh`;
        else by identifier (None: all) from `sites`, which works without the index.
        Columns: key (NULL from `sites`), trial (NULL from `search_site`: found by key once
        grouped), position, lat, lon."""
        params: list[Any] = []
        if fresh:
            sql = ("f.key AS key, f.nct_id AS trial, f.position AS position, f.latitude AS "
                   "lat, f.longitude AS lon FROM search_fresh f")
            if day is not None:
                sql += " WHERE f.u >= ?"
                params.append(search_day(day))
            return sql, params
        if keys is not None:
            sql = ("p.key AS key, NULL AS trial, p.position AS position, p.latitude AS lat, "
                   "p.longitude AS lon FROM json_each(?) j CROSS JOIN search_site p ON "
                   "p.key = j.value")
            params.append(json.dumps(list(keys)))
            if day is not None:
                sql += " WHERE p.u >= ?"
                params.append(search_day(day))
            return sql, params
        sql = ("NULL AS key, s.trial AS trial, s.position AS position, s.latitude AS lat, "
               f"s.longitude AS lon FROM sites s WHERE {_search_placed('s')}")
        if nct_ids is not None:
            sql += " AND s.trial IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(nct_ids)))
        if day is not None:
            sql += f" AND {_search_recruiting('s')}"
            params.append(day.isoformat())
        return sql, params

    @staticmethod
    def _search_distance_sql(latitude: float, longitude: float) -> str:
        """The haversine distance in km from a point to the columns lat, lon (SQLite's
        arithmetic: `nearest.haversine_km` may differ in the last bits)."""
        from trialfinder.nearest import EARTH_RADIUS_KM

        phi = math.radians(latitude)
        return (
            f"{2 * EARTH_RADIUS_KM} * asin(min(1.0, sqrt(pow(sin((radians(lat) - {phi!r}) / 2), "
            f"2) + {math.cos(phi)!r} * cos(radians(lat)) * pow(sin(radians(lon - "
            f"{float(longitude)!r}) / 2), 2))))"
        )

    def search_sites_of(
        self, day: date | None, *, keys: Iterable[int] | None = None,
        nct_ids: Iterable[str] | None = None, fresh: bool = False,
        near: tuple[float, float, float] | None = None,
    ) -> list[tuple[str, int, float, float]]:
        """(nct_id, position, latitude, longitude) of every placed site of these trials (by
        key, or by identifier; neither: every trial; ``fresh``: the fresh sites of the trials
        named by ``keys``) that matches on ``day``; with ``near`` (latitude, longitude, km)
        only those within that distance by SQLite's haversine."""
        columns, params = self._search_rows_sql(None if fresh else keys, nct_ids, day,
                                                fresh=fresh)
        sql = f"SELECT key, trial, position, lat, lon FROM (SELECT {columns}) WHERE 1"
        if fresh and keys is not None:
            sql += " AND key IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(keys)))
        if near is not None:
            sql += f" AND {self._search_distance_sql(near[0], near[1])} <= ?"
            params.append(near[2])
        rows = self._read(sql, params).fetchall()
        names = self._search_names({k for k, n, *_ in rows if n is None})
        return [(n if n is not None else names[k], p, lat, lon) for k, n, p, lat, lon in rows]

    def _search_names(self, keys: set[int]) -> dict[int, str]:
        if not keys:
            return {}
        return dict(self._read("SELECT k.key, k.nct_id FROM json_each(?) j CROSS JOIN "
                               "search_trial k ON k.key = j.value", (json.dumps(list(keys)),)))

    def search_minima(
        self, latitude: float, longitude: float, day: date | None, *,
        keys: Iterable[int] | None = None, nct_ids: Iterable[str] | None = None,
        within_km: float | None = None, fresh: bool = False,
    ) -> list[tuple[str, float, int | None]]:
        """Each trial's nearest matching placed site (see `search_sites_of`) as (nct_id,
        distance, key; None without the index), nearest first, computed by SQLite with the
        haversine formula: to pick the candidates that `nearest.haversine_km` then ranks
        exactly (the last bits may differ)."""
        columns, params = self._search_rows_sql(keys, nct_ids, day, fresh=fresh)
        distance = self._search_distance_sql(latitude, longitude)
        by = "trial" if keys is None and not fresh else "key"
        sql = (f"SELECT min(key), min(trial), min({distance}) AS d FROM (SELECT {columns}) "
               f"GROUP BY {by}")
        if within_km is not None:
            sql += " HAVING d <= ?"
            params.append(within_km)
        rows = self._read(sql, params).fetchall()
        names = self._search_names({k for k, n, _d in rows if n is None})
        return sorted(((n if n is not None else names[k], d, k) for k, n, d in rows),
                      key=lambda r: (r[1], r[0]))

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
        if self._search_ready:
            # The trials with a tally row of unplaced sites only, then those with no placed
            # site matching on the day in any row; the few left are read from `sites`.
            u = _search_u(day)
            keys = [r[0] for r in self._read(
                "SELECT DISTINCT c.key FROM search_tally c INDEXED BY search_alone WHERE "
                "c.placed = 0 AND c.u >= ? "
                "AND NOT EXISTS (SELECT 1 FROM search_tally o WHERE o.key = c.key AND "
                "o.u >= ? AND o.placed > 0)", (u, u))]
            if keys and phrase is not None:
                keys = list(self.search_matching(phrase, among=keys))
            if not keys:
                return []
            params: list[Any] = [country, json.dumps(keys)]
            if day is not None:
                params.append(day.isoformat())
            rows = self._read(
                "SELECT k.nct_id, min(s.position), max(lower(s.country) = lower(?)) AS here "
                "FROM json_each(?) j CROSS JOIN search_trial k ON k.key = j.value CROSS JOIN "
                "sites s ON s.trial = k.nct_id WHERE (s.latitude IS NULL OR s.longitude IS "
                f"NULL){match} GROUP BY k.nct_id ORDER BY here DESC, k.nct_id", params)
            wanted = None if nct_ids is None else set(nct_ids)
            return [(n, p, bool(h)) for n, p, h in rows if wanted is None or n in wanted]
        if phrase is not None:
            raise StoreError(_("The search index is not available in this store"))
        params = [country]
        where = ""
        if nct_ids is not None:
            where = " AND s.trial IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(nct_ids)))
        if day is not None:
            params.append(day.isoformat())
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
    """One trialfinder SQLite database. Use as a context manager, or call close().

    ``mode``: "auto" opens read-only when this process cannot write the file or its folder,
    "write" raises StoreError then, "read" always opens read-only (and never creates).
    """

    def __init__(self, path: str | Path, *, mode: Mode = "auto") -> None:
        self.path = str(path)
        self._label = self.path
        self._mode = mode
        memory = self.path == ":memory:"
        file = Path(self.path).expanduser()
        writable = memory or (mode != "read" and can_write(file))
        if not writable and mode == "write":
            raise _unwritable(self._label)
        if not writable and not file.exists():
            raise StoreError(_("No store at {path}").format(path=self._label))
        self.read_only = not writable
        self._placed_by_indexed = False
        self._ours = False
        """The header says this is a trialfinder store (a later error means damage)."""
        try:
            if self.read_only:
                self._db = self._connect_read_only(file)
            else:
                if not memory:
                    file.parent.mkdir(parents=True, exist_ok=True)
                # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing implicit.
                self._db = sqlite3.connect(
                    self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
                )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(_("Cannot open the store at {path}: {reason}").format(
                path=self._label, reason=exc)) from None
        try:
            self._setup(memory)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(_("The store at {path} is locked; try again").format(
                    path=self._label)) from None
            if self._ours:
                raise StoreError(_("The store at {path} is damaged ({reason}); move it aside "
                                   "and fill a new one with `trialfinder sync`").format(
                    path=self._label, reason=exc)) from None
            raise StoreError(self._not_ours()) from None
        except StoreError:
            self._db.close()
            raise

    def _connect_read_only(self, file: Path) -> sqlite3.Connection:
        """``mode=ro`` reads the write-ahead log too, but needs its index (-shm) to exist or
        be creatable; without it (a read-only folder, no writer around) ``immutable=1``
        reads the database file alone, which then holds every committed write."""
        uri = "file:" + quote(str(file.resolve()))
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                             timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        return db

    def _not_ours(self) -> str:
        return _("The store at {path} is not a trialfinder database").format(path=self._label)

    def _setup(self, memory: bool) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        # Reading the header first: a file that is not SQLite fails here, before any write.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        self._check_version(version, app_id)
        self._ours = app_id == APPLICATION_ID
        if self.read_only:
            if version == 0:
                raise StoreError(self._not_ours())
            self._search_ready = self._search_index_ensure()  # used as it is, never built
            return
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
                raise StoreError(self._not_ours())
            return
        if app_id != APPLICATION_ID:
            raise StoreError(self._not_ours())
        if version > SCHEMA_VERSION:
            raise StoreError(_(
                "The store at {path} was written by a newer trialfinder (schema {version}; "
                "this one knows {known}): upgrade trialfinder"
            ).format(path=self._label, version=version, known=SCHEMA_VERSION))
        if version < 1:
            raise StoreError(self._not_ours())

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
        written now (a sync holds it) is read as it is: every version this code knows is
        readable, and the next writer upgrades it."""
        db = self._db
        if self._mode != "write":
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
        except sqlite3.OperationalError as exc:
            db.execute("ROLLBACK")
            if self._mode == "write":
                raise StoreError(_("Cannot upgrade the store at {path}: {reason}").format(
                    path=self._label, reason=exc)) from None
            # A reader (e.g. on a full disk) reads the old schema as it is.
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
            # No basis: a record of before schema 4 may hold a listing's contacts merged in;
            # its next copy is compared by status only (see `_save_one`).
            self._write(prepare_trial(trial, raw_json, basis=""), fetched_at, True)

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
        return str(self._read("PRAGMA journal_mode").fetchone()[0])

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version").fetchone()[0])

    def _has_table(self, name: str) -> bool:
        return self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (name,)).fetchone() is not None

    def prepare_for_writing(self) -> None:
        """Ready this connection for a run of writes (a sync): a clear error now rather than
        at the first write if the store is read-only or not upgraded."""
        if self.read_only:
            raise _unwritable(self._label)
        if self.schema_version < SCHEMA_VERSION:
            raise StoreError(_("The store at {path} is busy being upgraded by another process; "
                               "try again").format(path=self._label))

    # -- trials ------------------------------------------------------------------------

    def get_trial(self, nct_id: str) -> Trial | None:
        row = self._read(
            "SELECT record_json FROM trials WHERE nct_id = ?", (nct_id,)
        ).fetchone()
        if row is None:
            return None
        return self._decode(nct_id, row[0])

    def _decode(self, nct_id: str, record_json: str) -> Trial:
        try:
            return _trial_from_record(json.loads(record_json))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise StoreError(_(
                "The store at {path} holds an unreadable record of {nct} ({reason}); run "
                "`trialfinder sync {nct}` to replace it"
            ).format(path=self._label, nct=nct_id, reason=exc)) from None

    def iter_trials(self) -> Iterator[Trial]:
        """Every stored trial, in identifier order (read in slices: memory stays flat)."""
        after = ""
        while True:
            rows = self._read(
                "SELECT nct_id, record_json FROM trials WHERE nct_id > ? ORDER BY nct_id "
                "LIMIT 500", (after,)
            ).fetchall()
            if not rows:
                return
            for nct_id, record_json in rows:
                yield self._decode(nct_id, record_json)
            after = rows[-1][0]

    def source_copies(self, nct_ids: Iterable[str], source: str) -> dict[str, Trial]:
        """The last copy from ``source`` ("registry", "listing") of each of these trials that
        has one: kept beside a merged record, else the record itself when it is that copy."""
        wanted = json.dumps(list(nct_ids))
        if self.schema_version >= 5:
            sql = ("SELECT t.nct_id, coalesce(s.record, t.record_json) FROM trials t LEFT JOIN "
                   "trial_sources s ON s.trial = t.nct_id AND s.source = ? WHERE t.nct_id IN "
                   "(SELECT value FROM json_each(?)) AND (s.record IS NOT NULL OR "
                   "t.source_kind = ?)")
            params: tuple[str, ...] = (source, wanted, source)
        else:  # a store read as it is: no copies kept beside the records
            sql = ("SELECT nct_id, record_json FROM trials WHERE nct_id IN (SELECT value FROM "
                   "json_each(?)) AND source_kind = ?")
            params = (wanted, source)
        return {nct: self._decode(nct, record) for nct, record in self._read(sql, params)}

    def get_raw(self, nct_id: str) -> str | None:
        """The registry's JSON text as received for the stored record, if kept."""
        row = self._read("SELECT raw_json FROM trials WHERE nct_id = ?", (nct_id,)).fetchone()
        return None if row is None else row[0]

    def trial_ids(self) -> list[str]:
        return [r[0] for r in self._read("SELECT nct_id FROM trials ORDER BY nct_id")]

    def stored_ids(self, nct_ids: Iterable[str]) -> set[str]:
        """Which of these trials the store holds."""
        wanted = json.dumps(list(nct_ids))
        return {r[0] for r in self._read(
            "SELECT nct_id FROM trials WHERE nct_id IN (SELECT value FROM json_each(?))",
            (wanted,))}

    def counts(self) -> tuple[int, int]:
        """(trials, sites) held."""
        trials = self._read("SELECT count(*) FROM trials").fetchone()[0]
        sites = self._read("SELECT count(*) FROM sites").fetchone()[0]
        return int(trials), int(sites)

    # -- positions decided by another version ---------------------------------------------

    def placed_otherwise_count(self, version: str) -> int | None:
        """How many stored trials were placed by another version of the placing rules and
        gazetteer than ``version`` (`geocode.placing_version`), or never stamped with one. A
        short read of the `trials_placed_by` index (nothing when every trial is current);
        None when the store has no such index (an older schema read as it is), where
        counting would mean reading every record."""
        if not self._has_placed_by_index():
            return None
        counts = (f"(SELECT count(*) FROM trials WHERE {w})" for w in _OTHER_PLACING)
        row = self._read(f"SELECT {' + '.join(counts)}", (version, version)).fetchone()
        return int(row[0])

    def trials_placed_otherwise(
        self, version: str, *, batch: int = 500,
        on_unreadable: Callable[[StoreError], None] | None = None,
    ) -> Iterator[list[Trial]]:
        """The stored trials placed by another version than ``version`` (or never stamped),
        ``batch`` at a time, as they are when each batch is read: the caller may rewrite a
        batch before asking for the next. Which trials is decided once, at the start (their
        row numbers, 8 bytes each). A record that cannot be decoded goes to
        ``on_unreadable`` (default: raised)."""
        rows = array("q")
        for where in _OTHER_PLACING:
            rows.extend(r[0] for r in self._read(
                f"SELECT rowid FROM trials WHERE {where}", () if "?" not in where else (version,)))
        for start in range(0, len(rows), batch):
            found = []
            for nct_id, record_json in self._read(
                    "SELECT t.nct_id, t.record_json FROM json_each(?) j CROSS JOIN trials t ON "
                    "t.rowid = j.value", (json.dumps(rows[start:start + batch].tolist()),)):
                try:
                    found.append(self._decode(nct_id, record_json))
                except StoreError as exc:
                    if on_unreadable is None:
                        raise
                    on_unreadable(exc)
            yield found

    def _has_placed_by_index(self) -> bool:
        if not self._placed_by_indexed:
            self._placed_by_indexed = self._read(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = "
                "'trials_placed_by'").fetchone() is not None
        return self._placed_by_indexed

    def save_trial(
        self,
        trial: Trial,
        raw_json: str | None,
        *,
        sync_id: int | None = None,
        now: str | None = None,
    ) -> SaveResult:
        """Store ``trial`` in one transaction and record what changed since the previous
        copy from the same source. Nothing is written when the content is unchanged."""
        return self.save_prepared(prepare_trial(trial, raw_json), sync_id=sync_id, now=now)

    def save_prepared(
        self, prepared: PreparedTrial, *, sync_id: int | None = None, now: str | None = None
    ) -> SaveResult:
        """``save_trial`` for a trial already turned into rows by `prepare_trial`."""
        return self.save_page([prepared], sync_id=sync_id, now=now)[0]

    def save_page(
        self,
        prepared: Sequence[PreparedTrial],
        *,
        sync_id: int | None = None,
        now: str | None = None,
        query: str | None = None,
        members: Iterable[str] = (),
    ) -> list[SaveResult]:
        """Save several trials in ONE transaction (a search page): all of them, or, if
        anything fails, none. ``members``: identifiers the search ``query`` returned on this
        page, remembered in the same transaction."""
        now = now or utc_now()
        db = self._db
        nct = prepared[0].nct_id if len(prepared) == 1 else None
        with self._writing(nct, settle=True):
            results = [self._save_one(p, sync_id, now) for p in prepared]
            if query is not None:
                db.executemany("INSERT OR IGNORE INTO query_trials (query, trial) VALUES (?, ?)",
                               [(query, m) for m in members])
        return results

    def _write_error(self, exc: sqlite3.Error, nct: str | None = None) -> StoreError:
        if nct is not None:
            return StoreError(_("Cannot write {nct} to the store at {path}: {reason}").format(
                nct=nct, path=self._label, reason=exc))
        return StoreError(_("Cannot write to the store at {path}: {reason}").format(
            path=self._label, reason=exc))

    def _save_one(self, prepared: PreparedTrial, sync_id: int | None, now: str) -> SaveResult:
        db = self._db
        nct = prepared.nct_id
        source = prepared.history
        previous = db.execute(
            "SELECT t.content_hash, t.overall_status, t.source_kind, s.content_hash "
            "FROM trials t LEFT JOIN trial_sources s ON s.trial = t.nct_id AND s.source = ? "
            "WHERE t.nct_id = ?",
            (source, nct),
        ).fetchone()
        # Unchanged: the same record, and the same copy from this source (a page whose
        # change the merge hides still has its own history).
        if previous is not None and previous[0] == prepared.content_hash and (
            previous[3] == prepared.copy_hash or (previous[3] is None and previous[2] == source)
        ):
            return SaveResult("unchanged")
        old_basis = db.execute(
            "SELECT basis FROM trial_sources WHERE trial = ? AND source = ?",
            (nct, source),
        ).fetchone()
        if previous is None:
            changes = [Change(now, nct, ChangeKind.TRIAL_ADDED, new=_stated(prepared),
                              sync_id=sync_id, source=source)]
        elif old_basis is not None:
            changes = diff_bases(json.loads(old_basis[0]), json.loads(prepared.basis),
                                 nct=nct, at=now, sync_id=sync_id, source=source)
        else:
            # No basis: a record stored before schema 4 (compare the recorded status only),
            # or the first copy from this source (nothing of its own to compare with).
            changes = []
            if previous[2] == source and previous[1] != prepared.status:
                changes.append(Change(now, nct, ChangeKind.TRIAL_STATUS_CHANGED,
                                      old=previous[1], new=prepared.status, sync_id=sync_id,
                                      source=source))
        self._write(prepared, now, previous is not None)
        self._record(changes)
        return SaveResult("new" if previous is None else "updated", tuple(changes))

    def _record(self, changes: Iterable[Change]) -> None:
        self._db.executemany(
            "INSERT INTO changes (sync_id, trial, at, source, kind, site_key, facility, old, "
            "new) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.sync_id, c.nct_id, c.at, c.source, c.kind.value, c.site_key, c.facility,
              c.old, c.new) for c in changes],
        )

    def _write(
        self, prepared: PreparedTrial, now: str, replacing: bool, *, in_place: bool = False
    ) -> None:
        """Write the rows of a trial (inside the caller's transaction). ``in_place``: keep the
        stored raw JSON and fetch time (a record rewritten in place, not fetched again)."""
        db = self._db
        nct = prepared.nct_id
        if replacing:
            db.execute("DELETE FROM contacts WHERE trial = ?", (nct,))
            db.execute("DELETE FROM sites WHERE trial = ?", (nct,))
            if prepared.basis:
                # Another source's copy that was the stored record itself is about to be
                # replaced by this source's (or a merge): it stays that source's own copy.
                db.execute(
                    "UPDATE trial_sources SET record = (SELECT record_json FROM trials WHERE "
                    "nct_id = ?) WHERE trial = ? AND source != ? AND record IS NULL",
                    (nct, nct, prepared.history),
                )
        raw, fetched_at = prepared.raw_json, now
        if in_place:
            kept = db.execute("SELECT raw_json, fetched_at FROM trials WHERE nct_id = ?",
                              (nct,)).fetchone()
            if kept is not None:
                raw, fetched_at = kept
        # An update of the row, not INSERT OR REPLACE: replacing the row would delete (ON
        # DELETE CASCADE) the other sources' copies in `trial_sources`, and their history. (Nor
        # an upsert: its conflict clause would override the search index triggers' own.)
        values = (prepared.title, prepared.status, prepared.last_update, prepared.as_of,
                  prepared.source, prepared.content_hash, fetched_at, prepared.record_json,
                  raw, prepared.search_text, prepared.placed_by, nct)
        if not replacing or not db.execute(
            "UPDATE trials SET title = ?, overall_status = ?, last_update = ?, as_of = ?, "
            "source_kind = ?, content_hash = ?, fetched_at = ?, record_json = ?, raw_json = ?, "
            "search_text = ?, placed_by = ? WHERE nct_id = ?", values,
        ).rowcount:
            db.execute(
                "INSERT INTO trials (title, overall_status, last_update, as_of, source_kind, "
                "content_hash, fetched_at, record_json, raw_json, search_text, placed_by, "
                "nct_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values,
            )
        db.executemany(
            "INSERT INTO sites (trial, position, site_key, facility, city, state, zip, country, "
            "status, site_status, latitude, longitude, precision, coordinate_source, "
            "listing_only, standing, recruiting_until, matched, unplaced_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            prepared.site_rows,
        )
        db.executemany(
            "INSERT INTO contacts (trial, site_position, scope, name, role, title, phone, email) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            prepared.contact_rows,
        )
        if prepared.basis:
            copy = prepared.copy
            db.execute(
                "INSERT OR REPLACE INTO trial_sources (trial, source, content_hash, fetched_at, "
                "basis, record) VALUES (?, ?, ?, ?, ?, ?)",
                (nct, prepared.history, prepared.copy_hash, fetched_at, prepared.basis,
                 copy.record_json if copy is not None else None),
            )

    def rewrite_trials(self, trials: Iterable[Trial], *, wait: bool = True) -> int:
        """Rewrite stored records in place, in one transaction (positions decided again):
        the records and their derived rows change; the raw JSON, fetch time, bases and
        history stay. Returns how many were rewritten (stored trials only). Without
        ``wait``, a store another process is writing is left alone (0)."""
        db = self._db
        done = 0
        with self._writing(wait=wait, settle=True) as began:
            if not began:
                return 0
            for trial in trials:
                if db.execute("SELECT 1 FROM trials WHERE nct_id = ?",
                              (trial.nct_id,)).fetchone() is None:
                    continue
                self._write(prepare_trial(trial, None, basis=""), utc_now(), True,
                            in_place=True)
                done += 1
        return done

    # -- the incremental sync's memory --------------------------------------------------

    def query_state(self, key: str) -> QueryState | None:
        if not self._has_table("sync_queries"):
            return None
        row = self._read(f"{_QUERY_SELECT} WHERE q.key = ?", (key,)).fetchone()
        return None if row is None else _query_state(row)

    def queries(self) -> list[QueryState]:
        """Every query the syncs remember, most recently successful first."""
        if not self._has_table("sync_queries"):
            return []
        return [_query_state(r) for r in self._read(
            f"{_QUERY_SELECT} ORDER BY q.last_success IS NULL, q.last_success DESC, q.key")]

    def record_queries(
        self, asked: Iterable[tuple[QueryState, str | None, bool]], sync_id: int
    ) -> None:
        """Remember, in one transaction, that run ``sync_id`` asked these queries: each as
        (query, the run's start when the query succeeded else None, full refresh or not);
        a success also replaces the query's list of studies to ask again (``retry``)."""
        with self._writing():
            for state, success_at, full in asked:
                self._db.execute(
                    "INSERT INTO sync_queries (key, kind, condition, country, statuses, "
                    "nct_id, last_run_id) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO "
                    "UPDATE SET last_run_id = excluded.last_run_id",
                    (state.key, state.kind, state.condition, state.country,
                     ",".join(state.statuses) or None, state.nct_id, sync_id))
                if success_at is not None:
                    self._db.execute(
                        "UPDATE sync_queries SET last_success = ?, last_success_id = ?, "
                        "last_full = CASE WHEN ? THEN ? ELSE last_full END, retry = ? "
                        "WHERE key = ?",
                        (success_at, sync_id, full, success_at,
                         ",".join(state.retry) or None, state.key))

    def end_full_refresh(
        self,
        query: str,
        seen: set[str],
        *,
        day: str,
        statuses: Sequence[str] = (),
        sync_id: int | None = None,
        now: str | None = None,
    ) -> list[str]:
        """After a full refresh of search ``query`` that returned ``seen``: the trials it
        returned before and not now leave the query; those that no other query holds are
        marked "not seen since ``day``" (no longer called recruiting), with a change each,
        unless their stored status already explains their absence (it is not among the
        query's ``statuses``). One transaction; returns the marked identifiers."""
        now = now or utc_now()
        db = self._db
        marked: list[str] = []
        with self._writing(settle=True):
            before = {r[0] for r in db.execute(
                "SELECT trial FROM query_trials WHERE query = ?", (query,))}
            gone = sorted(before - seen)
            db.executemany("DELETE FROM query_trials WHERE query = ? AND trial = ?",
                           [(query, n) for n in gone])
            for nct in gone:
                held = db.execute(
                    "SELECT 1 FROM query_trials WHERE trial = ? UNION ALL SELECT 1 FROM "
                    "sync_queries WHERE nct_id = ? LIMIT 1", (nct, nct)).fetchone()
                if held is None and self._mark_not_seen(nct, day, statuses, sync_id, now):
                    marked.append(nct)
        return marked

    def _mark_not_seen(self, nct: str, day: str, statuses: Sequence[str], sync_id: int | None,
                       now: str) -> bool:
        db = self._db
        row = db.execute("SELECT record_json, source_kind, overall_status FROM trials "
                         "WHERE nct_id = ?", (nct,)).fetchone()
        if row is None or (statuses and row[2] not in statuses):
            return False
        trial = self._decode(nct, row[0])
        if trial.not_seen_since:
            return False
        marked = trial.replace(not_seen_since=day)
        basis_row = db.execute("SELECT basis, record FROM trial_sources WHERE trial = ? AND "
                               "source = ?", (nct, row[1])).fetchone()
        basis = json.loads(basis_row[0]) if basis_row else trial_basis(trial)
        basis["n"] = day
        own = None  # a merged record: the registry's own copy is marked too
        if basis_row is not None and basis_row[1] is not None:
            own = self._decode(nct, basis_row[1]).replace(not_seen_since=day)
        self._write(prepare_trial(marked, None, basis=_DUMPS(basis), copy_of=own), now, True,
                    in_place=True)
        self._record([Change(now, nct, ChangeKind.TRIAL_NOT_SEEN, new=day, sync_id=sync_id,
                             source=row[1])])
        return True

    def query_members(self, query: str) -> set[str]:
        if not self._has_table("query_trials"):
            return set()
        return {r[0] for r in self._read("SELECT trial FROM query_trials WHERE query = ?",
                                         (query,))}

    # -- history -----------------------------------------------------------------------

    def changes(self, nct_id: str | None = None, since: date | str | None = None) -> list[Change]:
        """Recorded changes, oldest first; ``since`` is a date or an ISO date/time, inclusive."""
        source = "source" if self.schema_version >= 4 else "'registry'"
        sql = (f"SELECT at, trial, kind, site_key, facility, old, new, sync_id, {source} "
               "FROM changes")
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
        known = {k.value for k in ChangeKind}
        return [
            Change(r[0], r[1], ChangeKind(r[2]), r[3], r[4], r[5], r[6], r[7], r[8])
            for r in self._read(sql, params) if r[2] in known
        ]

    # -- sync runs ---------------------------------------------------------------------

    def start_sync(self, now: str | None = None, *, arguments: dict[str, Any] | None = None,
                   pid: int | None = None) -> int:
        with self._writing():
            cursor = self._db.execute(
                "INSERT INTO syncs (started, arguments, pid) VALUES (?, ?, ?)",
                (now or utc_now(), _DUMPS(arguments or {}), pid))
        assert cursor.lastrowid is not None
        self._search_defer()
        return cursor.lastrowid

    def finish_sync(self, sync_id: int, outcome: str, now: str | None = None, *,
                    counts: dict[str, int] | None = None, note: str | None = None) -> None:
        with self._writing():
            self._db.execute(
                "UPDATE syncs SET finished = ?, outcome = ?, counts = ?, note = ? WHERE id = ?",
                (now or utc_now(), outcome, _DUMPS(counts or {}), note, sync_id),
            )
            self._search_sync_finished()

    def abandon_unfinished(self, now: str | None = None) -> int:
        """Mark every run that never finished as aborted. Call it only while holding the
        sync lock, or having seen it free: such a run died (killed, out of memory)."""
        with self._writing():
            cursor = self._db.execute(
                "UPDATE syncs SET finished = ?, outcome = 'aborted', note = coalesce(note, ?) "
                "WHERE finished IS NULL",
                (now or utc_now(), "the process ended without finishing the run"))
            if cursor.rowcount and self._search_ready and not self._search_deferring:
                self._search_fold()  # what the dead run wrote goes into the search tree
        return cursor.rowcount

    def runs(self, limit: int = 10) -> list[SyncRun]:
        """The latest sync runs, newest first."""
        extra = ("arguments, counts, pid, note" if self.schema_version >= 4
                 else "NULL, NULL, NULL, NULL")
        rows = self._read(f"SELECT id, started, finished, outcome, {extra} FROM syncs "
                          "ORDER BY id DESC LIMIT ?", (limit,))
        return [_sync_run(r) for r in rows]

    def last_success(self) -> SyncRun | None:
        """The most recent run that succeeded completely."""
        extra = ("arguments, counts, pid, note" if self.schema_version >= 4
                 else "NULL, NULL, NULL, NULL")
        row = self._read(f"SELECT id, started, finished, outcome, {extra} FROM syncs WHERE "
                         "outcome = 'ok' ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _sync_run(row)

    def last_sync(self) -> tuple[int, str, str | None, str | None] | None:
        """(id, started, finished, outcome) of the latest sync, if any."""
        runs = self.runs(1)
        if not runs:
            return None
        run = runs[0]
        return run.id, run.started, run.finished, run.outcome

    # -- geocode cache -----------------------------------------------------------------

    def geocode_get(self, key: str) -> CachedPosition | None:
        row = self._read(
            "SELECT key, latitude, longitude, precision, source, fetched_at, raw "
            "FROM geocode_cache WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else CachedPosition(*row)

    def geocode_holds_positions(self) -> bool:
        """Whether the geocode cache holds any position (not only misses)."""
        return self._read("SELECT 1 FROM geocode_cache WHERE latitude IS NOT NULL "
                          "LIMIT 1").fetchone() is not None

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
        with self._writing():
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
        """Every stored site as (nct_id, site); optionally only some statuses, or only inside
        a (min_lat, min_lon, max_lat, max_lon) box."""
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
        for r in self.stream(sql, params):
            yield r[0], StoredSite(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], Status(r[8]),
                Status(r[9]) if r[9] else None, r[10], r[11], r[12], r[13], bool(r[14]),
            )

    # -- plumbing ----------------------------------------------------------------------

    def _read(self, sql: str, params: Iterable[Any] = ()) -> Rows:
        """The rows of a query, all read now: a damaged store fails here, as one StoreError
        (exit 1), whether SQLite notices at the first step or at a later one."""
        try:
            return Rows(self._db.execute(sql, tuple(params)).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(_("Cannot read the store at {path}: {reason}").format(
                path=self._label, reason=exc)) from None

    def read(self, sql: str, params: Iterable[Any] = ()) -> Rows:
        """Rows of a read-only query over the store's tables (for inspection: tests, a
        maintainer's script); errors become StoreError."""
        return self._read(sql, params)

    def stream(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Any]:
        """The rows of a query one at a time (memory stays flat over a big table); an error
        at any step becomes StoreError."""
        try:
            cursor = self._db.execute(sql, tuple(params))
            while rows := cursor.fetchmany(1000):
                yield from rows
        except sqlite3.Error as exc:
            raise StoreError(_("Cannot read the store at {path}: {reason}").format(
                path=self._label, reason=exc)) from None

    @contextmanager
    def _writing(self, nct: str | None = None, *, wait: bool = True,
                 settle: bool = False) -> Iterator[bool]:
        """One write transaction: BEGIN IMMEDIATE, then COMMIT (after the search index
        settles, with ``settle``), or ROLLBACK on any exception; an SQLite error anywhere is
        one StoreError (naming ``nct``). Without ``wait``, a store another process is writing
        is not waited for: the body gets False and nothing is begun."""
        db = self._db
        try:
            began = True
            if wait:
                db.execute("BEGIN IMMEDIATE")
            else:
                db.execute("PRAGMA busy_timeout = 0")
                try:
                    db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    began = False
                finally:
                    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not began:
                yield False
                return
            try:
                yield True
                if settle:
                    self._search_settle()
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._write_error(exc, nct) from None


class Rows(list[Any]):
    """A query's rows, already read, with the cursor's ``fetchone``/``fetchall``."""

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


_OTHER_PLACING = ("placed_by IS NULL", "placed_by < ?", "placed_by > ?")
"""Trials placed by another version than the parameter, as three ranges of the
`trials_placed_by` index (a `!=` or an OR would read the whole table)."""

_QUERY_SELECT = (
    "SELECT q.key, q.kind, q.condition, q.country, q.statuses, q.nct_id, q.last_run_id, "
    "q.last_success, q.last_success_id, q.last_full, "
    "(SELECT count(*) FROM query_trials m WHERE m.query = q.key), q.retry FROM sync_queries q"
)


def _query_state(row: Sequence[Any]) -> QueryState:
    return QueryState(row[0], row[1], row[2], row[3],
                      tuple(row[4].split(",")) if row[4] else (), row[5], row[6], row[7],
                      row[8], row[9], int(row[10]), tuple(row[11].split(",")) if row[11] else ())


def _sync_run(row: Sequence[Any]) -> SyncRun:
    def loads(text: str | None) -> dict[str, Any]:
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    return SyncRun(row[0], row[1], row[2], row[3], loads(row[4]), loads(row[5]), row[6],
                   row[7])


SiteInsert = tuple[Any, ...]
"""A row of `sites` as inserted: (trial, position, site_key, facility, city, state, zip,
country, status, site_status, latitude, longitude, precision, coordinate_source,
listing_only, standing, recruiting_until, matched, unplaced_reason)."""


class PreparedTrial(NamedTuple):
    """A trial turned into the rows the store writes, by `prepare_trial` (plain values)."""

    nct_id: str
    title: str
    status: str | None
    last_update: str | None
    as_of: str | None
    source: str
    """The record's source kind ("registry", "listing"): whose history it continues."""
    content_hash: str
    record_json: str
    raw_json: str | None
    site_rows: list[SiteInsert]
    contact_rows: list[tuple[Any, ...]]
    search_text: str = ""
    placed_by: str | None = None
    basis: str = ""
    """The source's own copy as history compares it (`trial_basis`), compact JSON."""
    copy: SourceCopy | None = None
    """Of a record that merges two sources' copies (`merge.merge`): the copy of the source
    this save comes from, kept beside the record; None when the record is that copy."""

    @property
    def history(self) -> str:
        """The source this save is a new copy from: whose history it continues."""
        return self.copy.source if self.copy is not None else self.source

    @property
    def copy_hash(self) -> str:
        """The content hash of that source's copy."""
        return self.copy.content_hash if self.copy is not None else self.content_hash


class SourceCopy(NamedTuple):
    """One source's own copy of a trial whose stored record merges it with another's."""

    source: str
    record_json: str
    content_hash: str


_fold = lru_cache(maxsize=16384)(fold)


def prepare_trial(
    trial: Trial,
    raw_json: str | None = None,
    *,
    today: date | None = None,
    basis: str | None = None,
    copy_of: Trial | None = None,
) -> PreparedTrial:
    """The rows of ``trial`` for `Store.save_prepared` (pure: no store needed). Standings are
    the status rule's answer on ``today`` (default: `clock.today()`). History compares
    the source's own copy (``copy_of``, else ``trial``: placing changes nothing it
    compares), or the given ``basis`` text as is. ``copy_of``: when ``trial`` merges two
    sources' copies (`merge.merge`), the copy of the source this save comes from: its
    history continues, and the store keeps the copy beside the record."""
    from trialfinder.recruitment import site_recruitment, trial_recruitment, verification_expires

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
            nct, position, _site_key(s.facility, s.city, s.country),
            s.facility, s.city, s.state, s.zip, s.country,
            _value(answer.status) or _value(Status.UNKNOWN),
            _value(s.status),
            s.latitude, s.longitude, s.precision.value, s.coordinate_source,
            int(s.listing_only),
            answer.standing.value, until, ",".join(s.matched) or None, s.unplaced_reason,
        ))
        contact_rows += [
            (nct, position, "site", c.name, c.role, c.title, c.phone, c.email)
            for c in s.contacts
        ]
    if basis is None:
        basis = _DUMPS(trial_basis(copy_of or trial))
    copy = None
    if copy_of is not None:
        copy = SourceCopy(copy_of.source.kind, *_serialise(copy_of))
    return PreparedTrial(
        nct, trial.title, _value(trial.status), trial.last_update, trial.source.as_of,
        trial.source.kind, content_hash, record_json, raw_json, site_rows, contact_rows,
        searchable_text(trial), trial.placed_by, basis, copy,
    )


def _stated(prepared: PreparedTrial) -> str | None:
    """The trial's status as its source states it: the registry value, else the page's own
    words ("Open") kept in the basis."""
    if prepared.status is not None or not prepared.basis:
        return prepared.status
    words = json.loads(prepared.basis).get("w")
    return words if isinstance(words, str) else None


def _site_key(facility: str, city: str, country: str) -> str:
    """`Site.key()`, with the folding cached (sites repeat cities and countries)."""
    return f"{_fold(facility)}|{_fold(city)}|{_fold(country)}"


# -- history: what a source recorded, compared with its previous copy ----------------------


def trial_basis(trial: Trial) -> dict[str, Any]:
    """What history compares of one source's copy of a trial: its recorded status, whether a
    full refresh lost it, its central contacts, and each site it lists (not the sites only a
    listing names) with the site's own recorded status and contacts.

    {"s": status, "n": not_seen_since, "c": contacts,
     "sites": [[key, facility, own status, country, contacts], …]}; a contact is
    [name, role, phone, e-mail]. A listing page's copy, or a record whose status is in its
    own words, also has "w": those words ("Open", or None when the page states none).
    """
    basis: dict[str, Any] = {
        "s": _value(trial.status),
        "n": trial.not_seen_since,
        "c": [_contact_basis(c) for c in trial.central_contacts],
        "sites": [
            [_site_key(s.facility, s.city, s.country), s.facility, _value(s.status), s.country,
             [_contact_basis(c) for c in s.contacts]]
            for s in trial.sites if not s.listing_only
        ],
    }
    if trial.status_text is not None or trial.source.kind == "listing":
        basis["w"] = trial.status_text
    return basis


def _contact_basis(c: Contact) -> list[str | None]:
    return [c.name, c.role, c.phone, c.email]


def diff_bases(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    nct: str,
    at: str,
    sync_id: int | None = None,
    source: str = "registry",
) -> list[Change]:
    """The recorded changes between two bases of one source (`trial_basis`): the trial's
    status, its being seen by the registry, its central contacts, sites added or removed,
    sites' own recorded statuses, and their contacts (phone numbers compared as numbers)."""
    changes: list[Change] = []

    def change(kind: ChangeKind, key: str | None = None, facility: str | None = None,
               before: str | None = None, after: str | None = None) -> None:
        changes.append(Change(at, nct, kind, key, facility, before, after, sync_id, source))

    before_status, after_status = old.get("s"), new.get("s")
    if "w" in old and "w" in new:  # both keep the status's own words (older bases do not)
        before_status, after_status = before_status or old["w"], after_status or new["w"]
    if before_status != after_status:
        change(ChangeKind.TRIAL_STATUS_CHANGED, before=before_status, after=after_status)
    if old.get("n") and not new.get("n"):
        change(ChangeKind.TRIAL_SEEN_AGAIN, before=old["n"])
    elif new.get("n") and not old.get("n"):
        change(ChangeKind.TRIAL_NOT_SEEN, after=new["n"])
    contacts = _contacts_change(old.get("c"), new.get("c"), None)
    if contacts is not None:
        change(ChangeKind.TRIAL_CONTACT_CHANGED, before=contacts[0], after=contacts[1])
    # A key may repeat (sites without facility names in one city): pair them in order.
    old_by_key: dict[str, list[list[Any]]] = {}
    for site in old.get("sites", ()):
        old_by_key.setdefault(site[0], []).append(site)
    contact_changes: list[tuple[str, str, tuple[str | None, str | None]]] = []
    for site in new.get("sites", ()):
        key, facility, status, country, site_contacts = site
        bucket = old_by_key.get(key)
        if not bucket:
            change(ChangeKind.SITE_ADDED, key, facility, after=status)
            continue
        before = bucket.pop(0)
        if before[2] != status:
            change(ChangeKind.SITE_STATUS_CHANGED, key, facility, before[2], status)
        contacts = _contacts_change(before[4], site_contacts, country)
        if contacts is not None:
            contact_changes.append((key, facility, contacts))
    for bucket in old_by_key.values():
        for before in bucket:
            change(ChangeKind.SITE_REMOVED, before[0], before[1], before=before[2])
    for key, facility, (before_text, after_text) in contact_changes:
        change(ChangeKind.SITE_CONTACT_CHANGED, key, facility, before_text, after_text)
    return changes


def _contacts_change(
    old: list[list[Any]] | None, new: list[list[Any]] | None, country: str | None
) -> tuple[str | None, str | None] | None:
    """(before, after) texts of the contacts that differ, or None when none does. A person
    is matched by name (case, accents and punctuation aside: `text.fold`); a difference is
    a person added or removed, or their role, phone number (as a number) or e-mail
    changed."""
    if old is None or new is None:
        return None
    old_by_name: dict[str, list[list[Any]]] = {}
    for c in old:
        old_by_name.setdefault(_fold(c[0]), []).append(c)
    before: list[str] = []
    after: list[str] = []
    for c in new:
        bucket = old_by_name.get(_fold(c[0]))
        if not bucket:
            after.append(_contact_text(c))
            continue
        previous = bucket.pop(0)
        if (previous[1] != c[1] or not same_phone(previous[2], c[2], country)
                or (previous[3] or "").strip().lower() != (c[3] or "").strip().lower()):
            before.append(_contact_text(previous))
            after.append(_contact_text(c))
    before += [_contact_text(c) for bucket in old_by_name.values() for c in bucket]
    if not before and not after:
        return None
    return "; ".join(before) or None, "; ".join(after) or None


def _contact_text(contact: Sequence[str | None]) -> str:
    """'QUESNEL (CONTACT): 03 22 45 59 14, quesnel@chu.fr'."""
    name, role, phone, email = contact
    who = f"{name} ({role})" if role else str(name)
    reach = ", ".join(p for p in (phone, email) if p)
    return f"{who}: {reach}" if reach else who


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
        raise BadInput(_("'{since}' is not a date (expected YYYY-MM-DD)").format(
            since=since)) from None
