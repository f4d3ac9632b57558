"""The library calls behind the commands: resolve, load, place, rank. No printing here.

Every call that reads the store takes ``db``: an open `Store`, a path, or None (the bundled
record only). The rules (status: `recruitment`; age: `freshness`) are applied here, once per
answer, on one day (``today``, default `clock.today()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from trialfinder import clock
from trialfinder.errors import BadInput, OutOfReach
from trialfinder.freshness import Freshness, freshness
from trialfinder.geocode import (
    Geocoder,
    NominatimClient,
    default_chain,
    locate_sites,
    resolve_place,
)
from trialfinder.i18n import _
from trialfinder.models import Site, Trial
from trialfinder.nearest import RankedSite, rank_sites, within_limit
from trialfinder.records import load_trial
from trialfinder.recruitment import Recruitment, site_recruitment, trial_recruitment

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from trialfinder.gazetteer import Gazetteer, Place, Resolution
    from trialfinder.geocode import Placement
    from trialfinder.store import StoreLike

DEFAULT_MAX_KM = 1500.0
"""How far abroad a patient can be expected to travel for a trial visit (a day by car or train
to a neighbouring country); --max-km changes it."""


@dataclass(frozen=True, slots=True)
class TrialView:
    """A trial as every output shows it: the record, and what the rules say about it on one
    day (its age, its overall status), plus notes from placing its sites."""

    trial: Trial
    notes: tuple[str, ...] = ()
    today: date = field(default_factory=lambda: clock.today())
    freshness: Freshness = field(init=False)
    """Both ages of the record (`freshness.freshness`)."""
    recruitment: Recruitment = field(init=False)
    """The trial's overall status as the status rule reads it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "freshness", freshness(self.trial, self.today))
        object.__setattr__(self, "recruitment", trial_recruitment(self.trial, self.today))

    @property
    def stale(self) -> bool:
        """The copy is more than six months old (`Freshness.stale`)."""
        return self.freshness.stale

    def site_recruitment(self, site: Site) -> Recruitment:
        """The site's status as the status rule reads it, on the view's day."""
        return site_recruitment(site, self.trial, self.today, overall=self.recruitment)


@dataclass(frozen=True, slots=True)
class NearestAnswer:
    resolution: Resolution
    view: TrialView
    ranked: tuple[RankedSite, ...]
    """The placed sites shown, nearest first (the first ranks up to the limit, a group of
    equally near sites never cut), then every matching site with no position."""
    total_matching: int
    """How many placed sites matched the filter (and the reach) before the limit."""
    include_all: bool
    max_km: float | None = None
    limit: int | None = None

    @property
    def placed(self) -> tuple[RankedSite, ...]:
        return tuple(r for r in self.ranked if r.rank is not None)

    @property
    def unplaced(self) -> tuple[RankedSite, ...]:
        return tuple(r for r in self.ranked if r.rank is None)


def trial_view(
    nct_id: str,
    db: StoreLike,
    *,
    geocoder: Geocoder | None = None,
    today: date | None = None,
    client: NominatimClient | None = None,
    gazetteer: Gazetteer | None = None,
) -> TrialView:
    """The trial with its sites where the store keeps them (`records.load_trial`: decided at
    sync or geocode time, placed again only when another version of the placing rules decided
    them), so that `nearest`, `sites`, maps, exports, the web page and `search` all read the
    same positions.

    Only given a client (--online) are the sites placed again, Nominatim added to the chain;
    the positions it decides are then kept in the store (`geocode.keep_positions`) for every
    later offline answer. ``geocoder``: place the sites with this one instead (tests)."""
    if client is None and geocoder is None:  # offline: the positions as kept
        return load_view(nct_id, db, today=today)
    from trialfinder.geocode import keep_positions
    from trialfinder.store import using_store

    notes: tuple[str, ...] = ()
    # Online answers are cached in the store (Nominatim's usage policy asks clients to cache).
    with using_store(db, create=client is not None) as store:
        trial = load_trial(nct_id, store)
        if geocoder is not None:
            trial = locate_sites(trial, geocoder)
        elif client is not None:
            chain = default_chain(gazetteer, store, client=client)
            trial = keep_positions(locate_sites(trial, chain), store, gazetteer)
            notes = tuple(chain.warnings)
    return TrialView(trial, notes, today or clock.today())


def load_view(nct_id: str, db: StoreLike, *, today: date | None = None) -> TrialView:
    """The store's record (else the bundled one) as the rules read it, its sites where the
    store keeps them (offline)."""
    return TrialView(load_trial(nct_id, db), today=today or clock.today())


def nearest(
    place_query: str,
    nct_id: str,
    db: StoreLike,
    *,
    limit: int = 5,
    include_all: bool = False,
    gazetteer: Gazetteer | None = None,
    geocoder: Geocoder | None = None,
    today: date | None = None,
    client: NominatimClient | None = None,
    max_km: float | None = None,
    view: TrialView | None = None,
) -> NearestAnswer:
    """The nearest sites of a trial to a place the patient typed (resolved offline; online
    with Nominatim only given a client, i.e. an explicit --online).

    Only recruiting sites unless ``include_all``. The first ranks holding ``limit`` sites are
    shown: sites that are equally near (one position) are never split by the limit, so more
    than ``limit`` may be shown. Matching sites with no position follow, whatever the limit.

    Sites farther than max_km are left out; when that leaves none, OutOfReach says how far
    the nearest one is, rather than offering a patient a site on another continent. Without
    max_km, DEFAULT_MAX_KM applies only to a place in a country where the trial has no site:
    a patient in La Réunion is still shown the French centres, however far.

    `view`: the trial already loaded and placed by `trial_view` (a server keeps it while the
    store is unchanged); nct_id and db_path are then not read.
    """
    if max_km is not None and not 0 < max_km < float("inf"):
        raise BadInput(_("--max-km must be a positive number of kilometres, not {value}")
                       .format(value=max_km))
    if limit < 1:
        raise BadInput(_("the limit must be at least 1, not {value}").format(value=limit))
    resolution = resolve_place(place_query, gazetteer=gazetteer, client=client)
    if view is None:
        view = trial_view(
            nct_id, db, geocoder=geocoder, today=today, client=client, gazetteer=gazetteer
        )
    place = resolution.place
    ranked = rank_sites(view.trial, place.latitude, place.longitude,
                        include_all=include_all, today=view.today)
    if max_km is None and not _trial_has_sites_in(view.trial, place):
        max_km = DEFAULT_MAX_KM
    if max_km is not None:
        reachable = [r for r in ranked if r.distance_km is None or r.distance_km <= max_km]
        placed = [r for r in ranked if r.distance_km is not None]
        if placed and not any(r.distance_km is not None for r in reachable):
            raise OutOfReach(_out_of_reach_message(view.trial, resolution, placed[0], max_km),
                             resolution.place, placed[0], max_km)
        ranked = reachable
    shown = within_limit(ranked, limit)
    unplaced = [r for r in ranked if r.rank is None]
    return NearestAnswer(
        resolution=resolution,
        view=view,
        ranked=tuple(shown + unplaced),
        total_matching=sum(1 for r in ranked if r.rank is not None),
        include_all=include_all,
        max_km=max_km,
        limit=limit,
    )


def _trial_has_sites_in(trial: Trial, place: Place) -> bool:
    from trialfinder.gazetteer import same_country

    return any(same_country(place, country) for country in {s.country for s in trial.sites})


def _out_of_reach_message(
    trial: Trial, resolution: Resolution, nearest_site: RankedSite, max_km: float
) -> str:
    from trialfinder.i18n import format_decimal
    from trialfinder.words import place_title

    site = nearest_site.site
    if nearest_site.recruitment.recruiting:
        message = _(
            "No recruiting site of {nct_id} within {max_km} km of {place}: the nearest, "
            "{facility} ({city}), is {distance} km away. Check the place with `trialfinder "
            "where`, or use --max-km to look farther.")
    else:
        message = _(
            "No site of {nct_id} within {max_km} km of {place}: the nearest, {facility} "
            "({city}), is {distance} km away. Check the place with `trialfinder where`, or "
            "use --max-km to look farther.")
    return message.format(
        nct_id=trial.nct_id, max_km=format_decimal(max_km, 0),
        place=place_title(resolution.place), facility=site.facility or site.city,
        city=site.city, distance=format_decimal(nearest_site.distance_km or 0.0, 0),
    )


def geocode_trial(
    nct_id: str,
    db_path: Path | None,
    *,
    client: NominatimClient | None = None,
    gazetteer: Gazetteer | None = None,
    now: datetime | None = None,
    on_site: Callable[[int, int], None] | None = None,
) -> Placement:
    """The `geocode` command: every site of the trial placed (online only given a client),
    Nominatim's answers cached in the store, and the positions kept with the stored record
    (`keep_positions`), so that every later answer reads them."""
    from trialfinder.geocode import keep_positions, place_sites
    from trialfinder.store import using_store

    with using_store(db_path, create=client is not None) as store:
        trial = load_trial(nct_id, store)
        placement = place_sites(trial, store, client=client, gazetteer=gazetteer, now=now,
                                on_site=on_site)
        keep_positions(placement.trial, store, gazetteer)
    return placement
