"""Great-circle distances and ranking of a trial's sites around a point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from trialfinder.models import Site, Status, Trial

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
STALE_AFTER_DAYS = 183  # "older than six months"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two (lat, lon) points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    # min() guards against rounding pushing a just above 1 for antipodal points.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class RankedSite:
    site: Site
    status: Status
    """The effective status: the site's own, else the trial's."""
    distance_km: float | None
    """None when the site has no known position (ranked last)."""


def rank_sites(
    trial: Trial, latitude: float, longitude: float, *, include_all: bool = False
) -> list[RankedSite]:
    """Sites nearest first; only recruiting ones unless include_all.

    Ties (sites sharing one position) are broken by status (recruiting first, then known
    statuses) and then by facility name, so the order is stable and explainable.
    """
    ranked = []
    for site in trial.sites:
        status = site.effective_status(trial.status)
        if not include_all and not status.is_recruiting:
            continue
        distance = (
            haversine_km(latitude, longitude, site.latitude, site.longitude)  # type: ignore[arg-type]
            if site.has_position
            else None
        )
        ranked.append(RankedSite(site, status, distance))
    ranked.sort(key=_rank_key)
    return ranked


def _rank_key(item: RankedSite) -> tuple[int, float, int, str]:
    status_order = 0 if item.status.is_recruiting else (2 if item.status is Status.UNKNOWN else 1)
    if item.distance_km is None:
        return (1, 0.0, status_order, item.site.facility.casefold())
    return (0, round(item.distance_km, 6), status_order, item.site.facility.casefold())


def is_stale(as_of: date, today: date | None = None) -> bool:
    today = today or date.today()
    return (today - as_of).days > STALE_AFTER_DAYS
