"""Distances and ranking."""

from __future__ import annotations

import math
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.nearest import EARTH_RADIUS_KM, haversine_km, is_stale, rank_sites

lat = st.floats(min_value=-90, max_value=90, allow_nan=False)
lon = st.floats(min_value=-180, max_value=180, allow_nan=False)
HALF_CIRCUMFERENCE = math.pi * EARTH_RADIUS_KM


@given(lat, lon, lat, lon)
def test_distance_is_symmetric(a, b, c, d):
    """The distance from A to B is the distance from B to A."""
    assert math.isclose(haversine_km(a, b, c, d), haversine_km(c, d, a, b), abs_tol=1e-6)


@given(lat, lon)
def test_distance_to_self_is_zero(a, b):
    """A point is at distance zero from itself."""
    assert haversine_km(a, b, a, b) == 0.0


@given(lat, lon, lat, lon)
def test_distance_is_bounded_by_half_the_circumference(a, b, c, d):
    """No two points on Earth are farther apart than half a great circle."""
    assert 0.0 <= haversine_km(a, b, c, d) <= HALF_CIRCUMFERENCE + 1e-6


@given(lat, lon, lat, lon, lat, lon)
def test_distance_obeys_the_triangle_inequality(a, b, c, d, e, f):
    """Going through a third point is never shorter."""
    direct = haversine_km(a, b, e, f)
    assert direct <= haversine_km(a, b, c, d) + haversine_km(c, d, e, f) + 1e-6


def test_known_distance_lyon_paris():
    """Lyon to Paris city centres is about 392 km as the crow flies."""
    assert 388 < haversine_km(45.764, 4.8357, 48.8566, 2.3522) < 396


def _site(name: str, lat: float | None, lon: float | None, status: Status | None = None) -> Site:
    return Site(facility=name, city="X", country="France", status=status, latitude=lat,
                longitude=lon, precision=Precision.CITY if lat is not None else Precision.UNKNOWN)


def _trial(*sites: Site, status: Status | None = Status.RECRUITING) -> Trial:
    return Trial(nct_id="NCT00000001", title="T", status=status,
                 source=Source(kind="built", description="test", as_of="2026-01"), sites=sites)


def test_ranking_skips_sites_that_are_not_recruiting():
    """A nearer closed site is skipped unless --all; a site's own status wins."""
    trial = _trial(
        _site("Near closed", 45.0, 5.0, Status.ACTIVE_NOT_RECRUITING),
        _site("Far open", 46.0, 5.0),
    )
    assert [r.site.facility for r in rank_sites(trial, 45.0, 5.0)] == ["Far open"]
    everything = rank_sites(trial, 45.0, 5.0, include_all=True)
    assert [r.site.facility for r in everything] == ["Near closed", "Far open"]


def test_unknown_trial_status_never_counts_as_recruiting():
    """With no status anywhere, no site is called recruiting."""
    trial = _trial(_site("A", 45.0, 5.0), status=None)
    assert rank_sites(trial, 45.0, 5.0) == []
    assert rank_sites(trial, 45.0, 5.0, include_all=True)[0].status is Status.UNKNOWN


def test_shared_positions_are_ordered_by_status_then_name():
    """Sites at one point are ordered recruiting first, then by name; unplaced sites last."""
    trial = _trial(
        _site("Zeta", 45.0, 5.0, Status.RECRUITING),
        _site("Alpha", 45.0, 5.0, Status.NOT_YET_RECRUITING),
        _site("Beta", 45.0, 5.0, Status.RECRUITING),
        _site("Nowhere", None, None, Status.RECRUITING),
    )
    ranked = rank_sites(trial, 44.0, 5.0, include_all=True)
    assert [r.site.facility for r in ranked] == ["Beta", "Zeta", "Alpha", "Nowhere"]
    assert ranked[-1].distance_km is None


def test_staleness_is_six_months():
    """A record is stale after about six months."""
    assert is_stale(date(2019, 1, 1), today=date(2026, 11, 24))
    assert not is_stale(date(2026, 9, 1), today=date(2026, 11, 24))


def test_a_closed_trial_overrides_a_stale_recruiting_site():
    """A site still marked recruiting in a completed trial is not offered as recruiting."""
    trial = _trial(_site("Stale", 45.0, 5.0, Status.RECRUITING), status=Status.COMPLETED)
    assert rank_sites(trial, 45.0, 5.0) == []
    assert rank_sites(trial, 45.0, 5.0, include_all=True)[0].status is Status.COMPLETED
    # In a recruiting trial, the site's own closed status still wins.
    open_trial = _trial(_site("Closed", 45.0, 5.0, Status.SUSPENDED))
    assert rank_sites(open_trial, 45.0, 5.0) == []
