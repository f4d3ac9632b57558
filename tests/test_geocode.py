"""Geocoding sites: record → cache → gazetteer → Nominatim (only when asked), and `where`.

Nominatim is a fake server on 127.0.0.1 (pytest-httpserver) answering JSON shaped like the
real /search?format=json&addressdetails=1 answers. The facility positions it serves are the
real ones (OpenStreetMap, checked against the hospitals' street addresses):
Hôpital de la Timone, 264 rue Saint-Pierre, 13005 Marseille ≈ 43.2897, 5.4024;
Institut Paoli-Calmettes, 232 boulevard de Sainte-Marguerite, 13009 Marseille ≈ 43.2607, 5.4050.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from trialfinder import __version__, geocode
from trialfinder.cli import app
from trialfinder.errors import BadInput, UnknownPlace
from trialfinder.gazetteer import Gazetteer
from trialfinder.geocode import (
    CacheGeocoder,
    GazetteerGeocoder,
    GeocoderChain,
    NominatimClient,
    NominatimGeocoder,
    RateLimiter,
    RecordGeocoder,
    cache_key,
    default_chain,
    online_requested,
    place_sites,
    resolve_place,
)
from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.nearest import haversine_km, rank_sites
from trialfinder.registry import GEOPOINT_SOURCE
from trialfinder.store import Store

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NCT = "NCT02260505"

TIMONE = "Centre Hospitalier Universitaire La Timone"
IPC = "Institut Paoli-Calmettes"
BERARD = "Centre Léon Bérard"
TIMONE_POS = (43.2897, 5.4024)
IPC_POS = (43.2607, 5.4050)

OSM_LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"


def _answer(name: str, lat: float, lon: float, *, road: str, suburb: str, postcode: str,
            kind: str = "hospital", rank: int = 30, city: str = "Marseille") -> dict[str, Any]:
    """One result as Nominatim's /search?format=json&addressdetails=1 gives it (built)."""
    return {
        "place_id": 1,
        "licence": OSM_LICENCE,
        "osm_type": "way",
        "osm_id": 1,
        "lat": f"{lat}",
        "lon": f"{lon}",
        "class": "amenity",
        "type": kind,
        "place_rank": rank,
        "importance": 0.3,
        "addresstype": "amenity",
        "name": name,
        "display_name": f"{name}, {road}, {suburb}, {city}, {postcode}, France",
        "address": {
            "amenity": name,
            "road": road,
            "suburb": suburb,
            "city": city,
            "county": "Bouches-du-Rhône",
            "state": "Provence-Alpes-Côte d'Azur",
            "postcode": postcode,
            "country": "France",
            "country_code": "fr",
        },
        "boundingbox": [str(lat - 0.002), str(lat + 0.002), str(lon - 0.002), str(lon + 0.002)],
    }


FACILITY_ANSWERS = {
    TIMONE: [
        _answer("Hôpital de la Timone", *TIMONE_POS, road="Rue Saint-Pierre",
                suburb="5e Arrondissement", postcode="13005")
    ],
    IPC: [
        _answer(IPC, *IPC_POS, road="Boulevard de Sainte-Marguerite",
                suburb="9e Arrondissement", postcode="13009")
    ],
    BERARD: [],  # a miss
}


def _site(facility: str, city: str, *, status: Status | None = Status.RECRUITING,
          **kw: Any) -> Site:
    return Site(facility=facility, city=city, country="France", status=status, **kw)


def _trial(*sites: Site, nct_id: str = NCT) -> Trial:
    return Trial(
        nct_id=nct_id,
        title="IMADGIST (built for tests)",
        source=Source(kind="built", description="built for tests", as_of="2026-11"),
        status=Status.RECRUITING,
        sites=sites,
    )


TRIAL = _trial(_site(IPC, "Marseille"), _site(TIMONE, "Marseille"), _site(BERARD, "Lyon"))


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.bundled()


@pytest.fixture
def nominatim(httpserver: HTTPServer) -> HTTPServer:
    """A fake Nominatim: structured facility searches and free-form place searches."""

    def handler(request: Request) -> Response:
        args = request.args
        if "amenity" in args:
            body = FACILITY_ANSWERS.get(args["amenity"], [])
        else:
            body = PLACE_ANSWERS.get(args.get("q", ""), [])
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/search").respond_with_handler(handler)
    return httpserver


def _url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def _client(server: HTTPServer, **kw: Any) -> NominatimClient:
    kw.setdefault("sleep", lambda seconds: None)
    return NominatimClient(_url(server), **kw)


def _requests(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "tf.sqlite") as s:
        yield s


def _online_chain(server: HTTPServer, store: Store, gazetteer: Gazetteer, now: datetime = NOW,
                  **kw: Any) -> GeocoderChain:
    return default_chain(gazetteer, store, client=_client(server, **kw), now=now)


# --- the Nominatim request -----------------------------------------------------------------


def test_facility_query_is_structured_restricted_to_the_country_and_names_the_project(
    nominatim, store, gazetteer
):
    """One structured search per facility: amenity, city, country, countrycodes=fr, and a
    User-Agent naming trialfinder."""
    position = _online_chain(nominatim, store, gazetteer).position(_site(TIMONE, "Marseille"))
    assert position is not None
    (request,) = _requests(nominatim)
    assert request.path == "/search"
    assert dict(request.args) == {
        "amenity": TIMONE,
        "city": "Marseille",
        "country": "France",
        "format": "json",
        "limit": "1",
        "countrycodes": "fr",
        "addressdetails": "1",
    }
    assert request.headers["User-Agent"] == (
        f"trialfinder/{__version__} (+https://github.com/trialfinder/trialfinder)"
    )


def test_postal_code_is_sent_only_when_the_gazetteer_knows_it(nominatim, store, gazetteer):
    """A real postal code goes into the query; a CEDEX code (unknown to the gazetteer, and to
    OpenStreetMap) is left out rather than make the search miss."""
    chain = _online_chain(nominatim, store, gazetteer)
    chain.position(_site(IPC, "Marseille", zip="13009"))
    chain.position(_site(TIMONE, "Marseille", zip="13385"))  # CEDEX code of AP-HM
    first, second = _requests(nominatim)
    assert first.args["postalcode"] == "13009"
    assert "postalcode" not in second.args


def test_url_is_split_into_scheme_and_domain(nominatim):
    """TRIALFINDER_NOMINATIM_URL may be http (a local server) and carry a path."""
    client = NominatimClient("http://127.0.0.1:8080/nominatim/")
    assert client._geocoder.api == "http://127.0.0.1:8080/nominatim/search"
    assert NominatimClient()._geocoder.api == "https://nominatim.openstreetmap.org/search"
    with pytest.raises(BadInput, match=r"TRIALFINDER_NOMINATIM_URL='nominatim\.local'"):
        NominatimClient("nominatim.local")


def test_url_comes_from_the_environment(monkeypatch):
    """Without an explicit URL the client reads TRIALFINDER_NOMINATIM_URL."""
    monkeypatch.setenv("TRIALFINDER_NOMINATIM_URL", "http://127.0.0.1:9/")
    assert NominatimClient()._geocoder.api == "http://127.0.0.1:9/search"


# --- results, cache and expiry ------------------------------------------------------------


def test_facility_position_is_cached_with_source_and_date(nominatim, store, gazetteer):
    """A hit is a facility-level position labelled with its source and date, and cached."""
    position = _online_chain(nominatim, store, gazetteer).position(_site(TIMONE, "Marseille"))
    assert position == geocode.Position(
        *TIMONE_POS, Precision.FACILITY, "Nominatim/OpenStreetMap, 2026-11-24"
    )
    cached = store.geocode_get(cache_key(_site(TIMONE, "Marseille")))
    assert (cached.latitude, cached.longitude) == TIMONE_POS
    assert cached.precision == "facility"
    assert cached.source == "Nominatim/OpenStreetMap"
    assert cached.fetched_at.startswith("2026-11-24")
    assert json.loads(cached.raw)["licence"] == OSM_LICENCE


def test_second_run_asks_nothing(nominatim, tmp_path, gazetteer):
    """Hits and misses are cached: a second online run sends no request at all."""
    db = tmp_path / "tf.sqlite"
    first = place_sites(TRIAL, db, client=_client(nominatim), gazetteer=gazetteer, now=NOW)
    assert first.requests == 3
    assert len(_requests(nominatim)) == 3
    second = place_sites(TRIAL, db, client=_client(nominatim), gazetteer=gazetteer, now=NOW)
    assert second.requests == 0
    assert len(_requests(nominatim)) == 3
    assert [s.precision for s in second.trial.sites] == [
        Precision.FACILITY, Precision.FACILITY, Precision.CITY
    ]
    assert second.warnings == ()  # the cached miss is not reported again


@pytest.mark.parametrize(("days", "asked"), [(89, 0), (91, 1)])
def test_hits_expire_after_90_days(nominatim, store, gazetteer, days, asked):
    """A cached facility position is asked again only once it is older than 90 days."""
    site = _site(TIMONE, "Marseille")
    _online_chain(nominatim, store, gazetteer).position(site)
    later = NOW + timedelta(days=days)
    position = _online_chain(nominatim, store, gazetteer, now=later).position(site)
    assert len(_requests(nominatim)) == 1 + asked
    assert position.precision is Precision.FACILITY
    expected_date = later.date() if asked else NOW.date()
    assert position.source == f"Nominatim/OpenStreetMap, {expected_date.isoformat()}"


@pytest.mark.parametrize(("days", "asked"), [(29, 0), (31, 1)])
def test_misses_are_cached_for_30_days(nominatim, store, gazetteer, days, asked):
    """A facility Nominatim does not know falls back to the gazetteer with a warning, and is
    not asked again for 30 days."""
    site = _site(BERARD, "Lyon")
    chain = _online_chain(nominatim, store, gazetteer)
    position = chain.position(site)
    assert position.precision is Precision.CITY
    assert position.source == "bundled gazetteer"
    assert chain.warnings == [
        "Centre Léon Bérard (Lyon): not found by Nominatim/OpenStreetMap; "
        "using the next best position"
    ]
    cached = store.geocode_get(cache_key(site))
    assert cached.latitude is None and cached.fetched_at.startswith("2026-11-24")
    _online_chain(nominatim, store, gazetteer, now=NOW + timedelta(days=days)).position(site)
    assert len(_requests(nominatim)) == 1 + asked


def test_offline_cache_serves_old_positions(store):
    """Offline, a facility position found online long ago still beats a city centre."""
    site = _site(TIMONE, "Marseille")
    store.geocode_put(cache_key(site), *TIMONE_POS, "facility", "Nominatim/OpenStreetMap",
                      now="2025-01-02T10:00:00+00:00")
    assert CacheGeocoder(store).position(site) == geocode.Position(
        *TIMONE_POS, Precision.FACILITY, "Nominatim/OpenStreetMap, 2025-01-02"
    )
    assert CacheGeocoder(store, max_age=timedelta(days=90), now=NOW).position(site) is None


# --- errors fall back ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (429, "Nominatim/OpenStreetMap refused: too many requests (429)"),
        (500, "Nominatim/OpenStreetMap answered HTTP 500"),
        (503, "Nominatim/OpenStreetMap answered HTTP 503"),
        (404, "Nominatim/OpenStreetMap answered HTTP 404"),
    ],
)
def test_http_errors_fall_back_with_one_warning(httpserver, store, gazetteer, status, message):
    """429 and 5xx answers: the next best position and one warning line; nothing cached,
    so the next run asks again."""
    httpserver.expect_request("/search").respond_with_data("busy", status=status)
    site = _site(TIMONE, "Marseille")
    chain = _online_chain(httpserver, store, gazetteer)
    position = chain.position(site)
    assert (position.precision, position.source) == (Precision.CITY, "bundled gazetteer")
    assert chain.warnings == [f"{TIMONE} (Marseille): {message}; using the next best position"]
    assert store.geocode_get(cache_key(site)) is None
    assert len(_requests(httpserver)) == 1  # no retry hammering the server


def test_timeout_falls_back(httpserver, store, gazetteer):
    """A server slower than the timeout: a warning and the gazetteer's position."""

    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/search").respond_with_handler(slow)
    chain = _online_chain(httpserver, store, gazetteer, timeout=0.1)
    position = chain.position(_site(TIMONE, "Marseille"))
    assert position.precision is Precision.CITY
    assert chain.warnings == [f"{TIMONE} (Marseille): Nominatim/OpenStreetMap timed out (no "
                              "answer within 0.1 s); using the next best position"]


def test_unreachable_server_falls_back(store, gazetteer):
    """Nothing listening: a warning and the gazetteer's position, at once (no retries)."""
    chain = default_chain(
        gazetteer, store, client=NominatimClient("http://127.0.0.1:1", sleep=lambda s: None),
        now=NOW,
    )
    position = chain.position(_site(TIMONE, "Marseille"))
    assert position.precision is Precision.CITY
    assert chain.warnings == [f"{TIMONE} (Marseille): Nominatim/OpenStreetMap unreachable "
                              "(connection refused); using the next best position"]


def test_error_keeps_an_expired_position(httpserver, store, gazetteer):
    """When an expired facility position cannot be refreshed, it is kept, with a warning."""
    site = _site(TIMONE, "Marseille")
    store.geocode_put(cache_key(site), *TIMONE_POS, "facility", "Nominatim/OpenStreetMap",
                      now="2026-01-10T10:00:00+00:00")
    httpserver.expect_request("/search").respond_with_data("oops", status=500)
    chain = _online_chain(httpserver, store, gazetteer)
    position = chain.position(site)
    assert position.source == "Nominatim/OpenStreetMap, 2026-01-10"
    assert chain.warnings[0].endswith("; kept the position found earlier")


# --- plausibility -------------------------------------------------------------------------


def test_namesake_far_from_the_city_is_discarded(httpserver, store, gazetteer):
    """An answer more than 50 km from the site's city centre (a same-named hospital in
    another town) is discarded with a warning, and cached as a miss."""
    paris = _answer(IPC, 48.8566, 2.3522, road="Rue de Rivoli", suburb="1er Arrondissement",
                    postcode="75001", city="Paris")
    httpserver.expect_request("/search").respond_with_json([paris])
    site = _site(IPC, "Marseille")
    chain = _online_chain(httpserver, store, gazetteer)
    position = chain.position(site)
    assert position.precision is Precision.CITY
    assert chain.warnings == [
        f"{IPC} (Marseille): Nominatim/OpenStreetMap answered {IPC}, Rue de Rivoli, "
        "1er Arrondissement, Paris, 75001, France, 661 km from Marseille: taken for a "
        "namesake and discarded"
    ]
    assert store.geocode_get(cache_key(site)).latitude is None


def test_answer_naming_only_the_city_is_not_a_facility(httpserver, store, gazetteer):
    """A result that is the town itself (place rank 16) is not taken for the facility."""
    town = _answer("Marseille", 43.2962, 5.3700, road="", suburb="", postcode="13000",
                   kind="city", rank=16)
    town["class"], town["addresstype"] = "boundary", "city"
    httpserver.expect_request("/search").respond_with_json([town])
    chain = _online_chain(httpserver, store, gazetteer)
    assert chain.position(_site(TIMONE, "Marseille")).source == "bundled gazetteer"
    assert chain.warnings == [
        f"{TIMONE} (Marseille): Nominatim/OpenStreetMap found only the city centre; ignored"
    ]


def test_served_positions_are_true_to_the_addresses(gazetteer):
    """The fixture's positions sit in their postal codes: each is nearer its own postal
    code's centroid than the other hospital is."""
    c13005 = gazetteer.resolve("13005").place
    c13009 = gazetteer.resolve("13009").place
    assert haversine_km(c13005.latitude, c13005.longitude, *TIMONE_POS) < 1.5
    assert haversine_km(c13009.latitude, c13009.longitude, *IPC_POS) < 1.5
    assert haversine_km(*TIMONE_POS, *IPC_POS) == pytest.approx(3.2, abs=0.2)


# --- the order of the chain ---------------------------------------------------------------


def test_chain_order_record_then_cache_then_gazetteer(store, gazetteer):
    """The most precise answer wins: a cached facility beats a postal code centroid, which
    beats the record's city centre; without cache or postal code the record's point stays."""
    record_point: dict[str, Any] = {
        "latitude": 43.29695,
        "longitude": 5.38107,
        "precision": Precision.CITY,
        "coordinate_source": "registry geoPoint",
    }
    bare = _site(TIMONE, "Marseille", **record_point)
    with_zip = _site(TIMONE, "Marseille", zip="13005", **record_point)
    chain = default_chain(gazetteer, store)
    assert chain.position(bare).source == "registry geoPoint"
    assert chain.position(with_zip).precision is Precision.POSTAL_CODE
    store.geocode_put(cache_key(bare), *TIMONE_POS, "facility", "Nominatim/OpenStreetMap",
                      now=NOW.isoformat())
    assert chain.position(with_zip).precision is Precision.FACILITY
    steps = [type(s) for s in default_chain(gazetteer, store, client=_client_offline()).steps]
    assert steps == [RecordGeocoder, CacheGeocoder, GazetteerGeocoder, NominatimGeocoder]


def _client_offline() -> NominatimClient:
    return NominatimClient("http://127.0.0.1:1", sleep=lambda s: None)


def test_shared_city_centre_is_marked_and_ranked_by_status_then_name(gazetteer):
    """Two Marseille sites without facility positions share the city centre: both are marked,
    and ranking puts the recruiting one first, then the names in order."""
    trial = _trial(
        _site(TIMONE, "Marseille", status=Status.COMPLETED),
        _site(IPC, "Marseille"),
        _site("AP-HM Hôpital Nord", "Marseille"),
    )
    placed = place_sites(trial, None, gazetteer=gazetteer).trial
    assert all(s.shared_position for s in placed.sites)
    ranked = rank_sites(placed, 43.6, 5.0, include_all=True)
    assert [r.site.facility for r in ranked] == ["AP-HM Hôpital Nord", IPC, TIMONE]


def test_nominatim_is_not_in_the_offline_chain(gazetteer, store):
    """Without a client the chain has no online step."""
    assert NominatimGeocoder not in [type(s) for s in default_chain(gazetteer, store).steps]


# --- rate limit ---------------------------------------------------------------------------


def test_rate_limiter_spaces_calls_one_second_apart():
    """Successive calls are at least min_delay_seconds apart (fake clock and sleep)."""
    clock = [100.0]
    calls: list[float] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    def call(x: int) -> int:
        calls.append(clock[0])
        clock[0] += 0.2  # each request takes 0.2 s
        return x

    limited = RateLimiter(call, min_delay_seconds=1.0, sleep=sleep, clock=lambda: clock[0])
    assert [limited(i) for i in range(4)] == [0, 1, 2, 3]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == pytest.approx([1.0, 1.0, 1.0])
    assert sleeps == pytest.approx([0.8, 0.8, 0.8])


def test_client_is_rate_limited(nominatim, store, gazetteer):
    """The Nominatim client waits between requests (the injected sleep sees the waits)."""
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    chain = _online_chain(nominatim, store, gazetteer, sleep=sleep, clock=lambda: clock[0])
    chain.position(_site(TIMONE, "Marseille"))
    chain.position(_site(IPC, "Marseille"))
    assert sleeps == [1.0]  # the fake clock did not move during the first request


# --- the patient's place ------------------------------------------------------------------

PLACE_ANSWERS: dict[str, list[dict[str, Any]]] = {
    "10 rue Paradis, Marseille": [
        {
            **_answer("", 43.2951, 5.3765, road="Rue Paradis", suburb="1er Arrondissement",
                      postcode="13001"),
            "class": "place", "type": "house", "addresstype": "place",
            "display_name": "10, Rue Paradis, 1er Arrondissement, Marseille, 13001, France",
        }
    ],
}


def test_place_is_resolved_offline_without_a_client(gazetteer):
    """No client: the gazetteer's answer as is."""
    assert resolve_place("13005", gazetteer=gazetteer) == gazetteer.resolve("13005")


def test_unknown_place_found_online(nominatim, gazetteer):
    """A street address the gazetteer cannot read is found online, with a note saying so."""
    with pytest.raises(UnknownPlace):
        resolve_place("10 rue Paradis, Marseille", gazetteer=gazetteer)
    resolution = resolve_place(
        "10 rue Paradis, Marseille", gazetteer=gazetteer, client=_client(nominatim)
    )
    place = resolution.place
    assert (place.name, place.country, place.department, place.postal_code) == (
        "Marseille", "FR", "13", "13001"
    )
    assert (place.latitude, place.longitude) == (43.2951, 5.3765)
    assert resolution.notes == (
        "Not in the bundled gazetteer; found online by Nominatim/OpenStreetMap: 10, Rue "
        "Paradis, 1er Arrondissement, Marseille, 13001, France. Check that it is the place "
        "you meant.",
    )
    (request,) = _requests(nominatim)
    assert request.args["q"] == "10 rue Paradis, Marseille"
    assert "countrycodes" not in request.args


def test_online_miss_keeps_the_offline_answer(nominatim, gazetteer):
    """A place Nominatim does not know keeps the gazetteer's answer, with a note."""
    resolution = resolve_place("13009", gazetteer=gazetteer, client=_client(nominatim))
    assert resolution.place == gazetteer.resolve("13009").place
    assert resolution.notes[-1] == (
        "Nominatim/OpenStreetMap does not know '13009'; offline answer kept."
    )
    assert _requests(nominatim)[0].args["countrycodes"] == "fr"


# --- the whole trial, the CLI -------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "tf.sqlite"
    with Store(path) as store:
        store.save_trial(TRIAL, None)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def cli_env(monkeypatch, nominatim):
    monkeypatch.setenv("TRIALFINDER_NOMINATIM_URL", _url(nominatim))
    monkeypatch.setattr(geocode, "MIN_DELAY_SECONDS", 0.0)
    monkeypatch.delenv("TRIALFINDER_ONLINE", raising=False)
    return nominatim


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_geocode_online_reports_each_site(cli_env, db):
    """`geocode --online` places every site, says where each position comes from, and warns
    about the facility it could not find."""
    result = _run("geocode", "--trial", NCT, "--db", str(db), "--online")
    assert result.exit_code == 0, result.output
    today = datetime.now(UTC).date().isoformat()
    lines = result.stdout.splitlines()
    assert lines[0] == f"{NCT}: 3 sites (online: 3 request(s) to Nominatim/OpenStreetMap)"
    assert lines[2:8] == [
        f"1. {IPC} — Marseille, France",
        f"   Position: 43.2607, 5.4050 — facility (Nominatim/OpenStreetMap, {today})",
        f"2. {TIMONE} — Marseille, France",
        f"   Position: 43.2897, 5.4024 — facility (Nominatim/OpenStreetMap, {today})",
        f"3. {BERARD} — Lyon, France",
        "   Position: 45.7491, 4.8479 — city centre (city; bundled gazetteer)",
    ]
    assert "Precision: 2 facility, 1 city centre" in lines
    assert lines[-1] == (
        "Warning: Centre Léon Bérard (Lyon): not found by Nominatim/OpenStreetMap; "
        "using the next best position"
    )
    again = _run("geocode", "--trial", NCT, "--db", str(db), "--online", "--json")
    assert again.exit_code == 0
    data = json.loads(again.stdout)
    assert (data["online"], data["requests"], data["warnings"]) == (True, 0, [])
    assert [s["precision"] for s in data["sites"]] == ["facility", "facility", "city centre"]
    assert len(_requests(cli_env)) == 3


def test_geocode_online_from_the_environment(cli_env, db, monkeypatch):
    """TRIALFINDER_ONLINE=1 turns on online geocoding for the `geocode` command."""
    monkeypatch.setenv("TRIALFINDER_ONLINE", "1")
    result = _run("geocode", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requests"] == 3


def test_geocode_offline_sends_nothing(cli_env, db, no_network):
    """Without --online, `geocode` reports offline positions and opens no connection."""
    result = _run("geocode", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"{NCT}: 3 sites (offline: record, geocode cache, bundled gazetteer)"
    )
    assert "Precision: 3 city centre" in result.stdout.splitlines()
    assert _requests(cli_env) == []


def test_nearest_uses_facility_positions(cli_env, db):
    """Once facilities are geocoded, `nearest 13005` puts La Timone first and `nearest 13009`
    Institut Paoli-Calmettes, offline."""
    assert _run("geocode", "--db", str(db), "--online").exit_code == 0
    asked = len(_requests(cli_env))
    first = {}
    for code in ("13005", "13009"):
        result = _run("nearest", code, "--db", str(db), "--json")
        assert result.exit_code == 0, result.output
        sites = json.loads(result.stdout)["sites"]
        first[code] = [(s["facility"], s["distance_km"]) for s in sites[:2]]
    assert first["13005"] == [(TIMONE, 0.7), (IPC, 3.9)]
    assert first["13009"] == [(IPC, 0.7), (TIMONE, 3.9)]
    assert len(_requests(cli_env)) == asked


def test_geocode_online_keeps_the_positions_with_the_record(cli_env, db):
    """`geocode --online` stores the facility positions with the trial's record: `search`
    (which reads the store's index) then finds La Timone itself, offline."""
    assert _run("geocode", "--db", str(db), "--online").exit_code == 0
    with Store(db) as store:
        stored = {s.facility: (s.latitude, s.longitude) for s in store.get_trial(NCT).sites}
    assert (stored[TIMONE], stored[IPC]) == (TIMONE_POS, IPC_POS)
    result = _run("search", "--near", "13005", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    (hit,) = json.loads(result.stdout)["trials"]
    assert (hit["site"]["facility"], hit["site"]["latitude"], hit["site"]["longitude"]) == (
        TIMONE, *TIMONE_POS)


def test_nearest_online_keeps_the_facility_positions(cli_env, db):
    """The facilities `nearest --online` found are kept with the record (never the patient's
    place): the next offline `nearest` shows them and asks nothing."""
    assert _run("nearest", "13005", "--db", str(db), "--online").exit_code == 0
    asked = len(_requests(cli_env))
    result = _run("nearest", "13009", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    sites = json.loads(result.stdout)["sites"]
    assert [(s["facility"], s["latitude"], s["longitude"]) for s in sites[:2]] == [
        (IPC, *IPC_POS), (TIMONE, *TIMONE_POS)]
    assert len(_requests(cli_env)) == asked
    with Store(db) as store:
        assert not any("13005" in str(value) for row in store.read("SELECT * FROM trials")
                       for value in row)  # no trace of the place typed


def test_the_bundled_record_takes_the_cached_facility_positions(cli_env, tmp_path):
    """A store that does not hold the bundled trial: after `geocode --online`, `nearest`
    shows its facilities where Nominatim put them, offline, as `sites` does."""
    db = tmp_path / "cache-only.sqlite"
    assert _run("geocode", "--db", str(db), "--online").exit_code == 0
    asked = len(_requests(cli_env))
    nearest = json.loads(_run("nearest", "13005", "--db", str(db), "--json").stdout)
    assert [(s["facility"], s["latitude"], s["longitude"]) for s in nearest["sites"][:2]] == [
        (TIMONE, *TIMONE_POS), (IPC, *IPC_POS)]
    sites = json.loads(_run("sites", "--db", str(db), "--json").stdout)["sites"]
    assert {s["facility"]: (s["latitude"], s["longitude"]) for s in sites
            if s["facility"] in (TIMONE, IPC)} == {TIMONE: TIMONE_POS, IPC: IPC_POS}
    assert len(_requests(cli_env)) == asked


def test_nearest_without_online_sends_no_request(cli_env, db, monkeypatch, no_network):
    """Even with TRIALFINDER_ONLINE=1 and a Nominatim URL set, `nearest` without --online
    opens no connection: the patient's place never leaves the machine."""
    monkeypatch.setenv("TRIALFINDER_ONLINE", "1")
    result = _run("nearest", "13005", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert (
        "1. Equally near, 1.6 km: 2 sites placed at one point, the centre of Marseille (the "
        "record gives no street address)"
    ) in result.stdout.splitlines()
    assert _requests(cli_env) == []


def test_nearest_online_looks_up_place_and_sites(cli_env, db):
    """`nearest PLACE --online` asks Nominatim for the place and the facilities."""
    result = _run("nearest", "10 rue Paradis, Marseille", "--db", str(db), "--online")
    assert result.exit_code == 0, result.output
    asked = [r.args.get("q") or r.args["amenity"] for r in _requests(cli_env)]
    assert asked == ["10 rue Paradis, Marseille", IPC, TIMONE, BERARD]
    assert result.stdout.splitlines()[1] == (
        "Note: Not in the bundled gazetteer; found online by Nominatim/OpenStreetMap: 10, "
        "Rue Paradis, 1er Arrondissement, Marseille, 13001, France. Check that it is the "
        "place you meant."
    )


def test_where_shows_how_a_place_resolves(no_network):
    """`where` prints the place, its position and precision, and the other candidates."""
    result = _run("where", "13009")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "“13009” resolves to Marseille (13), 13009",
        "Name: Marseille",
        "Region: Provence-Alpes-Côte d'Azur",
        "Department: 13",
        "Country: France (FR)",
        "Postal code: 13009",
        "Position: 43.2543, 5.4057 (postal code)",
        "Other candidates: none",
    ]


def test_where_lists_other_candidates_as_json(no_network):
    """An ambiguous name: `where --json` shows what was taken and what else it could be."""
    result = _run("where", "Saint-Denis", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["place"]["department"] == "93"
    assert data["alternatives"][0] == "Saint-Denis (974)"
    assert data["notes"]


def test_where_unknown_place_is_an_error(no_network):
    """An unknown place: one `Error:` line on stderr and exit code 1, offline."""
    result = _run("where", "10 rue Paradis, Marseille")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Unknown place '10 rue Paradis, Marseille'")


def test_where_online(cli_env):
    """`where --online` may look the place up on Nominatim."""
    result = _run("where", "10 rue Paradis, Marseille", "--online")
    assert result.exit_code == 0, result.output
    assert "Position: 43.2951, 5.3765 (facility)" in result.stdout.splitlines()
    assert len(_requests(cli_env)) == 1


def test_help_states_the_privacy_rule():
    """Each command that takes the patient's place says it stays offline without --online."""
    for command in ("nearest", "where"):
        text = " ".join(_run(command, "--help").stdout.split())
        assert "unless you give --online" in text or "leaves this machine only with" in text
        assert "TRIALFINDER_ONLINE does not turn it on" in text


def test_online_setting(monkeypatch):
    """--online or TRIALFINDER_ONLINE=1/true/yes/on turns site geocoding online."""
    assert online_requested(True, environ={})
    assert online_requested(False, environ={"TRIALFINDER_ONLINE": "yes"})
    assert not online_requested(False, environ={"TRIALFINDER_ONLINE": "0"})
    assert not online_requested(False, environ={})


def test_geocode_trial_offline_writes_nothing(tmp_path, gazetteer):
    """Offline geocoding never creates the store."""
    db = tmp_path / "absent.sqlite"
    placement = place_sites(TRIAL, db, gazetteer=gazetteer)
    assert not db.exists()
    assert placement.requests == 0


# --- the offline placing a store keeps ------------------------------------------------------

LYON_GEOPOINT = {"latitude": 45.74846, "longitude": 4.84671, "precision": Precision.CITY,
                 "coordinate_source": GEOPOINT_SOURCE}
NEW_YORK = {"latitude": 40.71427, "longitude": -74.00597, "precision": Precision.CITY,
            "coordinate_source": GEOPOINT_SOURCE}


def _us(facility: str, city: str, state: str | None, zip_code: str | None = None,
        **kw: Any) -> Site:
    return Site(facility=facility, city=city, country="United States", state=state,
                zip=zip_code, status=Status.RECRUITING, **kw)


def _by_facility(trial: Trial) -> dict[str, Site]:
    return {s.facility: s for s in trial.sites}


def test_place_offline_places_only_where_the_fields_agree(gazetteer):
    """Sites without a registry position are placed from the gazetteer only where city, state
    and postal code agree, say which matched, or say why they are not placed; the trial
    records which version placed it."""
    trial = _trial(
        _us("Summit Clinic", "Summit", "Wisconsin"),
        _us("Memorial Regional", "Hollywood", "Florida", "33021"),
        _us("Loyola", "Maywood", "Illinois"),
        _us("Somewhere Springfield", "Springfield", None),
        _site(BERARD, "Lyon", **LYON_GEOPOINT),
    )
    placed = geocode.place_offline(trial, gazetteer=gazetteer)
    sites = _by_facility(placed)
    summit = sites["Summit Clinic"]
    assert (summit.has_position, summit.unplaced_reason, summit.matched) == (
        False, "state differs", ())
    hollywood = sites["Memorial Regional"]
    assert (hollywood.precision, hollywood.coordinate_source, hollywood.matched) == (
        Precision.POSTAL_CODE, "bundled gazetteer", ("postal code", "city", "state"))
    assert haversine_km(hollywood.latitude, hollywood.longitude, 26.01, -80.15) < 10
    maywood = sites["Loyola"]
    assert (maywood.precision, maywood.matched) == (Precision.CITY, ("city", "state"))
    assert haversine_km(maywood.latitude, maywood.longitude, 41.88, -87.84) < 5
    assert sites["Somewhere Springfield"].unplaced_reason == "ambiguous"
    berard = sites[BERARD]
    assert (berard.latitude, berard.coordinate_source, berard.matched) == (
        45.74846, GEOPOINT_SOURCE, ())
    assert placed.placed_by == geocode.placing_version(gazetteer)


def test_a_registry_point_outside_the_country_is_not_trusted(gazetteer):
    """A geoPoint in New York for a site in France is dropped: the gazetteer places the site
    from its address, or it is left unplaced saying why."""
    trial = _trial(_site(BERARD, "Lyon", **NEW_YORK), _site(IPC, "Nowhere-sur-Mer", **NEW_YORK))
    sites = _by_facility(geocode.place_offline(trial, gazetteer=gazetteer))
    lyon = sites[BERARD]
    assert (lyon.coordinate_source, lyon.matched) == ("bundled gazetteer", ("city",))
    assert haversine_km(lyon.latitude, lyon.longitude, 45.75, 4.85) < 5
    nowhere = sites[IPC]
    assert (nowhere.latitude, nowhere.longitude, nowhere.precision) == (None, None,
                                                                      Precision.UNKNOWN)
    assert nowhere.unplaced_reason == "registry position outside country"


def test_an_address_that_agrees_outweighs_a_far_registry_point(gazetteer):
    """CHU de la Réunion, Saint-Pierre 97410, with a registry point in Marseille (as recorded):
    the postal code and the city agree on La Réunion, so the registry point is the namesake."""
    site = Site(facility="CHU de la Réunion", city="Saint-Pierre", country="France",
                zip="97410", latitude=43.29282, longitude=5.40682, precision=Precision.CITY,
                coordinate_source=GEOPOINT_SOURCE)
    placed = geocode.place_offline(_trial(site), gazetteer=gazetteer).sites[0]
    assert (placed.precision, placed.matched) == (Precision.POSTAL_CODE, ("postal code", "city"))
    assert haversine_km(placed.latitude, placed.longitude, -21.34, 55.48) < 10


def test_a_weak_answer_far_from_the_registry_point_does_not_replace_it(gazetteer):
    """Virtua Voorhees ("Voorhees Township", NJ 08043): the gazetteer knows only the postal
    code (the town's name differs), 81 km from the registry point: the registry's stands. A
    consistent postal code near the registry point refines it."""
    site = _us("Virtua Voorhees", "Voorhees Township", "New Jersey", "08043",
               latitude=40.4795, longitude=-74.49062, precision=Precision.CITY,
               coordinate_source=GEOPOINT_SOURCE)
    placed = geocode.place_offline(_trial(site), gazetteer=gazetteer).sites[0]
    assert (placed.latitude, placed.coordinate_source, placed.matched) == (
        40.4795, GEOPOINT_SOURCE, ())
    near = _us("Clinic", "Springfield", None, "62701", latitude=39.80172, longitude=-89.64371,
               precision=Precision.CITY, coordinate_source=GEOPOINT_SOURCE)
    refined = geocode.place_offline(_trial(near), gazetteer=gazetteer).sites[0]
    assert (refined.precision, refined.matched) == (Precision.POSTAL_CODE,
                                                    ("postal code", "city"))


REGISTRY_NAMESAKES = {
    "Bryn Mawr Hospital": "Bryn Mawr",
    "The First Affiliated Hospital of Zhejiang University School of Medicine": "Hangzhou",
    "St. Vincenz KH Limburg Frauenklinik": "Limburg an der Lahn",
    "UPMC Hillman Cancer Center - Part of Frick Hospital": "Mount Pleasant",
    "CHU de la Réunion": "Saint-Pierre",
}
"""Sites of the recorded registry records whose registry point is far (80 to 8,800 km) from
their own address: Bryn Mawr Hospital near Pittsburgh, CHU de la Réunion in Marseille."""


def test_on_recorded_records_the_gazetteer_agrees_with_the_registry(gazetteer):
    """On 1,900 sites of real records, the gazetteer, ignoring the registry's point, places
    95% of them, all within 50 km of that point except where the registry's point is a
    namesake of the address (the facility's name says so); those it replaces."""
    from trialfinder.registry import parse_study

    placed = far_replaced = 0
    for path in sorted((Path(__file__).parent / "fixtures" / "ctgov").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for study in data.get("studies") or [data]:
            trial = parse_study(study).trial
            final = geocode.place_offline(trial, gazetteer=gazetteer)
            for site, after in zip(trial.sites, final.sites, strict=True):
                if site.latitude is None or site.longitude is None:
                    continue
                found = gazetteer.match_site(site.city, site.country, site.state, site.zip)
                if found.place is None:
                    assert after.latitude == site.latitude
                    continue
                placed += 1
                if haversine_km(site.latitude, site.longitude, found.place.latitude,
                                found.place.longitude) > 50 and "city" in found.matched:
                    assert REGISTRY_NAMESAKES[site.facility] == found.place.name
                    assert after.coordinate_source == "bundled gazetteer"
                    far_replaced += 1
    assert placed >= 1800
    assert far_replaced == 5


def test_placing_again_decides_anew_and_is_stable(gazetteer):
    """Positions an older version decided (a Summit, Wisconsin site put in New Jersey) are
    dropped and decided again; placing a placed trial changes nothing."""
    stale = _trial(_us("Summit Clinic", "Summit", "Wisconsin", latitude=40.71562,
                       longitude=-74.36468, precision=Precision.CITY,
                       coordinate_source="bundled gazetteer", shared_position=True),
                   _us("Loyola", "Maywood", "Illinois")).replace(placed_by="rules 2; gazetteer x")
    placed = geocode.place_offline(stale, gazetteer=gazetteer)
    summit = placed.sites[0]
    assert (summit.has_position, summit.shared_position, summit.unplaced_reason) == (
        False, False, "state differs")
    assert geocode.place_offline(placed, gazetteer=gazetteer) == placed


def test_ensure_placed_places_only_what_an_older_version_placed(gazetteer):
    """A trial placed by the current rules and gazetteer is returned as is; one placed by
    another version, or never, is placed again."""
    trial = _trial(_us("Loyola", "Maywood", "Illinois"))
    placed = geocode.ensure_placed(trial, gazetteer=gazetteer)
    assert placed.placed_by == geocode.placing_version(gazetteer)
    assert placed.sites[0].matched == ("city", "state")
    assert geocode.ensure_placed(placed, gazetteer=gazetteer) is placed
    old = placed.replace(placed_by="rules 2; gazetteer 0123456789ab")
    assert geocode.ensure_placed(old, gazetteer=gazetteer) == placed


def test_place_offline_reads_the_store_cache_by_path_or_store(tmp_path, gazetteer):
    """The store's cached facility positions are used, whether the store is given open or by
    path; a missing store is no store, and is not created."""
    db = tmp_path / "tf.sqlite"
    with Store(db) as store:
        store.geocode_put(cache_key(_site(TIMONE, "Marseille")), *TIMONE_POS, "facility",
                          "Nominatim/OpenStreetMap", now=NOW.isoformat())
        opened = geocode.place_offline(TRIAL, store, gazetteer)
    by_path = geocode.place_offline(TRIAL, db, gazetteer)
    assert opened == by_path
    assert _by_facility(by_path)[TIMONE].precision is Precision.FACILITY
    missing = tmp_path / "absent.sqlite"
    assert _by_facility(geocode.place_offline(TRIAL, missing, gazetteer))[TIMONE].precision is (
        Precision.CITY)
    assert not missing.exists()


class _Counting:
    """A gazetteer that counts what it is asked (and answers as the bundled one)."""

    def __init__(self, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer
        self.asked: list[tuple[str, tuple[Any, ...]]] = []
        self.build_id = gazetteer.build_id

    def match_site(self, *args: Any) -> Any:
        self.asked.append(("match_site", args))
        return self.gazetteer.match_site(*args)

    def contains(self, *args: Any) -> Any:
        self.asked.append(("contains", args))
        return self.gazetteer.contains(*args)


def test_offline_answers_are_kept_per_gazetteer_for_the_process(gazetteer, monkeypatch):
    """Placing trials whose sites repeat towns and registry points asks the gazetteer once per
    address and point, across trials; every trial is placed exactly as without the kept
    answers; another gazetteer keeps its own; past `ANSWERS_KEPT` the oldest go."""
    sites = [_us("Mercy", "Hollywood", "Florida", "33021"), _us("Summit", "Summit", "NJ"),
             _site(TIMONE, "Marseille", latitude=43.29695, longitude=5.38107,
                   precision=Precision.CITY, coordinate_source=GEOPOINT_SOURCE)]
    trials = [_trial(*sites, nct_id=f"NCT0900000{n}") for n in range(3)]
    counting = _Counting(gazetteer)
    placed = [geocode.place_offline(t, None, counting) for t in trials]  # type: ignore[arg-type]
    assert sorted(counting.asked) == sorted([
        ("match_site", ("Hollywood", "United States", "Florida", "33021")),
        ("match_site", ("Summit", "United States", "NJ", None)),
        ("match_site", ("Marseille", "France", None, None)),
        ("contains", ("France", 43.29695, 5.38107)),
    ])
    fresh = [geocode.place_offline(t, None, gazetteer) for t in trials]
    assert [p.sites for p in placed] == [f.sites for f in fresh]
    other = _Counting(gazetteer)
    geocode.place_offline(trials[0], None, other)  # type: ignore[arg-type]
    assert len(other.asked) == 4
    monkeypatch.setattr(geocode, "ANSWERS_KEPT", 1)
    again = _Counting(gazetteer)
    for trial in trials:
        geocode.place_offline(trial, None, again)  # type: ignore[arg-type]
    assert len(again.asked) == 3 * 4  # one answer kept: each trial asks all four again


def test_a_store_without_positions_is_not_asked_per_site(tmp_path, gazetteer, monkeypatch):
    """Placing offline with a store whose geocode cache holds no position (never online, or
    only misses) looks nothing up per site, and places as without a store."""
    with Store(tmp_path / "tf.sqlite") as store:
        store.geocode_put(cache_key(_site(BERARD, "Lyon")), None, None, None,
                          "Nominatim/OpenStreetMap", now=NOW.isoformat())  # a miss
        asked: list[str] = []
        monkeypatch.setattr(store, "geocode_get", lambda key: asked.append(key))
        assert geocode.place_offline(TRIAL, store, gazetteer) == geocode.place_offline(
            TRIAL, None, gazetteer)
    assert asked == []


def test_the_chain_says_why_a_site_is_unplaced(gazetteer):
    """After a miss, the chain gives the first step's reason."""
    chain = default_chain(gazetteer)
    site = _us("Clinic", "Hollywood", None)
    assert chain.position(site) is None
    assert chain.reason(site) == "ambiguous"


# --- the rate limit across processes --------------------------------------------------------


class FakeTime:
    """One clock for several clients (as the wall clock is for several processes)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_two_clients_share_one_turn(tmp_path: Path) -> None:
    """Two limiters (two processes) on one stamp: the second waits for the first's second,
    and the pace holds whoever calls next."""
    fake = FakeTime()
    stamp = tmp_path / "cache" / "stamp"
    calls: list[tuple[str, float]] = []
    first, second = (
        RateLimiter(lambda who=who: calls.append((who, fake.now)), sleep=fake.sleep,
                    clock=fake.clock, stamp=stamp)
        for who in ("a", "b")
    )
    first()
    second()
    second()
    first()
    assert calls == [("a", 1000.0), ("b", 1001.0), ("b", 1002.0), ("a", 1003.0)]
    assert fake.sleeps == [1.0, 1.0, 1.0]


def test_turns_queue_beyond_one_delay(tmp_path: Path) -> None:
    """Three processes at the same instant: they go one second apart, the third waiting two
    (a turn reserved further ahead than one delay is no sign of a damaged stamp)."""
    fake = FakeTime()
    stamp = tmp_path / "stamp"
    waits: list[float] = []
    for _ in range(3):  # the clock does not move: each starts at the same instant
        RateLimiter(lambda: None, sleep=waits.append, clock=fake.clock, stamp=stamp)()
    assert waits == [1.0, 2.0]


def test_the_default_stamp_is_in_the_user_cache(tmp_path: Path) -> None:
    """Without a stamp given, clients share one in the user cache directory (platformdirs;
    tests/conftest.py gives each test its own)."""
    path = geocode.rate_stamp_path()
    assert path.name == "nominatim-next-request" and "trialfinder" in path.parts
    fake = FakeTime()
    clients = [NominatimClient("http://127.0.0.1:1", sleep=fake.sleep, clock=fake.clock)
               for _ in range(2)]
    for client in clients:
        client._search.func = lambda *a, **k: None  # no request: the turn is what is tested
        client._search()
    assert fake.sleeps == [1.0]
    assert path.exists()


def test_a_cache_that_cannot_be_written_keeps_the_limit_in_process(tmp_path: Path) -> None:
    """The stamp's folder cannot be made (a file is in the way, which stops root too): no
    error, and one process still waits a second between its own requests."""
    (tmp_path / "cache").write_text("not a folder", encoding="utf-8")
    fake = FakeTime()
    limited = RateLimiter(lambda: None, sleep=fake.sleep, clock=fake.clock,
                          stamp=tmp_path / "cache" / "stamp")
    for _ in range(3):
        limited()
    assert fake.sleeps == [1.0, 1.0]
    assert limited.stamp is None


@pytest.mark.parametrize("content", ["", "garbage", "nan", "inf", "1e300", "-5"])
def test_a_damaged_or_future_stamp_does_not_stall(tmp_path: Path, content: str) -> None:
    """A stamp that is empty, unreadable or far ahead (a clock since put back) is ignored:
    the first call goes at once, the next one a second later."""
    stamp = tmp_path / "stamp"
    stamp.write_text(content, encoding="ascii")
    fake = FakeTime()
    limited = RateLimiter(lambda: None, sleep=fake.sleep, clock=fake.clock, stamp=stamp)
    limited()
    limited()
    assert fake.sleeps == [1.0]


TWO_REQUESTS = """
import sys
from trialfinder.geocode import NominatimClient
client = NominatimClient(sys.argv[1], min_delay_seconds=float(sys.argv[2]))
for _ in range(2):
    client.search("Lyon")
"""


def test_processes_keep_one_request_a_second_between_them(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Two real processes searching at once: every request the server sees is at least the
    delay after the one before (0.5 s here, to keep the test short; 0.1 s of slack for a
    busy machine), whichever sent it."""
    import subprocess
    import sys

    seen: list[float] = []

    def handler(request: Request) -> Response:
        seen.append(time.monotonic())
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/search").respond_with_handler(handler)
    delay = 0.5
    children = [
        subprocess.Popen([sys.executable, "-c", TWO_REQUESTS, _url(httpserver), str(delay)],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    assert len(seen) == 4
    gaps = [b - a for a, b in itertools.pairwise(sorted(seen))]
    assert min(gaps) >= delay - 0.1, gaps


# --- failures in one short line -------------------------------------------------------------


def _failure(client: NominatimClient) -> str:
    with pytest.raises(geocode.GeocodingError) as caught:
        client.search("Lyon")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 90, message
    assert "Lyon" not in message  # the request's query is not repeated
    return message


def test_connection_refused_is_one_short_line() -> None:
    """Nothing listening: 'unreachable (connection refused)', not urllib3's 300 characters."""
    client = NominatimClient("http://127.0.0.1:1", sleep=lambda s: None)
    assert _failure(client) == "Nominatim/OpenStreetMap unreachable (connection refused)"


def test_an_unknown_host_is_one_short_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that does not resolve (the resolver's answer simulated: no network here)."""

    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    client = NominatimClient("https://nominatim.example.org", sleep=lambda s: None)
    assert _failure(client) == "Nominatim/OpenStreetMap unreachable (host name not found)"


def test_tls_to_a_plain_server_is_one_short_line(httpserver: HTTPServer) -> None:
    """https:// to a server that speaks plain HTTP: the handshake fails, in a few words."""
    client = NominatimClient(_url(httpserver).replace("http://", "https://"),
                             sleep=lambda s: None)
    assert _failure(client) == "Nominatim/OpenStreetMap unreachable (the TLS handshake failed)"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("<html>busy</html>", "text/html", "failed (its answer is not JSON)"),
        ('[{"lat": "north", "lon": 1}]', "application/json",
         "failed (an answer it could not use)"),
        ('[{"lon": 1}]', "application/json", "failed (an answer it could not use)"),
        ('{"error": "Lyon \\u001b[2J is bad"}', "application/json", "refused the query"),
    ],
)
def test_an_unusable_answer_is_one_short_line(
    httpserver: HTTPServer, body: str, content_type: str, message: str
) -> None:
    """HTML, a latitude that is not a number or none, the server's own error: one line each,
    never the server's text."""
    httpserver.expect_request("/search").respond_with_data(body, content_type=content_type)
    assert _failure(_client(httpserver)) == f"Nominatim/OpenStreetMap {message}"


def test_nearest_online_with_nominatim_down_says_so_briefly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`nearest --online` with Nominatim unreachable: the offline answer, and the failure
    in a short note, not urllib3's text."""
    monkeypatch.setenv("TRIALFINDER_NOMINATIM_URL", "http://127.0.0.1:1")
    monkeypatch.setattr(geocode, "MIN_DELAY_SECONDS", 0.0)
    result = _run("nearest", "Lyon", "--online", "--db", str(tmp_path / "none.sqlite"), "-n",
                  "1")
    assert result.exit_code == 0, result.output
    assert ("Note: Online lookup failed (Nominatim/OpenStreetMap unreachable (connection "
            "refused)); offline answer kept.") in result.stdout.splitlines()
    assert "HTTPConnectionPool" not in result.output
    assert max(len(line) for line in result.output.splitlines()) < 200


# --- the server's URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nominatim.local", "it must start with http:// or https://"),
        ("ftp://nominatim.local", "it must start with http:// or https://"),
        ("http://", "no valid host name"),
        ("http://[::1", "invalid ipv6 url"),
        ("http://host:99999", "port out of range 0-65535"),
        ("http://host:abc", "port could not be cast to integer value as 'abc'"),
        ("http://exa mple.org", "it holds spaces or control characters"),
        ("http://a\x07b", "it holds spaces or control characters"),
        ("http://a_b!c.org", "no valid host name"),
        ("http://127.0.0.1:8080/?q=1", "a base URL takes no ?query or #fragment"),
        ("http://x/%zz", "a % in its path is not followed by two hex digits"),
    ],
)
def test_a_malformed_url_is_a_usage_error(url: str, reason: str) -> None:
    """Each malformed TRIALFINDER_NOMINATIM_URL is refused before any request, saying why."""
    with pytest.raises(BadInput) as caught:
        NominatimClient(url)
    assert str(caught.value) == (
        f"TRIALFINDER_NOMINATIM_URL={url!r} is not a usable http(s) URL ({reason}); e.g. "
        "https://nominatim.openstreetmap.org"
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/nominatim/", "https://[::1]:8443",
                                 "http://user:secret@nominatim.internal", "https://ñandú.example"])
def test_usable_urls_are_accepted(url: str) -> None:
    """A path, an IPv6 literal, credentials and an internationalised name are all fine."""
    assert NominatimClient(url).url == url


@pytest.mark.parametrize("command", [["where", "Lyon"], ["nearest", "Lyon"]])
def test_a_malformed_url_from_the_environment_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, command: list[str], no_network: None
) -> None:
    """`where/nearest --online` with TRIALFINDER_NOMINATIM_URL='http://[::1': one line, exit
    2, nothing sent (it was exit 70)."""
    monkeypatch.setenv("TRIALFINDER_NOMINATIM_URL", "http://[::1")
    result = _run(*command, "--online")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: TRIALFINDER_NOMINATIM_URL='http://[::1' is not a usable http(s) URL (invalid "
        "ipv6 url); e.g. https://nominatim.openstreetmap.org\n"
    )
