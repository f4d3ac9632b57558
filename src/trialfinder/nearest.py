"""Great-circle distances and the ranking of a trial's sites around a point.

Sites that share one position (the registry gives the city centre, not the hospital) are
equally near: they get one rank, and no order among them is presented as nearness. A site
with no position cannot be ranked: it is listed after the placed ones.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date

from trialfinder.models import Site, Trial
from trialfinder.recruitment import (
    STANDING_ORDER,
    Recruitment,
    site_recruitment,
    trial_recruitment,
)

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two (lat, lon) points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    # min() guards against rounding pushing a just above 1 for antipodal points.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def position_key(site: Site) -> tuple[float, float] | None:
    """The site's position as compared for ties (to about 0.1 m); None when unplaced."""
    if site.latitude is None or site.longitude is None:
        return None
    return point_key(site.latitude, site.longitude)


def point_key(latitude: float, longitude: float) -> tuple[float, float]:
    """A point as positions are compared (to about 0.1 m)."""
    return (round(latitude, 6), round(longitude, 6))


@dataclass(frozen=True, slots=True)
class RankedSite:
    site: Site
    recruitment: Recruitment
    """The site's status as the status rule reads it (`recruitment.site_recruitment`)."""
    distance_km: float | None
    """None when the site has no known position (listed after the placed ones)."""
    rank: int | None = None
    """1 for the nearest position, 2 for the next …: sites that share a position share a
    rank. None for a site with no position."""
    group_size: int = 1
    """How many of the ranked sites share this site's position (1: it is alone there)."""


def rank_sites(
    trial: Trial,
    latitude: float,
    longitude: float,
    *,
    include_all: bool = False,
    today: date | None = None,
) -> list[RankedSite]:
    """The trial's sites, nearest position first, then the sites with no position; only the
    recruiting ones unless ``include_all``.

    Sites at one position share a rank; among them, recruiting ones come first, then by
    name, an order of convenience that says nothing about distance. Unplaced sites are in
    country, city, name order.
    """
    overall = trial_recruitment(trial, today)
    placed: list[tuple[tuple[float, float], RankedSite]] = []
    unplaced: list[RankedSite] = []
    for site in trial.sites:
        answer = site_recruitment(site, trial, today, overall=overall)
        if not include_all and not answer.recruiting:
            continue
        key = position_key(site)
        if key is None:
            unplaced.append(RankedSite(site, answer, None))
        else:
            distance = haversine_km(latitude, longitude, key[0], key[1])
            placed.append((key, RankedSite(site, answer, distance)))
    placed.sort(key=lambda item: (
        round(item[1].distance_km or 0.0, 6), item[0],
        STANDING_ORDER[item[1].recruitment.standing], item[1].site.facility.casefold(),
    ))
    ranks = shared_ranks([key for key, _r in placed])
    ranked = [RankedSite(r.site, r.recruitment, r.distance_km, rank, size)
              for (_key, r), (rank, size) in zip(placed, ranks, strict=True)]
    unplaced.sort(key=lambda r: (r.site.country.casefold(), r.site.city.casefold(),
                                 r.site.facility.casefold()))
    return ranked + unplaced


def shared_ranks(keys: Sequence[Hashable]) -> list[tuple[int, int]]:
    """For things already ordered from nearest, each one's (rank, group size): neighbours at
    one position (the same `position_key`) are equally near and share a rank. Keys a, a, b
    give (1, 2), (1, 2), (2, 1). Sites of a trial (`rank_sites`) and trials of a search are
    ranked by this one rule."""
    ranks: list[tuple[int, int]] = []
    start, rank = 0, 0
    while start < len(keys):
        end = start
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        rank += 1
        ranks.extend([(rank, end - start)] * (end - start))
        start = end
    return ranks


def within_limit(ranked: list[RankedSite], limit: int) -> list[RankedSite]:
    """The placed sites of the first ranks holding at least ``limit`` sites: a group of
    equally near sites is never cut in half, so the answer may hold more than ``limit``."""
    shown: list[RankedSite] = []
    for item in ranked:
        if item.rank is None:
            continue
        if len(shown) >= limit and item.rank != shown[-1].rank:
            break
        shown.append(item)
    return shown
