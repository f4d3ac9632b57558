"""Trials near a place across the whole store, each ranked by its nearest matching site.

A *matching* site is placed (it has a stored position), recruiting on the day of the search
unless ``status="all"`` (the status rule's answer, as the store derived it from
`recruitment.py`: standing 'recruiting' and a verification that has not run out), within the
radius if one is given, and belongs to a trial whose text holds the condition if one is
given. The answer is the ``limit`` trials whose nearest matching site is nearest, ordered by
that distance, then by identifier; a trial's equally near sites are taken in record order.
Trials whose only matching sites have no position come after, saying so.

How it answers in milliseconds on a million sites, from anywhere on Earth
--------------------------------------------------------------------------
The store keeps every placed site in `search_cell` (store.py, "the search index"), keyed by
its cell in an octree over the unit sphere: each cube of the octree is one range of keys.
`_Walk` is a best-first (branch-and-bound) nearest-neighbour search over that octree
(Hjaltason & Samet's incremental algorithm): a heap holds cubes, keyed by a lower bound of
their great-circle distance (from the chord to the cube), and exact candidates. A cube
holding few sites is read whole, a larger one is split in eight, an empty one costs one
short range count; so sites leave the heap in exact distance order, wherever the nearest
ones are (the next street or the other side of the Pacific), with no radius to guess. Each
read row carries the site's trial, exact position and the last day it counts as recruiting;
in a cube, only each trial's nearest site becomes a candidate, trials already ranked are
skipped, and distances are `nearest.haversine_km`, as everywhere else. Sites sharing a city
centre share a cube of the finest level, read once. Sites written since the tree was last
folded (during a sync: store.py's `search_fresh`) are not in it yet: the few trials they can
bring into the answer are ranked directly (`_fresh_candidates`) and seed the heap, so the
answer is exact at every moment.

A condition is matched by FTS5 (whole words and phrases, see `terms.words`). A rare one (at most
`KEYS_AT_ONCE` trials) has its trials' keys read up front; a common one is checked trial by
trial as candidates leave the heap (a few dozen look-ups, where reading tens of thousands of
keys would cost more than the walk). When the matching trials have few placed sites, they
are ranked directly (`_rank_filtered`): SQLite computes each trial's nearest site with the
haversine formula over `search_site` (about 1 µs a site), and the few trials that can be in
the answer are then ranked exactly in Python, from their sites near enough to count. A walk
with a condition that reads `TREE_BUDGET` cubes without meeting enough matching sites (they
are far away) hands over to the same direct ranking when the matching trials have at most
`DIRECT_MAX` sites, and goes on where it stopped otherwise. A store whose index is missing
and cannot be written (a read-only file) is ranked the same way over every placed site of
`sites`: same answer, slower (see the README's figures).

The rest of the answer is read the same way: the trials whose matching sites are all
unplaced come from the index's per-trial tally (`search_tally`: a short range of trials with
unplaced sites only, not a probe per trial), and each hit's record is read with only its
one site decoded. Trials placed by another version of the placing rules or gazetteer (an
upgrade since the last sync) are counted from the store's index of `trials.placed_by` (a
range per other version, nothing when all are current) for the answer's note.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from trialfinder import clock
from trialfinder.errors import BadInput, StoreError
from trialfinder.i18n import _
from trialfinder.nearest import EARTH_RADIUS_KM, haversine_km, position_key, shared_ranks
from trialfinder.store import (
    SEARCH_CELL_BITS,
    Store,
    StoreLike,
    using_store,
)
from trialfinder.terms import condition_words, fts_phrase, text_matches

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer, Resolution
    from trialfinder.models import Site, Trial
    from trialfinder.queries import TrialView
    from trialfinder.recruitment import Recruitment

STATUS_CHOICES = ("recruiting", "all")
KEYS_AT_ONCE = 20_000
"""A condition matched by at most this many trials has their keys read up front (about
0.1 µs a key); a commoner one is checked trial by trial as the walk meets candidates."""
DIRECT_SITES = 25_000
"""When the trials matching a condition have at most this many placed sites matching on the
day, they are ranked directly (about 1 µs a site: less than walking the tree to find them
far away)."""
TREE_BUDGET = 400
"""Cubes a walk with a condition may read before it is judged to be searching where the
matching sites are not (a few ms)..."""
DIRECT_MAX = 200_000
"""...then the matching trials are ranked directly if they have at most this many placed
sites; else the walk goes on."""
TERMS_NOTICE_SHARE = 0.5
"""Say that the store lacks MeSH terms when more than this share of its registry records
have none (records synced before trialfinder read them)."""

# -- ranking -----------------------------------------------------------------------------

Ranked = tuple[float, str, int]
"""(distance_km, nct_id, position of the site in the trial's record)."""

_BOUND_SLACK_KM = 1e-3
"""Taken off every lower bound, so that rounding (haversine near the antipode is good to
about 0.1 m) never puts a bound above the exact distance it bounds."""
LEAF_SITES = 32
"""A cube holding at most this many sites is read whole; a larger one is split in eight."""
_CELL, _EXACT = 0, 1  # heap entry kinds; on equal keys, cubes open first


@dataclass(frozen=True, slots=True)
class Ranking:
    ranked: list[Ranked]
    matching: int | None
    """Trials matching the condition (None without one)."""
    method: str
    """"tree" (best-first over the index), "direct" (the matching trials' sites read
    directly) or "scan" (no index: every placed site read)."""
    matched: frozenset[str] | None = None
    """A scan with a condition: the trials whose text holds it (read once, for the trials
    whose matching sites are unplaced too)."""


class _Match:
    """Whether a trial (by key) holds the condition: from the set of matching keys when it
    is read up front (a rare condition: a short list), else asked of FTS5 one trial at a time
    as the walk meets candidates (a common one: the walk meets a few dozen, where reading
    every matching key would cost milliseconds)."""

    def __init__(self, store: Store, phrase: str, keys: set[int] | None) -> None:
        self.store, self.phrase, self.keys = store, phrase, keys
        self._asked: dict[int, bool] = {}

    def __call__(self, key: int) -> bool:
        if self.keys is not None:
            return key in self.keys
        found = self._asked.get(key)
        if found is None:
            found = self._asked[key] = self.store.search_matches(self.phrase, key)
        return found

    def all(self) -> set[int]:
        """Every matching key (read now if it was not)."""
        if self.keys is None:
            self.keys = self.store.search_matching(self.phrase)
        return self.keys


class _Walk:
    """The best-first walk over the octree (see the module's docstring), resumable: `run`
    with a budget stops after that many cube reads, and may be called again."""

    def __init__(self, store: Store, latitude: float, longitude: float, limit: int,
                 radius_km: float | None, day: date | None, match: _Match | None) -> None:
        self.store, self.limit, self.day, self.match = store, limit, day, match
        self.latitude, self.longitude = latitude, longitude
        phi, lam = math.radians(latitude), math.radians(longitude)
        self.q = (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))
        self.reach = math.inf if radius_km is None else radius_km
        # (bound, _CELL, level, prefix, ix, iy, iz) or (distance, _EXACT, nct_id, position, key)
        self.heap: list[tuple[Any, ...]] = [(0.0, _CELL, 0, 0, 0, 0, 0)]
        self.ranked: list[Ranked] = []
        self.done: set[int] = set()

    def seed(self, candidates: Iterable[tuple[float, str, int, int]]) -> None:
        """Exact candidates found outside the tree: (distance, nct_id, position, key)."""
        for distance, nct_id, position, key in candidates:
            if distance <= self.reach:
                heapq.heappush(self.heap, (distance, _EXACT, nct_id, position, key))

    def run(self, budget: int | None = None) -> bool:
        """Walk on until the answer is complete (True), or ``budget`` cubes have been read
        (False: call again to go on)."""
        heap, ranked, done, match, store = self.heap, self.ranked, self.done, self.match, \
            self.store
        known = match.keys if match is not None else None
        qx, qy, qz = self.q
        reads = 0
        while heap and len(ranked) < self.limit:
            entry = heapq.heappop(heap)
            if entry[0] > self.reach:
                heap.clear()
                break
            if entry[1] == _EXACT:
                key = entry[4]
                if key not in done:
                    done.add(key)
                    if match is None or match(key):
                        ranked.append((entry[0], entry[2], entry[3]))
                continue
            if budget is not None and reads >= budget:
                heapq.heappush(heap, entry)
                return False
            reads += 1
            _bound, _kind, level, prefix, ix, iy, iz = entry
            shift = 3 * (SEARCH_CELL_BITS - level)
            first, last = prefix << shift, ((prefix + 1) << shift) - 1
            if level < SEARCH_CELL_BITS:
                count = store.search_cell_count(first, last, LEAF_SITES)
                if count == 0:
                    continue
                if count > LEAF_SITES:
                    size = 2.0 / (1 << (level + 1))
                    for child in range(8):
                        cx, cy, cz = 2 * ix + (child & 1), 2 * iy + (child >> 1 & 1), \
                            2 * iz + (child >> 2)
                        x0, y0, z0 = cx * size - 1.0, cy * size - 1.0, cz * size - 1.0
                        dx = x0 - qx if qx < x0 else (qx - x0 - size if qx > x0 + size else 0.0)
                        dy = y0 - qy if qy < y0 else (qy - y0 - size if qy > y0 + size else 0.0)
                        dz = z0 - qz if qz < z0 else (qz - z0 - size if qz > z0 + size else 0.0)
                        chord = math.sqrt(dx * dx + dy * dy + dz * dz)
                        bound = _EARTH_DIAMETER_KM * math.asin(min(1.0, chord / 2))
                        if bound - _BOUND_SLACK_KM <= self.reach:
                            heapq.heappush(heap, (bound - _BOUND_SLACK_KM, _CELL, level + 1,
                                                  prefix << 3 | child, cx, cy, cz))
                    continue
            # A cube read whole: each trial's nearest site in it becomes an exact candidate.
            best: dict[str, tuple[float, int, int]] = {}
            distances: dict[tuple[float, float], float] = {}  # sites share city centres
            for key, position, nct_id, lat, lon in store.search_cell_rows(first, last,
                                                                          self.day):
                if key in done or (known is not None and key not in known):
                    continue
                distance = distances.get((lat, lon))
                if distance is None:
                    distance = distances[(lat, lon)] = haversine_km(
                        self.latitude, self.longitude, lat, lon)
                candidate = (distance, position, key)
                if candidate < best.get(nct_id, _FAR):
                    best[nct_id] = candidate
            for nct_id, (distance, position, key) in best.items():
                if distance <= self.reach:
                    heapq.heappush(heap, (distance, _EXACT, nct_id, position, key))
        return True


_EARTH_DIAMETER_KM = 2 * EARTH_RADIUS_KM
_FAR = (math.inf, 0, 0)


_SQL_SLACK_KM = 1e-3
"""How far SQLite's haversine may be from `nearest.haversine_km` (they differ at most in
the last bits; near the antipode those bits are worth about 0.1 m)."""


def _exact(
    rows: Iterable[tuple[str, int, float, float]], latitude: float, longitude: float,
    radius_km: float | None,
) -> dict[str, tuple[float, int]]:
    """Each trial's nearest site among these rows, by `nearest.haversine_km`: (distance,
    position), ties by record order."""
    best: dict[str, tuple[float, int]] = {}
    distances: dict[tuple[float, float], float] = {}  # sites share city centres
    for nct_id, position, lat, lon in rows:
        distance = distances.get((lat, lon))
        if distance is None:
            distance = distances[(lat, lon)] = haversine_km(latitude, longitude, lat, lon)
        if (distance, position) < best.get(nct_id, (math.inf, 0)):
            best[nct_id] = (distance, position)
    return {n: b for n, b in best.items() if radius_km is None or b[0] <= radius_km}


def _rank_filtered(
    store: Store, latitude: float, longitude: float, limit: int, radius_km: float | None,
    day: date | None, *, keys: set[int] | None = None, nct_ids: frozenset[str] | None = None,
) -> list[Ranked]:
    """The ``limit`` nearest trials among these (by key, by identifier, or all), every
    matching site read: SQLite finds each trial's nearest site, then the few trials that
    can be in the answer (the ``limit`` nearest and any within a rounding of the last) are
    ranked exactly with `nearest.haversine_km`, ties by identifier then record order."""
    within = None if radius_km is None else radius_km + _SQL_SLACK_KM
    minima = store.search_minima(latitude, longitude, day, keys=keys, nct_ids=nct_ids,
                                 within_km=within)
    if not minima:
        return []
    last = minima[min(limit, len(minima)) - 1][1] + 2 * _SQL_SLACK_KM
    near = (latitude, longitude, last + 2 * _SQL_SLACK_KM)
    if keys is not None:
        rows = store.search_sites_of(day, keys=[k for _n, d, k in minima if d <= last
                                                and k is not None], near=near)
    else:
        rows = store.search_sites_of(day, nct_ids=[n for n, d, _k in minima if d <= last],
                                     near=near)
    best = _exact(rows, latitude, longitude, radius_km)
    return sorted((d, nct_id, p) for nct_id, (d, p) in best.items())[:limit]


def _fresh_candidates(
    store: Store, latitude: float, longitude: float, limit: int, radius_km: float | None,
    day: date | None, match: _Match | None,
) -> list[tuple[float, str, int, int]]:
    """The trials of the answer that fresh sites (written since the tree was last folded:
    see store.py) may bring: the ``limit`` matching trials nearest by their fresh sites (and
    any within a rounding of the last), as exact candidates (distance, nct_id, position,
    key). Any trial of the answer whose nearest site is fresh is among them."""
    if not store.search_has_fresh():
        return []
    within = None if radius_km is None else radius_km + _SQL_SLACK_KM
    chosen: dict[str, int] = {}
    last = math.inf
    for nct_id, distance, key in store.search_minima(latitude, longitude, day, fresh=True,
                                                     within_km=within):
        if distance > last:
            break
        if key is None or (match is not None and not match(key)):
            continue
        chosen[nct_id] = key
        if len(chosen) == limit:
            last = distance + 2 * _SQL_SLACK_KM
    if not chosen:
        return []
    near = None if last == math.inf else (latitude, longitude, last + 2 * _SQL_SLACK_KM)
    best = _exact(store.search_sites_of(day, keys=chosen.values(), fresh=True, near=near),
                  latitude, longitude, radius_km)
    return [(d, nct_id, p, chosen[nct_id]) for nct_id, (d, p) in best.items()]


def nearest_trials(
    store: Store,
    latitude: float,
    longitude: float,
    *,
    limit: int = 10,
    radius_km: float | None = None,
    recruiting_only: bool = True,
    condition: str | None = None,
    today: date | None = None,
    method: str | None = None,
) -> Ranking:
    """The ``limit`` trials nearest to a point, each by its nearest matching site (see the
    module's docstring). ``method`` forces "tree", "direct" (with a condition) or "scan";
    None chooses. Call it inside ``store.search_snapshot()`` for one consistent read."""
    if limit < 1:
        raise BadInput(_("--limit must be at least 1"))
    if radius_km is not None and not radius_km > 0:
        raise BadInput(_("--radius must be a positive number of kilometres"))
    day = (today or clock.today()) if recruiting_only else None
    phrase = condition_words(condition) if condition is not None else None
    if method is None and not store.search_index_ready:
        method = "scan"
    if method == "scan":
        matched = None
        if phrase is not None:
            matched = frozenset(n for n, text in store.search_texts()
                                if text_matches(phrase, text))
            if not matched:
                return Ranking([], 0, "scan", matched)
        ranked = _rank_filtered(store, latitude, longitude, limit, radius_km, day,
                                nct_ids=matched)
        return Ranking(ranked, None if matched is None else len(matched), "scan", matched)
    if not store.search_index_ready:
        raise StoreError(_("The search index is not available in this store"))

    def walk(match: _Match | None) -> _Walk:
        found = _Walk(store, latitude, longitude, limit, radius_km, day, match)
        found.seed(_fresh_candidates(store, latitude, longitude, limit, radius_km, day, match))
        return found

    if phrase is None:
        tree = walk(None)
        tree.run()
        return Ranking(tree.ranked, None, "tree")
    query = fts_phrase(phrase)
    matching = store.search_match_count(query)
    if not matching:
        return Ranking([], 0, method or "tree")

    def direct(keys: set[int]) -> Ranking:
        ranked = _rank_filtered(store, latitude, longitude, limit, radius_km, day, keys=keys)
        return Ranking(ranked, matching, "direct")

    if method == "direct" or matching <= KEYS_AT_ONCE:
        match = _Match(store, query, store.search_matching(query))
        if method == "direct" or (method is None and store.search_count_sites(
                match.all(), day) <= DIRECT_SITES):
            return direct(match.all())
    else:
        match = _Match(store, query, None)
    tree = walk(match)
    # A walk that meets too few matching sites (they are far, or rare here) hands over to
    # the direct ranking when the matching trials have few enough sites: counted, unless
    # an estimate already says too many (before reading a long list of keys).
    if (method is None and not tree.run(TREE_BUDGET) and (
            match.keys is not None
            or matching * store.search_sites_per_trial() <= DIRECT_MAX)):
        keys = match.all()
        if store.search_count_sites(keys, day) <= DIRECT_MAX:
            return direct(keys)
    tree.run()
    return Ranking(tree.ranked, matching, "tree")


# -- the answer ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialHit:
    """One trial of the answer, with the site that places it."""

    view: TrialView
    """The stored record (with only ``site`` among its sites) and what the rules say of it
    on the day of the search: its status and its age."""
    site: Site
    site_recruitment: Recruitment
    position: int
    """The site's index in the trial's record."""
    distance_km: float | None
    """None for a site without a position."""
    rank: int | None = None
    """1 for the nearest trials, 2 for the next …: trials whose nearest matching sites share
    one position are equally near and share a rank (`nearest.shared_ranks`). None for a
    trial whose matching sites have no position."""
    equally_near: int = 1
    """How many trials of the answer share this rank (1: it is alone there)."""

    @property
    def nct_id(self) -> str:
        return self.view.trial.nct_id

    @property
    def trial(self) -> Trial:
        return self.view.trial


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    resolution: Resolution
    hits: tuple[TrialHit, ...]
    unplaced: tuple[TrialHit, ...]
    """Trials whose only matching sites have no position (at most ``limit`` of them), those
    with such a site in the place's country first."""
    unplaced_total: int
    condition: str | None
    radius_km: float | None
    status: str
    limit: int
    trials_in_store: int
    trials_matching: int
    """Trials whose text holds the condition (all trials without a condition)."""
    method: str
    """How the store was searched: "tree", "direct" or "scan" (see `Ranking`)."""
    terms_missing: tuple[int, int] | None
    """With a condition, when most registry records of the store lack MeSH terms:
    (records without, registry records)."""
    today: date
    more_equally_near: bool = False
    """The ``limit`` cut a group of equally near trials: more are as near as the last ones
    shown (which of them are shown is the identifiers' order, not nearness)."""
    placed_otherwise: int = 0
    """Stored trials placed by another version of the placing rules or gazetteer (an
    upgrade since): the answer ranks them by positions `nearest` would decide again, until
    `trialfinder geocode --refresh` or the next `sync` places them."""


def _no_store(db: StoreLike) -> StoreError:
    return StoreError(
        _("No trials in the store at {path}; fill it first with "
          "`trialfinder sync --condition …` (needs network)").format(path=db)
    )


def search(
    place_query: str,
    db: StoreLike,
    *,
    condition: str | None = None,
    radius_km: float | None = None,
    status: str = "recruiting",
    limit: int = 10,
    gazetteer: Gazetteer | None = None,
    today: date | None = None,
) -> SearchAnswer:
    """`trialfinder search`: stored trials ranked by their nearest matching site to a place
    the patient typed (resolved offline). ``db``: an open `Store` or a path."""
    from trialfinder.geocode import placing_version
    from trialfinder.queries import TrialView

    status_key = status.strip().lower()
    if status_key not in STATUS_CHOICES:
        raise BadInput(_("--status must be one of {choices}, not '{status}'").format(
            choices=", ".join(STATUS_CHOICES), status=status))
    phrase = condition_words(condition) if condition is not None else None
    if limit < 1:
        raise BadInput(_("--limit must be at least 1"))
    if radius_km is not None and not radius_km > 0:
        raise BadInput(_("--radius must be a positive number of kilometres"))
    day = today or clock.today()
    with using_store(db) as store:
        if store is None:
            raise _no_store(db)
        total = store.search_trial_count()
        if not total:
            raise _no_store(store.path)
        if gazetteer is None:
            from trialfinder.gazetteer import Gazetteer

            gazetteer = Gazetteer.bundled()
        resolution = gazetteer.resolve(place_query)
        place = resolution.place
        recruiting = status_key == "recruiting"
        with store.search_snapshot():
            # One more than asked: whether the limit cuts a group of equally near trials.
            ranking = nearest_trials(store, place.latitude, place.longitude, limit=limit + 1,
                                     radius_km=radius_km, recruiting_only=recruiting,
                                     condition=condition, today=day)
            filter_day = day if recruiting else None
            found = {nct for _d, nct, _p in ranking.ranked}
            if ranking.matching == 0:
                unplaced = []
            elif ranking.method == "scan" or phrase is None:
                ids = sorted(ranking.matched) if ranking.matched is not None else None
                unplaced = store.search_unplaced(filter_day, place.country_name, nct_ids=ids)
            else:
                unplaced = store.search_unplaced(filter_day, place.country_name,
                                                 phrase=fts_phrase(phrase))
            unplaced = [u for u in unplaced if u[0] not in found]

            def hit(nct_id: str, position: int, distance: float | None) -> TrialHit | None:
                trial = store.search_trial_site(nct_id, position)
                if trial is None or not trial.sites:
                    return None
                view = TrialView(trial, today=day)
                return TrialHit(view, trial.sites[0], view.site_recruitment(trial.sites[0]),
                                position, distance)

            hits = [h for d, n, p in ranking.ranked if (h := hit(n, p, d)) is not None]
            keys = [position_key(h.site) for h in hits]
            more_equally_near = len(hits) > limit and keys[limit] == keys[limit - 1]
            hits = [replace(h, rank=rank, equally_near=size) for h, (rank, size)
                    in zip(hits[:limit], shared_ranks(keys[:limit]), strict=True)]
            shown = [h for n, p, _here in unplaced[:limit] if (h := hit(n, p, None))]
            placed_otherwise = store.placed_otherwise_count(placing_version()) or 0
            terms_missing = None
            if phrase is not None:
                without, registry = store.search_terms_missing()
                if registry and without > TERMS_NOTICE_SHARE * registry:
                    terms_missing = (without, registry)
    return SearchAnswer(
        resolution=resolution,
        hits=tuple(hits),
        unplaced=tuple(shown),
        unplaced_total=len(unplaced),
        condition=condition,
        radius_km=radius_km,
        status=status_key,
        limit=limit,
        trials_in_store=total,
        trials_matching=total if ranking.matching is None else ranking.matching,
        method=ranking.method,
        terms_missing=terms_missing,
        today=day,
        more_equally_near=more_equally_near,
        placed_otherwise=placed_otherwise,
    )
