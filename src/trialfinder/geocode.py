"""Positions for trial sites: a chain of geocoders, most precise first.

Each step is a separate class behind the `Geocoder` protocol. The chain asks them in order
and keeps the first answer; a site that already has a better position keeps it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trialfinder.models import Precision, Site, Trial

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer


@dataclass(frozen=True, slots=True)
class Position:
    latitude: float
    longitude: float
    precision: Precision
    source: str


class Geocoder(Protocol):
    def position(self, site: Site) -> Position | None:
        """A position for the site, or None to let the next step try."""


class RecordGeocoder:
    """The coordinate the record itself carries (registry geoPoint: a city centre)."""

    def position(self, site: Site) -> Position | None:
        if not site.has_position:
            return None
        return Position(
            site.latitude,  # type: ignore[arg-type]
            site.longitude,  # type: ignore[arg-type]
            site.precision,
            site.coordinate_source or "record",
        )


class GazetteerGeocoder:
    """The bundled gazetteer: the postal code's centroid when known, else the city centre."""

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self._gazetteer = gazetteer

    @property
    def gazetteer(self) -> Gazetteer:
        if self._gazetteer is None:
            from trialfinder.gazetteer import Gazetteer

            self._gazetteer = Gazetteer.bundled()
        return self._gazetteer

    def position(self, site: Site) -> Position | None:
        place = self.gazetteer.locate(site.city, site.country, site.zip)
        if place is None:
            return None
        return Position(place.latitude, place.longitude, place.precision, "bundled gazetteer")


class GeocoderChain:
    def __init__(self, steps: Sequence[Geocoder]) -> None:
        self.steps = tuple(steps)

    def position(self, site: Site) -> Position | None:
        best: Position | None = None
        for step in self.steps:
            found = step.position(site)
            if found is not None and (best is None or found.precision.rank < best.precision.rank):
                best = found
                if best.precision is Precision.FACILITY:
                    break
        return best


def default_chain(gazetteer: Gazetteer | None = None) -> GeocoderChain:
    """Offline steps only: nothing leaves the machine."""
    return GeocoderChain([RecordGeocoder(), GazetteerGeocoder(gazetteer)])


def locate_sites(trial: Trial, geocoder: Geocoder | None = None) -> Trial:
    """The trial with every site placed as precisely as the geocoder knows, and sites that
    share one position marked as such."""
    geocoder = geocoder or default_chain()
    placed = [_placed(site, geocoder.position(site)) for site in trial.sites]
    return trial.replace(sites=tuple(mark_shared_positions(placed)))


def _placed(site: Site, position: Position | None) -> Site:
    if position is None:
        return site
    return dataclasses.replace(
        site,
        latitude=position.latitude,
        longitude=position.longitude,
        precision=position.precision,
        coordinate_source=position.source,
    )


def mark_shared_positions(sites: Iterable[Site]) -> list[Site]:
    sites = list(sites)
    counts = Counter(
        (round(s.latitude, 6), round(s.longitude, 6))  # type: ignore[arg-type]
        for s in sites
        if s.has_position
    )
    return [
        dataclasses.replace(
            s,
            shared_position=s.has_position
            and counts[(round(s.latitude, 6), round(s.longitude, 6))] > 1,  # type: ignore[arg-type]
        )
        for s in sites
    ]
