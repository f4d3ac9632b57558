"""Trials near a place across the whole store, each ranked by its nearest matching site.

How it stays fast on a million sites
------------------------------------
An R*Tree virtual table (`search_site_rtree`) holds one point per placed row of `sites`
(id = the row's rowid). SQL triggers on `sites` keep it in step with every write the store
makes, so it is never rebuilt after the first time. A query looks in a bounding box around the
patient that grows (×2, ×4 when empty) until it holds ``limit`` trials whose nearest matching
site lies within the box's inscribed circle of radius r: every site outside the box is farther
than r, so those trials and their distances are exact. The distances themselves are computed in
Python with `nearest.haversine_km`, the function the rest of trialfinder uses.

Conditions are matched on a folded text per trial (`search_trial_text`: conditions, keywords,
titles, acronym, accents and case removed). Folding needs Python, so a trigger on `trials`
only marks the trial as dirty; the next search refolds dirty trials (and, when the store cannot
be written, folds them on the fly). When the condition matches few trials, their sites are
ranked directly from the `sites` primary key instead of growing the box.

Everything here is created idempotently by `ensure_index`, which store.py does not need to
know about. When the store cannot be written (read-only file, another writer), search falls
back to the same bounding boxes read by scanning `sites`: slower, same answer.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trialfinder.errors import BadInput, StoreError
from trialfinder.models import Status, Trial
from trialfinder.nearest import EARTH_RADIUS_KM, haversine_km
from trialfinder.text import fold

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer, Resolution
    from trialfinder.store import Store

INDEX_VERSION = "2"
HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM
INITIAL_RADIUS_KM = 16.0
BRUTE_FORCE_SITES = 20_000
"""When the condition's trials hold at most this many sites, rank them all directly."""
STATUS_CHOICES = ("recruiting", "all")

_RTREE = "search_site_rtree"
_TEXT = "search_trial_text"
_DIRTY = "search_trial_dirty"
_META = "search_meta"
_TRIGGERS = (
    "search_sites_ai", "search_sites_ad", "search_sites_au",
    "search_trials_ai", "search_trials_au", "search_trials_ad",
)
_OBJECTS = (_RTREE, _TEXT, _DIRTY, _META, *_TRIGGERS)

_CREATE = (
    # Auxiliary columns (+…) carry what ranking needs, so a query never leaves the R*Tree
    # (whose pages are clustered in space) until it fetches the few winning rows of `sites`.
    f"CREATE VIRTUAL TABLE {_RTREE} USING rtree(id, min_lat, max_lat, min_lon, max_lon, "
    "+trial, +status, +latitude, +longitude, +position)",
    f"CREATE TABLE {_TEXT} (nct_id TEXT PRIMARY KEY, folded TEXT NOT NULL) WITHOUT ROWID",
    f"CREATE TABLE {_DIRTY} (nct_id TEXT PRIMARY KEY) WITHOUT ROWID",
    f"CREATE TABLE {_META} (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
    f"""CREATE TRIGGER search_sites_ai AFTER INSERT ON sites
    WHEN new.latitude IS NOT NULL AND new.longitude IS NOT NULL BEGIN
        INSERT OR REPLACE INTO {_RTREE} VALUES (new.rowid, new.latitude, new.latitude,
            new.longitude, new.longitude, new.trial, new.status, new.latitude, new.longitude,
            new.position);
    END""",
    f"""CREATE TRIGGER search_sites_ad AFTER DELETE ON sites BEGIN
        DELETE FROM {_RTREE} WHERE id = old.rowid;
    END""",
    f"""CREATE TRIGGER search_sites_au AFTER UPDATE ON sites BEGIN
        DELETE FROM {_RTREE} WHERE id = old.rowid;
        INSERT OR REPLACE INTO {_RTREE}
            SELECT new.rowid, new.latitude, new.latitude, new.longitude, new.longitude,
                new.trial, new.status, new.latitude, new.longitude, new.position
            WHERE new.latitude IS NOT NULL AND new.longitude IS NOT NULL;
    END""",
    f"""CREATE TRIGGER search_trials_ai AFTER INSERT ON trials BEGIN
        INSERT OR IGNORE INTO {_DIRTY} VALUES (new.nct_id);
    END""",
    f"""CREATE TRIGGER search_trials_au AFTER UPDATE ON trials BEGIN
        INSERT OR IGNORE INTO {_DIRTY} VALUES (old.nct_id);
        INSERT OR IGNORE INTO {_DIRTY} VALUES (new.nct_id);
    END""",
    f"""CREATE TRIGGER search_trials_ad AFTER DELETE ON trials BEGIN
        INSERT OR IGNORE INTO {_DIRTY} VALUES (old.nct_id);
    END""",
)

# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteHit:
    """The site that places a trial in the ranking: its nearest matching site."""

    facility: str
    city: str
    state: str | None
    zip: str | None
    country: str
    status: Status
    """Effective status: the site's own, else the trial's."""
    status_from: str
    """"site" when the record gives the site's own status, else "trial"."""
    latitude: float
    longitude: float
    precision: str
    distance_km: float
    position: int
    """The site's index in the trial's record."""


@dataclass(frozen=True, slots=True)
class TrialHit:
    nct_id: str
    title: str
    status: Status | None
    """The trial's overall status as recorded."""
    as_of: str | None
    site: SiteHit


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    resolution: Resolution
    hits: tuple[TrialHit, ...]
    condition: str | None
    radius_km: float | None
    status: str
    trials_in_store: int
    trials_matching: int
    """Trials whose text matches the condition (all trials without a condition)."""
    stale: tuple[str, ...]
    """Identifiers of the hits whose record is more than six months old."""


# -- the index ----------------------------------------------------------------------------


def connection_of(store: Store) -> sqlite3.Connection:
    """The store's SQLite connection (the store owns it; we only read and keep our index)."""
    return store.connection


def index_ready(conn: sqlite3.Connection) -> bool:
    """True when every object of the search index exists and has this version."""
    names = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE name IN "
            f"({', '.join('?' for _ in _OBJECTS)})",
            _OBJECTS,
        )
    }
    if names != set(_OBJECTS):
        return False
    row = conn.execute(f"SELECT value FROM {_META} WHERE key = 'version'").fetchone()
    return row is not None and row[0] == INDEX_VERSION


def ensure_index(conn: sqlite3.Connection) -> bool:
    """Create and fill the search index if it is missing or outdated; True when usable.

    One transaction: either the whole index (tables, triggers, contents) exists or none of it.
    False when the store cannot be written (read-only, locked): callers then fall back.
    """
    if index_ready(conn):
        refresh_text(conn)
        return True
    return _complete_index(conn, partial=False)


def _write(conn: sqlite3.Connection, body: Callable[[], object]) -> bool:
    """Run ``body`` in one write transaction. False, with nothing written, when the store
    cannot be written now (another writer, a read-only file); any other error rolls back
    and propagates."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    try:
        body()
        conn.execute("COMMIT")
    except sqlite3.OperationalError:
        conn.execute("ROLLBACK")
        return False
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def _complete_index(
    conn: sqlite3.Connection,
    *,
    partial: bool,
    points_after: int | None = None,
    texts: dict[str, str] | None = None,
) -> bool:
    """Build the index in one transaction. ``partial``: an `IndexBuilder` already put some
    points in the R*Tree; keep those that still match `sites` exactly, add the rest. With
    ``points_after``, the points are known to be exactly the rows of `sites` up to that
    rowid: only the later rows are added. ``texts``: the searchable text of these trials,
    known to match their stored records (the others are folded here)."""
    def build() -> None:
        if index_ready(conn):  # another process may have built it meanwhile
            return
        rtree_kept = partial and _has_table(conn, _RTREE)
        if rtree_kept and points_after is not None:
            conn.execute(f"INSERT INTO {_RTREE} {_RTREE_ROWS} AND rowid > ?", (points_after,))
        elif rtree_kept:
            _reconcile_rtree(conn)
        if rtree_kept:
            for trigger in _TRIGGERS:
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            for name in (_TEXT, _DIRTY, _META):
                conn.execute(f"DROP TABLE IF EXISTS {name}")
        else:
            drop_index(conn, in_transaction=True)
        for statement in _CREATE[1 if rtree_kept else 0:]:
            conn.execute(statement)
        if not rtree_kept:
            conn.execute(f"INSERT INTO {_RTREE} {_RTREE_ROWS}")
        if texts:
            conn.executemany(f"INSERT INTO {_TEXT} SELECT nct_id, ? FROM trials "
                             "WHERE nct_id = ?", [(t, n) for n, t in texts.items()])
        conn.execute(f"INSERT INTO {_DIRTY} SELECT nct_id FROM trials WHERE nct_id NOT IN "
                     f"(SELECT nct_id FROM {_TEXT})")
        conn.execute(f"INSERT INTO {_META} VALUES ('version', ?)", (INDEX_VERSION,))
        _refold_dirty(conn)

    return _write(conn, build)


_RTREE_ROWS = (
    "SELECT rowid, latitude, latitude, longitude, longitude, trial, status, latitude, "
    "longitude, position FROM sites WHERE latitude IS NOT NULL AND longitude IS NOT NULL"
)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() \
        is not None


def _reconcile_rtree(conn: sqlite3.Connection) -> None:
    """Make the R*Tree hold exactly one point per placed row of `sites`, whatever happened
    to `sites` since the points were added (rows replaced, rowids reused). The ids are read
    out first: an R*Tree cannot be written while a query reads it."""
    stale = conn.execute(
        f"SELECT r.id FROM {_RTREE} r LEFT JOIN sites s ON s.rowid = r.id "
        "WHERE s.rowid IS NULL OR s.latitude IS NOT r.latitude "
        "OR s.longitude IS NOT r.longitude OR s.trial IS NOT r.trial "
        "OR s.status IS NOT r.status OR s.position IS NOT r.position"
    ).fetchall()
    conn.executemany(f"DELETE FROM {_RTREE} WHERE id = ?", stale)
    missing = conn.execute(
        f"{_RTREE_ROWS} AND NOT EXISTS (SELECT 1 FROM {_RTREE} r WHERE r.id = sites.rowid)"
    ).fetchall()
    conn.executemany(f"INSERT INTO {_RTREE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", missing)


class IndexBuilder:
    """Builds the search index of a store that has none while a sync fills it: slices of
    points go into the R*Tree in the moments the writer would otherwise wait (`step`), and
    `finish` completes the index in one transaction.

    Until `finish`, the index has no version row: searches ignore it, and a sync that dies
    leaves it to be rebuilt from scratch. `finish` trusts the points added so far only if
    `sites` has just grown since (no trial replaced, no other connection writing);
    otherwise it reconciles them with `sites` first.
    """

    STEP_ROWS = 4000
    """Points per step at most (about 25 ms), so the writer is soon back when the
    next batch arrives."""
    MIN_STEP_ROWS = 250
    """Fewer waiting points are left for later: tiny transactions cost more per point."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._after = 0  # sites rowids up to here are in the R*Tree
        self._only_grown = True
        self._texts: dict[str, str] = {}
        self.active = not index_ready(conn) and self._start()
        self._data_version = self._other_writes()

    def _other_writes(self) -> int:
        """Changes whenever another connection commits (``PRAGMA data_version``)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _start(self) -> bool:
        def rtree_only() -> None:
            drop_index(self._conn, in_transaction=True)
            self._conn.execute(_CREATE[0])

        return _write(self._conn, rtree_only)

    def saved(self, nct_id: str, text: str) -> None:
        """Tell the builder the searchable text of a trial just written (spares refolding)."""
        self._texts[nct_id] = text

    def replaced(self) -> None:
        """Tell the builder that a trial's sites were rewritten (their old points are stale)."""
        self._only_grown = False

    def step(self) -> bool:
        """Add the next slice of points; False when too few are waiting."""
        if not self.active:
            return False
        conn = self._conn
        last = conn.execute("SELECT max(rowid) FROM sites").fetchone()[0] or 0
        if last - self._after < min(self.MIN_STEP_ROWS, self.STEP_ROWS):
            return False
        upto = min(last, self._after + self.STEP_ROWS)
        added = _write(conn, lambda: conn.execute(
            f"INSERT OR REPLACE INTO {_RTREE} {_RTREE_ROWS} AND rowid > ? AND rowid <= ?",
            (self._after, upto),
        ))
        if not added:  # busy, or dropped/rebuilt by someone else: finish copes
            self.active = False
            return False
        self._after = upto
        return True

    def finish(self) -> bool:
        """Complete the index (or just refresh it if it is already there); True if usable."""
        if index_ready(self._conn):
            refresh_text(self._conn)
            return True
        alone = self._other_writes() == self._data_version
        trusted = self.active and self._only_grown and alone
        return _complete_index(self._conn, partial=self.active,
                               points_after=self._after if trusted else None,
                               texts=self._texts if alone else None)


def drop_index(conn: sqlite3.Connection, *, in_transaction: bool = False) -> None:
    """Remove every object of the search index (it is derived data: nothing is lost)."""
    statements = [f"DROP TRIGGER IF EXISTS {t}" for t in _TRIGGERS] + [
        f"DROP TABLE IF EXISTS {t}" for t in (_RTREE, _TEXT, _DIRTY, _META)
    ]
    if in_transaction:
        for statement in statements:
            conn.execute(statement)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def refresh_text(conn: sqlite3.Connection) -> None:
    """Refold the trials written since the last search; skipped when the store is busy or
    read-only (the dirty trials are then folded on the fly by `matching_trials`)."""
    if conn.execute(f"SELECT 1 FROM {_DIRTY} LIMIT 1").fetchone() is None:
        return
    _write(conn, lambda: _refold_dirty(conn))


def _refold_dirty(conn: sqlite3.Connection) -> None:
    dirty = [r[0] for r in conn.execute(f"SELECT nct_id FROM {_DIRTY}")]
    texts = dict(_trial_texts(conn, dirty))
    conn.executemany(f"DELETE FROM {_TEXT} WHERE nct_id = ?", [(n,) for n in dirty])
    conn.executemany(f"INSERT INTO {_TEXT} VALUES (?, ?)", list(texts.items()))
    conn.execute(f"DELETE FROM {_DIRTY}")


def _trial_texts(conn: sqlite3.Connection, ids: Sequence[str] | None) -> Iterable[tuple[str, str]]:
    """(nct_id, folded searchable text) for the given trials (all when ids is None)."""
    sql = (
        "SELECT nct_id, title, json_extract(record_json, '$.brief_title'), "
        "json_extract(record_json, '$.acronym'), json_extract(record_json, '$.conditions'), "
        "json_extract(record_json, '$.keywords') FROM trials"
    )
    params: tuple[Any, ...] = ()
    if ids is not None:
        sql += " WHERE nct_id IN (SELECT value FROM json_each(?))"
        params = (json.dumps(list(ids)),)
    for nct_id, title, brief, acronym, conditions, keywords in conn.execute(sql, params):
        yield nct_id, _folded_text(title, brief, acronym, _json_list(conditions),
                                   _json_list(keywords))


def searchable_text(trial: Trial) -> str:
    """What ``--condition`` is matched against (the store keeps it in `trials.search_text`):
    titles, acronym, conditions and keywords, folded."""
    return _folded_text(trial.title, trial.brief_title, trial.acronym, trial.conditions,
                        trial.keywords)


def _folded_text(
    title: Any, brief_title: Any, acronym: Any, conditions: Iterable[Any], keywords: Iterable[Any]
) -> str:
    parts = [title, brief_title, acronym, *conditions, *keywords]
    return " | ".join(fold(str(p)) for p in parts if p)


def _json_list(text: str | None) -> list[Any]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else [value]


def matching_trials(conn: sqlite3.Connection, condition: str, *, indexed: bool) -> set[str]:
    """Trials whose conditions, keywords or titles contain the condition (case and accents
    ignored)."""
    needle = fold(condition)
    if not needle:
        raise BadInput("--condition is empty")
    if not indexed:
        return {n for n, text in _trial_texts(conn, None) if needle in text}
    dirty = [r[0] for r in conn.execute(f"SELECT nct_id FROM {_DIRTY}")]
    found = {
        r[0]
        for r in conn.execute(f"SELECT nct_id FROM {_TEXT} WHERE instr(folded, ?) > 0", (needle,))
    }
    if dirty:
        found.difference_update(dirty)
        found.update(n for n, text in _trial_texts(conn, dirty) if needle in text)
    return found


# -- geometry -----------------------------------------------------------------------------

Box = tuple[float, float, float, float]
"""(min_lat, max_lat, min_lon, max_lon) in degrees."""

_MARGIN_DEG = 1e-7  # a site exactly r away must not fall out of the box by rounding


def boxes_around(latitude: float, longitude: float, radius_km: float) -> list[Box]:
    """Boxes (one, or two across the antimeridian) that contain every point within
    ``radius_km`` of the point: the bounding box of a spherical cap."""
    angle = radius_km / EARTH_RADIUS_KM
    if angle >= math.pi:
        return [(-90.0, 90.0, -180.0, 180.0)]
    dlat = math.degrees(angle) + _MARGIN_DEG
    lat_lo, lat_hi = latitude - dlat, latitude + dlat
    if lat_lo <= -90.0 or lat_hi >= 90.0 or angle >= math.pi / 2:
        return [(max(lat_lo, -90.0), min(lat_hi, 90.0), -180.0, 180.0)]
    ratio = math.sin(angle) / math.cos(math.radians(latitude))
    if ratio >= 1.0:
        return [(lat_lo, lat_hi, -180.0, 180.0)]
    dlon = math.degrees(math.asin(ratio)) + _MARGIN_DEG
    lon_lo, lon_hi = longitude - dlon, longitude + dlon
    if lon_lo < -180.0:
        return [(lat_lo, lat_hi, lon_lo + 360.0, 180.0), (lat_lo, lat_hi, -180.0, lon_hi)]
    if lon_hi > 180.0:
        return [(lat_lo, lat_hi, lon_lo, 180.0), (lat_lo, lat_hi, -180.0, lon_hi - 360.0)]
    return [(lat_lo, lat_hi, lon_lo, lon_hi)]


# -- ranking ------------------------------------------------------------------------------


Candidate = tuple[float, str, int, int]
"""(distance_km, nct_id, position, rowid of the site in `sites`)."""


def _best_per_trial(
    rows: Iterable[tuple[str, int, float, float, int]], latitude: float, longitude: float
) -> dict[str, Candidate]:
    """Each trial's nearest row (ties: the record's order) from (trial, position, latitude,
    longitude, rowid) rows."""
    best: dict[str, Candidate] = {}
    distances: dict[tuple[float, float], float] = {}  # sites share city centres
    for trial, position, lat, lon, rowid in rows:
        distance = distances.get((lat, lon))
        if distance is None:
            distance = distances[(lat, lon)] = haversine_km(latitude, longitude, lat, lon)
        current = best.get(trial)
        if current is None or (distance, position) < (current[0], current[2]):
            best[trial] = (distance, trial, position, rowid)
    return best


def nearest_trials(
    conn: sqlite3.Connection,
    latitude: float,
    longitude: float,
    *,
    limit: int = 10,
    radius_km: float | None = None,
    recruiting_only: bool = True,
    condition: str | None = None,
    use_index: bool | None = None,
) -> list[TrialHit]:
    """The ``limit`` trials nearest to a point, each by its nearest matching site.

    Matching sites: placed, recruiting (effective status RECRUITING) unless
    ``recruiting_only`` is False, within ``radius_km`` if given, of a trial whose text
    contains ``condition`` if given. Trials are ordered by distance, then identifier; within
    a trial, equally near sites by their order in the record.
    ``use_index`` None builds/uses the R*Tree when it can; False forces the fallback.
    """
    if limit < 1:
        raise BadInput("--limit must be at least 1")
    if radius_km is not None and not radius_km > 0:
        raise BadInput("--radius must be a positive number of kilometres")
    indexed = ensure_index(conn) if use_index is None else (use_index and ensure_index(conn))
    alias = "r" if indexed else "s"
    where: list[str] = []
    params: list[Any] = []
    if recruiting_only:
        where.append(f"+{alias}.status = ?")
        params.append(Status.RECRUITING.value)
    if condition is not None:
        matched = matching_trials(conn, condition, indexed=indexed)
        if not matched:
            return []
        ids = json.dumps(sorted(matched))
        if _few_sites(conn, ids):
            return _hits(conn, _rank_trials_directly(conn, ids, latitude, longitude,
                                                     recruiting_only), limit, radius_km)
        where.append(f"{alias}.trial IN (SELECT value FROM json_each(?))")
        params.append(ids)
    max_radius = min(radius_km or HALF_CIRCUMFERENCE_KM, HALF_CIRCUMFERENCE_KM)

    radius = min(INITIAL_RADIUS_KM, max_radius)
    while True:
        best: dict[str, Candidate] = {}
        for box in boxes_around(latitude, longitude, radius):
            found = _best_per_trial(
                _rows_in_box(conn, box, where, params, indexed=indexed), latitude, longitude
            )
            for trial, candidate in found.items():
                current = best.get(trial)
                if current is None or candidate[::2] < current[::2]:
                    best[trial] = candidate
        ranked = sorted(best.values())
        # Every site outside the box is farther than `radius`: trials whose nearest site in
        # the box is within `radius` are exact.
        if len(ranked) >= limit and ranked[limit - 1][0] <= radius:
            return _hits(conn, ranked, limit, radius_km)
        if radius >= max_radius:
            return _hits(conn, ranked, limit, radius_km)
        if len(ranked) >= limit:
            # The k-th trial seen is at most this far: one more box of that size is exact.
            radius = min(ranked[limit - 1][0], max_radius)
        else:
            radius = min(radius * (2.0 if ranked else 4.0), max_radius)


def _rank_trials_directly(
    conn: sqlite3.Connection, ids: str, latitude: float, longitude: float, recruiting_only: bool
) -> list[Candidate]:
    """Every matching site of a few trials, read through the `sites` primary key."""
    sql = (
        "SELECT s.trial, s.position, s.latitude, s.longitude, s.rowid "
        "FROM json_each(?) j CROSS JOIN sites s ON s.trial = j.value "
        "WHERE s.latitude IS NOT NULL AND s.longitude IS NOT NULL"
    )
    params: list[Any] = [ids]
    if recruiting_only:
        sql += " AND +s.status = ?"
        params.append(Status.RECRUITING.value)
    return sorted(_best_per_trial(conn.execute(sql, params), latitude, longitude).values())


def _few_sites(conn: sqlite3.Connection, ids_json: str) -> bool:
    count = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM json_each(?) j CROSS JOIN sites s "
        "ON s.trial = j.value LIMIT ?)",
        (ids_json, BRUTE_FORCE_SITES + 1),
    ).fetchone()[0]
    return bool(count <= BRUTE_FORCE_SITES)


def _rows_in_box(
    conn: sqlite3.Connection, box: Box, where: list[str], params: list[Any], *, indexed: bool
) -> sqlite3.Cursor:
    lat_lo, lat_hi, lon_lo, lon_hi = box
    extra = "".join(" AND " + w for w in where)
    if indexed:
        sql = (
            f"SELECT r.trial, r.position, r.latitude, r.longitude, r.id FROM {_RTREE} r "
            "WHERE r.max_lat >= ? AND r.min_lat <= ? AND r.max_lon >= ? AND r.min_lon <= ?"
            + extra
        )
    else:
        sql = (
            "SELECT s.trial, s.position, s.latitude, s.longitude, s.rowid FROM sites s "
            "WHERE s.latitude BETWEEN ? AND ? "
            "AND s.longitude BETWEEN ? AND ?" + extra
        )
    return conn.execute(sql, [lat_lo, lat_hi, lon_lo, lon_hi, *params])


def _hits(
    conn: sqlite3.Connection, ranked: list[Candidate], limit: int, radius_km: float | None
) -> list[TrialHit]:
    """The first ``limit`` candidates (within ``radius_km``) with their trial and site rows."""
    chosen = [c for c in ranked if radius_km is None or c[0] <= radius_km][:limit]
    if not chosen:
        return []
    trials = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT nct_id, title, overall_status, as_of FROM trials "
            "WHERE nct_id IN (SELECT value FROM json_each(?))",
            (json.dumps([c[1] for c in chosen]),),
        )
    }
    sites = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT s.rowid, s.facility, s.city, s.state, s.zip, s.country, s.status, "
            "s.site_status, s.latitude, s.longitude, s.precision FROM json_each(?) j "
            "CROSS JOIN sites s ON s.rowid = j.value",
            (json.dumps([c[3] for c in chosen]),),
        )
    }
    hits = []
    for distance, nct_id, position, rowid in chosen:
        title, overall, as_of = trials.get(nct_id, ("", None, None))
        facility, city, state, zip_code, country, status, own, lat, lon, precision = sites[rowid]
        hits.append(
            TrialHit(
                nct_id=nct_id,
                title=title,
                status=Status.parse(overall),
                as_of=as_of,
                site=SiteHit(
                    facility=facility,
                    city=city,
                    state=state,
                    zip=zip_code,
                    country=country,
                    status=Status.parse(status) or Status.UNKNOWN,
                    status_from="site" if own else "trial",
                    latitude=lat,
                    longitude=lon,
                    precision=precision,
                    distance_km=distance,
                    position=position,
                ),
            )
        )
    return hits


# -- the command's entry point ------------------------------------------------------------


def _no_store(db_path: Path) -> StoreError:
    return StoreError(
        f"No trials in the store at {db_path}; fill it first with "
        "`trialfinder sync --condition …` (needs network)"
    )


def search(
    place_query: str,
    db_path: Path,
    *,
    condition: str | None = None,
    radius_km: float | None = None,
    status: str = "recruiting",
    limit: int = 10,
    gazetteer: Gazetteer | None = None,
    today: date | None = None,
) -> SearchAnswer:
    """`trialfinder search`: every stored trial ranked by its nearest matching site to a place
    the patient typed (resolved offline)."""
    from trialfinder.store import Store

    status_key = status.strip().lower()
    if status_key not in STATUS_CHOICES:
        raise BadInput(f"--status must be one of {', '.join(STATUS_CHOICES)}, not '{status}'")
    if condition is not None and not fold(condition):
        raise BadInput("--condition is empty")
    if not Path(db_path).exists():
        raise _no_store(db_path)
    if gazetteer is None:
        from trialfinder.gazetteer import Gazetteer

        gazetteer = Gazetteer.bundled()
    resolution = gazetteer.resolve(place_query)
    place = resolution.place
    with Store(db_path) as store:
        conn = connection_of(store)
        total = conn.execute("SELECT count(*) FROM trials").fetchone()[0]
        if not total:
            raise _no_store(db_path)
        try:
            hits = nearest_trials(
                conn,
                place.latitude,
                place.longitude,
                limit=limit,
                radius_km=radius_km,
                recruiting_only=status_key == "recruiting",
                condition=condition,
            )
            matching = (
                total
                if condition is None
                else len(matching_trials(conn, condition, indexed=index_ready(conn)))
            )
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot search the store at {db_path}: {exc}") from None
    stale = tuple(
        h.nct_id for h in hits if h.as_of and _stale(_as_of_date(h.as_of), today)
    )
    return SearchAnswer(
        resolution=resolution,
        hits=tuple(hits),
        condition=condition,
        radius_km=radius_km,
        status=status_key,
        trials_in_store=total,
        trials_matching=matching,
        stale=stale,
    )


def _stale(as_of: date, today: date | None) -> bool:
    # Interim (the search helper moves search to freshness.freshness on stored records).
    from trialfinder import clock
    from trialfinder.freshness import STALE_AFTER_DAYS

    return ((today or clock.today()) - as_of).days > STALE_AFTER_DAYS


def _as_of_date(as_of: str) -> date:
    from trialfinder.models import Source

    return Source(kind="", description="", as_of=as_of).as_of_date()


# -- rendering ----------------------------------------------------------------------------


def search_json(answer: SearchAnswer) -> dict[str, Any]:
    from trialfinder.render import place_json

    return {
        "place": place_json(answer.resolution.place),
        "place_notes": list(answer.resolution.notes),
        "condition": answer.condition,
        "status": answer.status,
        "radius_km": answer.radius_km,
        "trials_in_store": answer.trials_in_store,
        "trials_matching": answer.trials_matching,
        "trials": [
            {
                "nct_id": h.nct_id,
                "title": h.title,
                "status": h.status.value if h.status else None,
                "as_of": h.as_of,
                "stale": h.nct_id in answer.stale,
                "registry_url": f"https://clinicaltrials.gov/study/{h.nct_id}",
                "site": {
                    "facility": h.site.facility,
                    "city": h.site.city,
                    "state": h.site.state,
                    "zip": h.site.zip,
                    "country": h.site.country,
                    "status": h.site.status.value,
                    "status_from": h.site.status_from,
                    "distance_km": round(h.site.distance_km, 1),
                    "latitude": h.site.latitude,
                    "longitude": h.site.longitude,
                    "precision": h.site.precision,
                },
            }
            for h in answer.hits
        ],
    }


def search_text(answer: SearchAnswer) -> str:
    from trialfinder.recruitment import status_label

    place = answer.resolution.place
    which = "recruiting sites" if answer.status == "recruiting" else "sites (any status)"
    head = f"Trials with {which} near {place.label}, {place.country_name}"
    if answer.radius_km is not None:
        head += f", within {answer.radius_km:g} km"
    lines = [head]
    lines.extend(f"Note: {n}" for n in answer.resolution.notes)
    scope = f"{answer.trials_in_store} trials in the store"
    if answer.condition is not None:
        scope += f", {answer.trials_matching} matching '{answer.condition}'"
    lines += [scope, ""]
    if not answer.hits:
        lines.append("No trial has a matching site" + (
            f" within {answer.radius_km:g} km." if answer.radius_km is not None else "."))
        if answer.status == "recruiting":
            lines.append("Use --status all to see sites whatever their status.")
    for i, hit in enumerate(answer.hits, start=1):
        site = hit.site
        where = ", ".join(p for p in (site.city, site.country) if p)
        trial_status = status_label(hit.status) if hit.status else "not stated"
        lines.append(f"{i}. {hit.nct_id}: {hit.title}")
        lines.append(f"   Trial status: {trial_status}; record as of {hit.as_of or 'unknown'}")
        site_status = status_label(site.status) + ("" if site.status_from == "site" else
                                           " (the trial's status)")
        lines.append(
            f"   Nearest site: {site.facility or '(facility not named)'} — {where} — "
            f"{site.distance_km:.1f} km — {site_status}"
        )
    if answer.stale:
        lines += [
            "",
            f"Warning: {len(answer.stale)} of these records are more than six months old: "
            "recruitment may have changed. Refresh them with `trialfinder sync` and confirm "
            "with the site.",
        ]
    return "\n".join(lines)
