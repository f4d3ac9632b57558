"""The library calls behind the commands: resolve, load, place, rank. No printing here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from trialfinder.errors import BadInput, OutOfReach
from trialfinder.geocode import Geocoder, NominatimClient, locate_sites, place_sites, resolve_place
from trialfinder.models import Trial
from trialfinder.nearest import RankedSite, is_stale, rank_sites
from trialfinder.records import load_trial

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer, Place, Resolution

DEFAULT_MAX_KM = 1500.0
"""How far abroad a patient can be expected to travel for a trial visit (a day by car or train
to a neighbouring country); --max-km changes it."""


@dataclass(frozen=True, slots=True)
class TrialView:
    """A trial with its sites placed, plus what the user must be told about its freshness."""

    trial: Trial
    stale: bool
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class NearestAnswer:
    resolution: Resolution
    view: TrialView
    ranked: tuple[RankedSite, ...]
    """The sites shown, nearest first (already cut to the limit)."""
    total_matching: int
    """How many sites matched the filter (and the reach) before the limit."""
    include_all: bool
    max_km: float | None = None


def trial_view(
    nct_id: str,
    db_path: Path | None,
    *,
    geocoder: Geocoder | None = None,
    today: date | None = None,
    client: NominatimClient | None = None,
    gazetteer: Gazetteer | None = None,
) -> TrialView:
    """The trial's sites at the most precise position known: record, the store's geocode cache
    (when the store exists), the gazetteer; Nominatim too only given a client (--online)."""
    trial = load_trial(nct_id, db_path)
    notes: tuple[str, ...] = ()
    if geocoder is not None:
        trial = locate_sites(trial, geocoder)
    else:
        placement = place_sites(trial, db_path, client=client, gazetteer=gazetteer)
        trial, notes = placement.trial, placement.warnings
    return TrialView(trial=trial, stale=record_is_stale(trial, today), notes=notes)


def record_is_stale(trial: Trial, today: date | None = None) -> bool:
    """Older than six months: since it was fetched for a registry record (a fresh sync makes
    it fresh), since the page's date for a listing."""
    retrieved = trial.source.retrieved
    if retrieved:
        return is_stale(date.fromisoformat(retrieved[:10]), today)
    return is_stale(trial.source.as_of_date(), today)


def nearest(
    place_query: str,
    nct_id: str,
    db_path: Path | None,
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

    Sites farther than max_km are left out; when that leaves none, OutOfReach says how far
    the nearest one is, rather than offering a patient a site on another continent. Without
    max_km, DEFAULT_MAX_KM applies only to a place in a country where the trial has no site:
    a patient in La Réunion is still shown the French centres, however far.

    `view`: the trial already loaded and placed by `trial_view` (a server keeps it while the
    store is unchanged); nct_id and db_path are then not read.
    """
    if max_km is not None and not 0 < max_km < float("inf"):
        raise BadInput(f"--max-km must be a positive number of kilometres, not {max_km}")
    resolution = resolve_place(place_query, gazetteer=gazetteer, client=client)
    if view is None:
        view = trial_view(
            nct_id, db_path, geocoder=geocoder, today=today, client=client, gazetteer=gazetteer
        )
    place = resolution.place
    ranked = rank_sites(view.trial, place.latitude, place.longitude, include_all=include_all)
    if max_km is None and not _trial_has_sites_in(view.trial, place):
        max_km = DEFAULT_MAX_KM
    if max_km is not None:
        reachable = [r for r in ranked if r.distance_km is None or r.distance_km <= max_km]
        placed = [r for r in ranked if r.distance_km is not None]
        if placed and not any(r.distance_km is not None for r in reachable):
            raise OutOfReach(_out_of_reach_message(view.trial, resolution, placed[0], max_km))
        ranked = reachable
    return NearestAnswer(
        resolution=resolution,
        view=view,
        ranked=tuple(ranked[:limit]),
        total_matching=len(ranked),
        include_all=include_all,
        max_km=max_km,
    )


def _trial_has_sites_in(trial: Trial, place: Place) -> bool:
    from trialfinder.text import fold

    names = {fold(place.country_name), fold(place.country)}
    return any(fold(site.country) in names for site in trial.sites)


def _out_of_reach_message(
    trial: Trial, resolution: Resolution, nearest_site: RankedSite, max_km: float
) -> str:
    from trialfinder.render import place_title

    which = "recruiting site" if nearest_site.status.is_recruiting else "site"
    site = nearest_site.site
    return (
        f"No {which} of {trial.nct_id} within {max_km:,.0f} km of "
        f"{place_title(resolution.place)}: the nearest, {site.facility or site.city} "
        f"({site.city}), is {nearest_site.distance_km:,.0f} km away. "
        "Check the place with `trialfinder where`, or use --max-km to look farther."
    )
