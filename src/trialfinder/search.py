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
The store keeps an R*Tree of placed sites (store.py, "the search index"): each point is the
site's position on the unit sphere, with a fourth dimension u, the last day the site counts
as recruiting, and an id that packs the trial's key and the site's position. `_best_first`
walks that tree's nodes best-first (Hjaltason & Samet's incremental nearest neighbour): a
heap holds nodes, groups of points and exact candidates, keyed by a lower bound of their
great-circle distance (from the chord to the node's box), so points leave it in exact
distance order, wherever the nearest sites are, with no radius to guess. Nodes whose u is
below the day hold no recruiting site and are never opened. In a leaf, the points of one
trial are grouped (only the nearest can count), those of trials already ranked or not
matching the condition are dropped; a group's exact positions are read from `sites` (the
tree's boxes are 32-bit) and the distance is `nearest.haversine_km`, as everywhere else.

A condition is matched by FTS5 (whole words and phrases, see `words`). When the matching
trials have few placed sites, they are ranked directly (`_rank_filtered`): SQLite computes
each trial's nearest site with the haversine formula over `search_site` (about 1 µs a site),
and the few trials that can be in the answer are then ranked exactly in Python. A walk
with a condition that opens many nodes without meeting enough matching sites (they are
far away) hands over to the same direct ranking. A store whose index is missing and cannot
be written (a read-only file) is ranked the same way over every placed site of `sites`:
same answer, slower (see the README's figures).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from trialfinder import clock
from trialfinder.errors import BadInput, StoreError
from trialfinder.nearest import EARTH_RADIUS_KM, haversine_km
from trialfinder.store import (
    SEARCH_POSITION_BITS,
    SEARCH_SCALE,
    SEARCH_TERMS_MARK,
    Store,
    StoreLike,
    search_day,
    search_unit_vector,
    using_store,
)
from trialfinder.text import fold

if TYPE_CHECKING:
    from trialfinder.freshness import Freshness
    from trialfinder.gazetteer import Gazetteer, Resolution
    from trialfinder.models import Site, Trial
    from trialfinder.recruitment import Recruitment

STATUS_CHOICES = ("recruiting", "all")
DIRECT_SITES = 25_000
"""When the trials matching a condition have at most this many placed sites, they are ranked
directly (about 1 µs a site: less than walking the tree to find them far away)."""
TREE_BUDGET = 400
"""Nodes a walk with a condition may open before it is judged to be searching where the
matching sites are not (about 15 ms)..."""
DIRECT_MAX = 200_000
"""...then the matching trials are ranked directly if they have at most this many placed
sites; else the walk goes on."""
TERMS_NOTICE_SHARE = 0.5
"""Say that the store lacks MeSH terms when more than this share of its registry records
have none (records synced before trialfinder read them)."""

# -- words -------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_ONE_WORD = dict.fromkeys(
    ("cancer", "cancers", "neoplasm", "neoplasms", "tumour", "tumours", "tumor", "tumors",
     "neoplasme", "neoplasmes", "tumeur", "tumeurs"),
    "cancer",
)
"""Words a condition search treats as one: "lung cancer" finds "Lung Neoplasms"."""
FIELD_BREAK = "|"
"""Between two fields of the searchable text: a token of its own (store.py's FTS5 table
declares it so), so no phrase runs from one field into the next."""


def words(text: str) -> list[str]:
    """The words of a text as a condition search compares them: case and accents folded,
    split at anything but letters and digits, "cancer", "neoplasm(s)", "tumour(s)",
    "tumor(s)" (and the French "néoplasme(s)", "tumeur(s)") as the one word "cancer"."""
    return [_ONE_WORD.get(w, w) for w in _WORD.findall(fold(text))]


def searchable_text(trial: Trial) -> str:
    """What ``--condition`` is matched against (the store keeps it in `trials.search_text`):
    titles, acronym, conditions and keywords, then the MeSH condition terms and their
    ancestors (after `SEARCH_TERMS_MARK`, which tells the store the record has them), each
    field as its `words` with `FIELD_BREAK` between fields."""
    fields = [" ".join(w) for f in (trial.title, trial.brief_title, trial.acronym,
                                     *trial.conditions, *trial.keywords) if f and (w := words(f))]
    terms = [" ".join(w) for t in trial.condition_terms if (w := words(t))]
    if trial.condition_terms:
        fields.append(SEARCH_TERMS_MARK + (f" {FIELD_BREAK} ".join(terms)))
    return f" {FIELD_BREAK} ".join(fields)


def condition_words(condition: str) -> list[str]:
    """The words of a ``--condition``; BadInput when it has none."""
    found = words(condition)
    if not found:
        raise BadInput("--condition has no letters or digits to look for")
    return found


def fts_phrase(phrase: Sequence[str]) -> str:
    """The FTS5 query for a phrase of `words` (letters and digits only: nothing to escape)."""
    return '"' + " ".join(phrase) + '"'


def text_matches(phrase: Sequence[str], text: str) -> bool:
    """Whether a searchable text holds the phrase within one field (what FTS5 answers, for
    a store searched without its index)."""
    wanted = f" {' '.join(phrase)} "
    return any(wanted in f" {' '.join(field.split())} " for field in text.split(FIELD_BREAK))


# -- ranking -----------------------------------------------------------------------------

Ranked = tuple[float, str, int]
"""(distance_km, nct_id, position of the site in the trial's record)."""

_BOUND_SLACK_KM = 1e-3
"""Taken off every lower bound, so that rounding (haversine near the antipode is good to
about 0.1 m) never puts a bound above the exact distance it bounds."""
_POINT_RADIUS = math.sqrt(3)
"""A point's box (one unit either side on each axis) lies within this many units of its
centre."""
_MASK = (1 << SEARCH_POSITION_BITS) - 1
_NODE, _GROUP, _EXACT = 0, 1, 2  # heap entry kinds; on equal keys, nodes open first
_BATCH = 1000
"""Groups of points read from `sites` in one query, at most."""


@dataclass(frozen=True, slots=True)
class Ranking:
    ranked: list[Ranked]
    matching: int | None
    """Trials matching the condition (None without one)."""
    method: str
    """"tree" (best-first over the index), "direct" (the matching trials' sites read
    directly) or "scan" (no index: every placed site read)."""


def _chord_km(chord2_units: float) -> float:
    """Great-circle km of a squared chord in index units."""
    chord = math.sqrt(chord2_units) / SEARCH_SCALE
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2))


def _best_first(
    store: Store, latitude: float, longitude: float, limit: int, radius_km: float | None,
    day: date | None, keys: set[int] | None, budget: int | None,
) -> list[Ranked] | None:
    """The ``limit`` nearest trials by their nearest matching site, walking the index's
    nodes in order of their distance's lower bound (see the module's docstring); None when
    more than ``budget`` nodes would have to be opened."""
    qx, qy, qz = (v * SEARCH_SCALE for v in search_unit_vector(latitude, longitude))
    u_min = search_day(day) if day is not None else None
    height, root = store.search_root()
    heap: list[tuple[Any, ...]] = []  # (bound, kind, …): nodes, groups, exact candidates
    ranked: list[Ranked] = []
    done: set[int] = set()
    names: dict[int, str] = {}
    reach = math.inf if radius_km is None else radius_km

    def open_node(cells: Sequence[tuple[int, ...]], depth: int) -> None:
        if depth > 0:
            for nodeno, x0, x1, y0, y1, z0, z1, _u0, u1 in cells:
                if u_min is not None and u1 < u_min:
                    continue
                dx = x0 - qx if qx < x0 else (qx - x1 if qx > x1 else 0.0)
                dy = y0 - qy if qy < y0 else (qy - y1 if qy > y1 else 0.0)
                dz = z0 - qz if qz < z0 else (qz - z1 if qz > z1 else 0.0)
                bound = _chord_km(dx * dx + dy * dy + dz * dz) - _BOUND_SLACK_KM
                if bound <= reach:
                    heapq.heappush(heap, (bound, _NODE, nodeno, depth - 1))
            return
        groups: dict[int, list[tuple[float, int]]] = {}
        for point, x0, _x1, y0, _y1, z0, _z1, _u0, u1 in cells:
            if u_min is not None and u1 < u_min:
                continue
            key = point >> SEARCH_POSITION_BITS
            if key in done or (keys is not None and key not in keys):
                continue
            dx, dy, dz = x0 + 1 - qx, y0 + 1 - qy, z0 + 1 - qz
            groups.setdefault(key, []).append(
                (math.sqrt(dx * dx + dy * dy + dz * dz), point & _MASK))
        for key, members in groups.items():
            # Only a point that may be the trial's nearest in this leaf goes on: one whose
            # lower bound is within the smallest upper bound (sites sharing a position all do).
            nearest = min(members)[0]
            within = nearest + 2 * _POINT_RADIUS
            positions = tuple(sorted(p for c, p in members if c <= within))
            low = max(0.0, nearest - _POINT_RADIUS)
            bound = _chord_km(low * low) - _BOUND_SLACK_KM
            if bound <= reach:
                heapq.heappush(heap, (bound, _GROUP, key, positions))

    open_node(root, height)
    opened = 1
    while heap and len(ranked) < limit:
        entry = heapq.heappop(heap)
        if entry[0] > reach:
            break
        kind = entry[1]
        if kind == _NODE:
            opened += 1
            if budget is not None and opened > budget:
                return None
            open_node(store.search_node(entry[2]), entry[3])
        elif kind == _GROUP:
            # Groups that come out together (sites sharing a city centre are many, and all
            # tied) have their exact positions read in one query.
            batch = [entry]
            while heap and heap[0][1] == _GROUP and len(batch) < _BATCH:
                batch.append(heapq.heappop(heap))
            wanted = [(key, positions) for _b, _k, key, positions in batch if key not in done]
            best: dict[int, tuple[float, int]] = {}
            for key, position, lat, lon in store.search_site_rows(wanted, day):
                candidate = (haversine_km(latitude, longitude, lat, lon), position)
                if key not in best or candidate < best[key]:
                    best[key] = candidate
            unknown = [key for key in best if key not in names]
            if unknown:
                names.update(store.search_trial_ids(unknown))
            for key, (distance, position) in best.items():
                if distance <= reach and key in names:
                    heapq.heappush(heap, (distance, _EXACT, names[key], position, key))
        else:
            key = entry[4]
            if key not in done:
                done.add(key)
                ranked.append((entry[0], entry[2], entry[3]))
    return ranked


_SQL_SLACK_KM = 1e-3
"""How far SQLite's haversine may be from `nearest.haversine_km` (they differ at most in
the last bits; near the antipode those bits are worth about 0.1 m)."""


def _rank_filtered(
    store: Store, latitude: float, longitude: float, limit: int, radius_km: float | None,
    day: date | None, *, keys: set[int] | None = None, nct_ids: set[str] | None = None,
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
    candidates = [nct_id for nct_id, d in minima if d <= last]
    best: dict[str, tuple[float, int]] = {}
    distances: dict[tuple[float, float], float] = {}  # sites share city centres
    for nct_id, position, lat, lon in store.search_sites_of(day, nct_ids=candidates):
        distance = distances.get((lat, lon))
        if distance is None:
            distance = distances[(lat, lon)] = haversine_km(latitude, longitude, lat, lon)
        if (distance, position) < best.get(nct_id, (math.inf, 0)):
            best[nct_id] = (distance, position)
    ranked = sorted((d, nct_id, p) for nct_id, (d, p) in best.items()
                    if radius_km is None or d <= radius_km)
    return ranked[:limit]


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
        raise BadInput("--limit must be at least 1")
    if radius_km is not None and not radius_km > 0:
        raise BadInput("--radius must be a positive number of kilometres")
    day = (today or clock.today()) if recruiting_only else None
    phrase = condition_words(condition) if condition is not None else None
    if method is None and not store.search_index_ready:
        method = "scan"
    if method == "scan":
        matched = None
        if phrase is not None:
            matched = {n for n, text in store.search_texts() if text_matches(phrase, text)}
            if not matched:
                return Ranking([], 0, "scan")
        ranked = _rank_filtered(store, latitude, longitude, limit, radius_km, day,
                                nct_ids=matched)
        return Ranking(ranked, None if matched is None else len(matched), "scan")
    if not store.search_index_ready:
        raise StoreError("The search index is not available in this store")
    if phrase is None:
        return Ranking(_best_first(store, latitude, longitude, limit, radius_km, day, None,
                                   None) or [], None, "tree")
    keys = store.search_matching(fts_phrase(phrase))
    if not keys:
        return Ranking([], 0, method or "tree")

    def direct() -> Ranking:
        ranked = _rank_filtered(store, latitude, longitude, limit, radius_km, day, keys=keys)
        return Ranking(ranked, len(keys), "direct")

    if method == "direct" or (method is None and len(keys) <= DIRECT_SITES
                              and store.search_count_sites(keys, DIRECT_SITES) <= DIRECT_SITES):
        return direct()
    budget = TREE_BUDGET if method is None else None
    found = _best_first(store, latitude, longitude, limit, radius_km, day, keys, budget)
    if found is None:  # the walk meets too few matching sites: they are far, or rare here
        if store.search_count_sites(keys, DIRECT_MAX) <= DIRECT_MAX:
            return direct()
        found = _best_first(store, latitude, longitude, limit, radius_km, day, keys, None)
    return Ranking(found or [], len(keys), "tree")


# -- the answer ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialHit:
    """One trial of the answer, with the site that places it."""

    trial: Trial
    """The stored record, with only ``site`` among its sites."""
    recruitment: Recruitment
    """The trial's status as the status rule reads it on the day of the search."""
    freshness: Freshness
    site: Site
    site_recruitment: Recruitment
    position: int
    """The site's index in the trial's record."""
    distance_km: float | None
    """None for a site without a position."""

    @property
    def nct_id(self) -> str:
        return self.trial.nct_id


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


def _no_store(db: StoreLike) -> StoreError:
    return StoreError(
        f"No trials in the store at {db}; fill it first with "
        "`trialfinder sync --condition …` (needs network)"
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
    from trialfinder.freshness import freshness
    from trialfinder.recruitment import site_recruitment, trial_recruitment

    status_key = status.strip().lower()
    if status_key not in STATUS_CHOICES:
        raise BadInput(f"--status must be one of {', '.join(STATUS_CHOICES)}, not '{status}'")
    phrase = condition_words(condition) if condition is not None else None
    if limit < 1:
        raise BadInput("--limit must be at least 1")
    if radius_km is not None and not radius_km > 0:
        raise BadInput("--radius must be a positive number of kilometres")
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
            ranking = nearest_trials(store, place.latitude, place.longitude, limit=limit,
                                     radius_km=radius_km, recruiting_only=recruiting,
                                     condition=condition, today=day)
            filter_day = day if recruiting else None
            found = {nct for _d, nct, _p in ranking.ranked}
            if ranking.method == "scan" or phrase is None:
                ids = None
                if phrase is not None:
                    ids = [n for n, t in store.search_texts() if text_matches(phrase, t)]
                unplaced = store.search_unplaced(filter_day, place.country_name, nct_ids=ids)
            else:
                unplaced = store.search_unplaced(filter_day, place.country_name,
                                                 phrase=fts_phrase(phrase))
            unplaced = [u for u in unplaced if u[0] not in found]

            def hit(nct_id: str, position: int, distance: float | None) -> TrialHit | None:
                trial = store.search_trial_site(nct_id, position)
                if trial is None or not trial.sites:
                    return None
                overall = trial_recruitment(trial, day)
                return TrialHit(trial, overall, freshness(trial, day), trial.sites[0],
                                site_recruitment(trial.sites[0], trial, day, overall=overall),
                                position, distance)

            hits = [h for d, n, p in ranking.ranked if (h := hit(n, p, d)) is not None]
            shown = [h for n, p, _here in unplaced[:limit] if (h := hit(n, p, None))]
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
    )
