"""Distances and ranking."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.nearest import (
    EARTH_RADIUS_KM,
    RankedSite,
    haversine_km,
    rank_sites,
    within_limit,
)
from trialfinder.recruitment import Standing

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


def _site(name: str, lat: float | None, lon: float | None, status: Status | None = None,
          country: str = "France", city: str = "X") -> Site:
    return Site(facility=name, city=city, country=country, status=status, latitude=lat,
                longitude=lon, precision=Precision.CITY if lat is not None else Precision.UNKNOWN)


def _trial(*sites: Site, status: Status | None = Status.RECRUITING,
           verified: str | None = "2025-01") -> Trial:
    return Trial(nct_id="NCT00000001", title="T", status=status, verified_date=verified,
                 source=Source(kind="built", description="test", as_of="2025-01"), sites=sites)


def _names(ranked: list[RankedSite]) -> list[str]:
    return [r.site.facility for r in ranked]


def test_ranking_skips_sites_that_are_not_recruiting():
    """A nearer closed site is skipped unless --all; a site's own status wins."""
    trial = _trial(
        _site("Near closed", 45.0, 5.0, Status.ACTIVE_NOT_RECRUITING),
        _site("Far open", 46.0, 5.0),
    )
    assert _names(rank_sites(trial, 45.0, 5.0)) == ["Far open"]
    everything = rank_sites(trial, 45.0, 5.0, include_all=True)
    assert _names(everything) == ["Near closed", "Far open"]
    assert [r.rank for r in everything] == [1, 2]


def test_no_status_anywhere_is_not_stated_and_never_recruiting():
    """With no status anywhere, no site is called recruiting, and it is not UNKNOWN."""
    trial = _trial(_site("A", 45.0, 5.0), status=None)
    assert rank_sites(trial, 45.0, 5.0) == []
    only = rank_sites(trial, 45.0, 5.0, include_all=True)[0]
    assert only.recruitment.standing is Standing.NOT_STATED


def test_an_unknown_or_unverified_trial_is_not_offered_as_recruiting():
    """The registry's UNKNOWN, or RECRUITING unverified for two years: shown only with --all."""
    for trial in (_trial(_site("A", 45.0, 5.0, Status.RECRUITING), status=Status.UNKNOWN),
                  _trial(_site("A", 45.0, 5.0, Status.RECRUITING), verified="2022-09")):
        assert rank_sites(trial, 45.0, 5.0) == []
        only = rank_sites(trial, 45.0, 5.0, include_all=True)[0]
        assert only.recruitment.standing is Standing.UNKNOWN


def test_sites_sharing_a_position_share_a_rank():
    """Sites at one point are one rank (recruiting first, then by name); unplaced sites last."""
    trial = _trial(
        _site("Zeta", 45.0, 5.0, Status.RECRUITING),
        _site("Alpha", 45.0, 5.0, Status.NOT_YET_RECRUITING),
        _site("Beta", 45.0, 5.0, Status.RECRUITING),
        _site("Far", 46.0, 5.0, Status.RECRUITING),
        _site("Nowhere", None, None, Status.RECRUITING),
    )
    ranked = rank_sites(trial, 44.0, 5.0, include_all=True)
    assert _names(ranked) == ["Beta", "Zeta", "Alpha", "Far", "Nowhere"]
    assert [r.rank for r in ranked] == [1, 1, 1, 2, None]
    assert [r.group_size for r in ranked] == [3, 3, 3, 1, 1]
    assert ranked[-1].distance_km is None
    recruiting = rank_sites(trial, 44.0, 5.0)
    assert [(r.rank, r.group_size) for r in recruiting] == [(1, 2), (1, 2), (2, 1), (None, 1)]


def test_the_limit_never_cuts_a_group_of_equally_near_sites():
    """--limit 1 reaching into a group shows the whole group; unplaced sites are not counted."""
    trial = _trial(
        _site("Paris A", 48.85, 2.35), _site("Paris B", 48.85, 2.35),
        _site("Lyon", 45.76, 4.83), _site("Nowhere", None, None),
    )
    ranked = rank_sites(trial, 48.0, 2.0)
    assert _names(within_limit(ranked, 1)) == ["Paris A", "Paris B"]
    assert _names(within_limit(ranked, 2)) == ["Paris A", "Paris B"]
    assert _names(within_limit(ranked, 3)) == ["Paris A", "Paris B", "Lyon"]
    assert _names(within_limit(ranked, 9)) == ["Paris A", "Paris B", "Lyon"]


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.booleans()),
                min_size=1, max_size=25),
       st.integers(1, 10), lat, lon)
def test_ranks_agree_with_distances(cells, limit, plat, plon):
    """Whatever the sites: ranks rise with distance, equal positions share one rank, a
    lower rank is never farther, and the limit keeps whole ranks only."""
    sites = tuple(
        _site(f"S{i}", 40 + a * 0.5, b * 0.5) if placed else _site(f"S{i}", None, None)
        for i, (a, b, placed) in enumerate(cells)
    )
    ranked = rank_sites(_trial(*sites), plat, plon)
    placed_ranked = [r for r in ranked if r.rank is not None]
    for first, second in itertools.pairwise(placed_ranked):
        same = (first.site.latitude, first.site.longitude) == (
            second.site.latitude, second.site.longitude)
        assert second.rank == first.rank + (0 if same else 1)
        assert first.distance_km <= second.distance_km + 1e-9
    shown = within_limit(ranked, limit)
    assert len(shown) >= min(limit, len(placed_ranked))
    shown_ranks = {r.rank for r in shown}
    assert all(r in shown for r in placed_ranked if r.rank in shown_ranks)
    assert all(r.rank is None for r in ranked[len(placed_ranked):])


def test_a_closed_trial_overrides_a_stale_recruiting_site():
    """A site still marked recruiting in a completed trial is not offered as recruiting."""
    trial = _trial(_site("Stale", 45.0, 5.0, Status.RECRUITING), status=Status.COMPLETED)
    assert rank_sites(trial, 45.0, 5.0) == []
    only = rank_sites(trial, 45.0, 5.0, include_all=True)[0]
    assert only.recruitment.status is Status.COMPLETED
    assert only.recruitment.recorded is Status.RECRUITING
    # In a recruiting trial, the site's own closed status still wins.
    open_trial = _trial(_site("Closed", 45.0, 5.0, Status.SUSPENDED))
    assert rank_sites(open_trial, 45.0, 5.0) == []
