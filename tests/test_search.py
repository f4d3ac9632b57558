"""`trialfinder search`: every stored trial ranked by its nearest matching site."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from referral_fixtures import fill_store
from trialfinder.cli import app
from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.nearest import haversine_km
from trialfinder.recruitment import site_recruitment
from trialfinder.search import (
    boxes_around,
    connection_of,
    ensure_index,
    index_ready,
    nearest_trials,
)
from trialfinder.store import Store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    fill_store(path)
    return path


def _search(db: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["search", *args, "--json", "--db", str(db)])
    return result.exit_code, (json.loads(result.output) if result.exit_code == 0 else {})


def test_json_contract_and_ranking_by_nearest_recruiting_site(db: Path) -> None:
    """Nearest trial first, each with its nearest recruiting site and that site's status."""
    code, data = _search(db, "--near", "Lyon")
    assert code == 0
    assert data["place"]["name"] == "Lyon"
    first = data["trials"][0]
    assert set(first) >= {"nct_id", "title", "status", "site"}
    assert set(first["site"]) >= {"facility", "city", "country", "status", "distance_km",
                                  "latitude", "longitude"}
    assert [(t["nct_id"], t["site"]["facility"]) for t in data["trials"]] == [
        ("NCT03830788", "Hôpital Lyon Sud"),
        ("NCT06620835", "CLCC Antoine Lacassagne"),
        ("NCT06323538", "Max Rubner-Institut"),
    ]
    assert all(t["site"]["status"] == "RECRUITING" for t in data["trials"])
    distances = [t["site"]["distance_km"] for t in data["trials"]]
    assert distances == sorted(distances)


def test_a_nearer_withdrawn_or_not_yet_site_does_not_count(db: Path) -> None:
    """The site's own status wins: Centre Léon Bérard (Lyon) is WITHDRAWN for NCT06620835 and
    CH Lyon Sud is NOT_YET_RECRUITING for NCT03830788, although both trials recruit."""
    _, recruiting = _search(db, "--near", "Lyon", "--condition", "nsclc")
    (hit,) = [t for t in recruiting["trials"] if t["nct_id"] == "NCT06620835"]
    assert hit["status"] == "RECRUITING"
    assert hit["site"]["city"] == "Nice" and hit["site"]["distance_km"] > 250
    _, everything = _search(db, "--near", "Lyon", "--status", "all")
    by_id = {t["nct_id"]: t["site"] for t in everything["trials"]}
    assert by_id["NCT06620835"]["facility"] == "Centre Leon Bérard"
    assert by_id["NCT06620835"]["status"] == "WITHDRAWN"
    assert by_id["NCT03830788"]["facility"] == "CH Lyon Sud"
    assert by_id["NCT03830788"]["status"] == "NOT_YET_RECRUITING"


def test_radius_and_condition_are_case_and_accent_insensitive(db: Path) -> None:
    """--radius drops farther trials; --condition ignores case and accents."""
    _, near = _search(db, "--near", "Lyon", "--radius", "50")
    assert [t["nct_id"] for t in near["trials"]] == ["NCT03830788"]
    _, prostate = _search(db, "--near", "Lyon", "--condition", "PROSTATE")
    assert [t["nct_id"] for t in prostate["trials"]] == ["NCT03830788"]
    _, diet = _search(db, "--near", "Lyon", "--condition", "plânt-based")
    assert [t["nct_id"] for t in diet["trials"]] == ["NCT06323538"]
    _, none = _search(db, "--near", "Lyon", "--condition", "melanoma")
    assert none["trials"] == [] and none["trials_matching"] == 0


def test_text_output(db: Path) -> None:
    """The text names the place, the scope and each trial's nearest site."""
    result = runner.invoke(app, ["search", "--near", "Lyon", "--radius", "50", "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Trials with recruiting sites near Lyon (69), France, within 50 km"
    assert lines[1] == "3 trials in the store"
    assert lines[3].startswith("1. NCT03830788: Erectile Dysfunction")
    assert lines[5] == "   Nearest site: Hôpital Lyon Sud — Pierre-Bénite, France — 5.6 km — "\
        "Recruiting"


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_no_store_or_empty_store_says_to_sync(tmp_path: Path, make: str) -> None:
    """Without trials the user is told, on one line, how to fill the store."""
    path = tmp_path / "store.sqlite"
    if make == "empty":
        Store(path).close()
    result = runner.invoke(app, ["search", "--near", "Lyon", "--db", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: No trials in the store at {path}; fill it first with "
        "`trialfinder sync --condition …` (needs network)\n"
    )
    assert path.exists() == (make == "empty")  # searching never creates a store


def test_bad_status_is_a_usage_error(db: Path) -> None:
    result = runner.invoke(app, ["search", "--near", "Lyon", "--status", "open", "--db", str(db)])
    assert result.exit_code == 2
    assert result.output.startswith("Error: --status must be one of recruiting, all")


def test_index_follows_later_writes(db: Path) -> None:
    """After the index exists, a re-saved trial (a site now recruiting) is searched as saved."""
    with Store(db) as store:
        conn = connection_of(store)
        assert ensure_index(conn) and index_ready(conn)
        trial = store.get_trial("NCT06620835")
        assert trial is not None
        sites = tuple(
            s.__class__(**{**{f: getattr(s, f) for f in s.__slots__}, "status": Status.RECRUITING})
            if s.facility == "Centre Leon Bérard" else s
            for s in trial.sites
        )
        store.save_trial(trial.replace(sites=sites, keywords=("Mésothéliome",)), None)
        hits = nearest_trials(conn, 45.75, 4.85, limit=1, condition="mesotheliome")
    assert [(h.nct_id, h.site.facility) for h in hits] == [("NCT06620835", "Centre Leon Bérard")]


# -- the index against brute force ---------------------------------------------------------

latitudes = st.floats(min_value=-89.9, max_value=89.9, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
statuses = st.sampled_from([Status.RECRUITING, Status.NOT_YET_RECRUITING, Status.WITHDRAWN, None])
cities = st.tuples(latitudes, longitudes)


@st.composite
def stores(draw: st.DrawFn) -> list[Trial]:
    shared = draw(st.lists(cities, min_size=1, max_size=4))  # sites share city centres
    trials = []
    for t in range(draw(st.integers(0, 7))):
        sites = []
        for p in range(draw(st.integers(0, 6))):
            lat, lon = draw(st.one_of(st.sampled_from(shared), cities))
            sites.append(Site(f"Site {p}", "City", "Country", status=draw(statuses),
                              latitude=lat, longitude=lon, precision=Precision.CITY))
        trials.append(Trial(
            nct_id=f"NCT{10000000 + t:08d}", title=f"Trial {t}",
            source=Source("registry", "ClinicalTrials.gov API v2", "2024-01-01"),
            status=draw(st.sampled_from([Status.RECRUITING, Status.COMPLETED])),
            conditions=(draw(st.sampled_from(["Cancer du côlon", "Asthma"])),),
            sites=tuple(sites),
        ))
    return trials


def brute_force(trials: list[Trial], lat: float, lon: float, limit: int, radius: float | None,
                recruiting: bool, condition: str | None) -> list[tuple[str, float, int]]:
    best = {}
    for trial in trials:
        if condition and condition not in trial.conditions[0].lower().replace("ô", "o"):
            continue
        for position, site in enumerate(trial.sites):
            if recruiting and not site_recruitment(site, trial).recruiting:
                continue
            d = haversine_km(lat, lon, site.latitude, site.longitude)  # type: ignore[arg-type]
            if radius is not None and d > radius:
                continue
            key = (d, position)
            if trial.nct_id not in best or key < best[trial.nct_id]:
                best[trial.nct_id] = key
    ranked = sorted((d, nct, pos) for nct, (d, pos) in best.items())
    return [(nct, d, pos) for d, nct, pos in ranked[:limit]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stores(), latitudes, longitudes, st.integers(1, 5),
    st.one_of(st.none(), st.floats(min_value=1, max_value=25000)),
    st.booleans(), st.sampled_from([None, "colon"]), st.booleans(), st.booleans(),
)
def test_indexed_search_equals_brute_force(
    trials, lat, lon, limit, radius, recruiting, condition, index_first, use_index
):
    """On random small stores (index built before or after the writes, or not used at all),
    the ranking is exactly a haversine over every site."""
    with Store(":memory:") as store:
        conn = connection_of(store)
        if index_first:
            ensure_index(conn)
        for trial in trials:
            store.save_trial(trial, None)
        hits = nearest_trials(conn, lat, lon, limit=limit, radius_km=radius,
                              recruiting_only=recruiting, condition=condition,
                              use_index=use_index)
    got = [(h.nct_id, h.site.distance_km, h.site.position) for h in hits]
    assert got == brute_force(trials, lat, lon, limit, radius, recruiting, condition)


@given(latitudes, longitudes, st.floats(min_value=0.001, max_value=25000), latitudes, longitudes)
def test_boxes_hold_every_point_within_the_radius(lat, lon, radius, plat, plon):
    """A point within the radius lies in one of the boxes (antimeridian and poles too)."""
    if haversine_km(lat, lon, plat, plon) > radius:
        return
    assert any(
        lo_lat <= plat <= hi_lat and lo_lon <= plon <= hi_lon
        for lo_lat, hi_lat, lo_lon, hi_lon in boxes_around(lat, lon, radius)
    )
    assert math.isfinite(radius)


# -- the index built during a sync -------------------------------------------------------


def _points(conn) -> set[tuple]:  # type: ignore[no-untyped-def]
    return set(conn.execute(
        "SELECT id, min_lat, min_lon, trial, status, latitude, longitude, position "
        "FROM search_site_rtree"
    ))


def _expected_points(conn) -> set[tuple]:  # type: ignore[no-untyped-def]
    """What a full build from `sites` holds (R*Tree boxes are 32-bit: compare through it)."""
    conn.execute("CREATE VIRTUAL TABLE temp.check_rtree USING rtree(id, a, b, c, d, +trial, "
                 "+status, +latitude, +longitude, +position)")
    conn.execute("INSERT INTO temp.check_rtree SELECT rowid, latitude, latitude, longitude, "
                 "longitude, trial, status, latitude, longitude, position FROM sites "
                 "WHERE latitude IS NOT NULL AND longitude IS NOT NULL")
    points = set(conn.execute("SELECT id, a, c, trial, status, latitude, longitude, position "
                              "FROM temp.check_rtree"))
    conn.execute("DROP TABLE temp.check_rtree")
    return points


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(stores(), st.integers(0, 3)), min_size=1, max_size=4),
    st.integers(1, 5), st.booleans(),
)
def test_index_built_during_a_sync_equals_a_full_build(rounds, step_rows, other_writer):
    """Trials saved and re-saved (sites replaced, rowids reused) between builder steps, maybe
    with another connection writing: the finished index holds exactly the points of a full
    build, and searches work on it."""
    import sqlite3
    import tempfile

    from trialfinder.search import IndexBuilder, _trial_texts, searchable_text

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
        conn = connection_of(store)
        builder = IndexBuilder(conn)
        builder.STEP_ROWS = step_rows
        assert builder.active and not index_ready(conn)
        for trials, steps in rounds:
            for trial in trials:
                if store.save_trial(trial, None).outcome == "updated":
                    builder.replaced()
                builder.saved(trial.nct_id, searchable_text(trial))
            for _ in range(steps):
                builder.step()
        if other_writer:
            other = sqlite3.connect(Path(tmp) / "s.sqlite")
            other.execute("DELETE FROM sites WHERE rowid = (SELECT max(rowid) FROM sites)")
            other.commit()
            other.close()
        assert builder.finish() and index_ready(conn)
        assert _points(conn) == _expected_points(conn)
        texts = dict(conn.execute("SELECT nct_id, folded FROM search_trial_text"))
        assert texts == dict(_trial_texts(conn, None))


def test_index_builder_leaves_an_index_built_by_someone_else(db: Path) -> None:
    """A search that built the index while the sync ran: the builder finishes on it."""
    from trialfinder.search import IndexBuilder, drop_index

    with Store(db) as store:
        conn = connection_of(store)
        drop_index(conn)
        builder = IndexBuilder(conn)
        assert builder.active
        assert ensure_index(conn)  # the other process, here on the same file
        assert builder.finish() and index_ready(conn)
        assert _points(conn) == _expected_points(conn)


def test_unfinished_index_is_never_used_and_is_rebuilt(db: Path) -> None:
    """A sync killed before `finish` leaves points without a version row: not ready, and the
    next ensure_index rebuilds everything."""
    from trialfinder.search import IndexBuilder, drop_index

    with Store(db) as store:
        conn = connection_of(store)
        drop_index(conn)
        builder = IndexBuilder(conn)
        builder.STEP_ROWS = 1
        assert builder.step()
        assert not index_ready(conn)
        conn.execute("UPDATE sites SET latitude = latitude + 1")  # the points are now stale
        assert ensure_index(conn) and index_ready(conn)
        assert _points(conn) == _expected_points(conn)
