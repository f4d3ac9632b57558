"""The library calls behind the commands: resolve, load, place, rank. No printing here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from trialfinder.geocode import Geocoder, NominatimClient, locate_sites, place_sites, resolve_place
from trialfinder.models import Trial
from trialfinder.nearest import RankedSite, is_stale, rank_sites
from trialfinder.records import load_trial

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer, Resolution


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
    """How many sites matched the filter before the limit."""
    include_all: bool


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
    stale = is_stale(trial.source.as_of_date(), today)
    return TrialView(trial=trial, stale=stale, notes=notes)


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
) -> NearestAnswer:
    """The nearest sites of a trial to a place the patient typed (resolved offline; online
    with Nominatim only given a client, i.e. an explicit --online)."""
    resolution = resolve_place(place_query, gazetteer=gazetteer, client=client)
    view = trial_view(
        nct_id, db_path, geocoder=geocoder, today=today, client=client, gazetteer=gazetteer
    )
    place = resolution.place
    ranked = rank_sites(view.trial, place.latitude, place.longitude, include_all=include_all)
    return NearestAnswer(
        resolution=resolution,
        view=view,
        ranked=tuple(ranked[:limit]),
        total_matching=len(ranked),
        include_all=include_all,
    )
