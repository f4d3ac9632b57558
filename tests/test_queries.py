"""`trialfinder.queries`: every answer reads the positions the store keeps."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from trialfinder import queries
from trialfinder.cli import app
from trialfinder.geocode import GAZETTEER_SOURCE, NOMINATIM_SOURCE, placing_version
from trialfinder.mapping import make_map
from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.nearest import haversine_km
from trialfinder.store import Store
from trialfinder.web.app import Settings, create_app

runner = CliRunner()
NCT = "NCT09000042"
PLACE = "Villeurbanne"
# Where the store says each site is: none of it is what the gazetteer would say today.
STORED = {
    # found online months ago; the geocode cache has since been cleared
    "Clinique des Monts d'Or": (45.8112, 4.8175, Precision.FACILITY,
                                f"{NOMINATIM_SOURCE}, 2024-11-02"),
    # placed by an earlier gazetteer build, at its centre of Caluire-et-Cuire
    "Hôpital de la Croix-Rousse": (45.7953, 4.8466, Precision.CITY, GAZETTEER_SOURCE),
    # the registry's own point
    "Institut de Marseille": (43.3000, 5.4000, Precision.CITY, "registry geoPoint"),
}


def _site(facility: str, city: str) -> Site:
    lat, lon, precision, source = STORED[facility]
    return Site(facility=facility, city=city, country="France", status=Status.RECRUITING,
                latitude=lat, longitude=lon, precision=precision, coordinate_source=source)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store holding one trial placed by the current version, at positions that differ
    from what the record, the (empty) geocode cache and the gazetteer would decide today."""
    trial = Trial(
        nct_id=NCT, title="A study placed once",
        source=Source("registry", "ClinicalTrials.gov API v2", "2025-02-01",
                      retrieved="2025-02-20T10:00:00+00:00"),
        status=Status.RECRUITING, verified_date="2025-01", conditions=("Lymphoma",),
        sites=(_site("Clinique des Monts d'Or", "Lyon"),
               _site("Hôpital de la Croix-Rousse", "Lyon"),
               _site("Institut de Marseille", "Marseille")),
        placed_by=placing_version(),
    )
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.save_trial(trial, None)
    return path


def _stored(facility: str) -> tuple[float, float]:
    return STORED[facility][0], STORED[facility][1]


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_answer_reads_the_stored_positions(store_path: Path, tmp_path: Path) -> None:
    """`nearest`, `sites` (JSON and CSV), the map, the web page's API and CSV, and `search`
    all show the positions the store keeps, and distances measured from them, even where the
    gazetteer would place the sites elsewhere today."""
    db = str(store_path)
    place = queries.resolve_place(PLACE).place

    def distance(facility: str) -> float:
        return round(haversine_km(place.latitude, place.longitude, *_stored(facility)), 1)

    nearest = json.loads(_cli("nearest", PLACE, "--trial", NCT, "--db", db, "--json"))
    assert {s["facility"]: (s["latitude"], s["longitude"], s["distance_km"])
            for s in nearest["sites"]} == {f: (*_stored(f), distance(f)) for f in STORED}

    sites = json.loads(_cli("sites", "--trial", NCT, "--db", db, "--json"))["sites"]
    assert {s["facility"]: (s["latitude"], s["longitude"]) for s in sites} == {
        f: _stored(f) for f in STORED}
    assert {s["facility"]: s["coordinate_source"] for s in sites} == {
        f: STORED[f][3] for f in STORED}

    rows = list(csv.DictReader(io.StringIO(_cli("sites", "--trial", NCT, "--db", db,
                                                "--csv"))))
    assert {r["facility"]: (float(r["latitude"]), float(r["longitude"])) for r in rows} == {
        f: _stored(f) for f in STORED}

    page = make_map(NCT, store_path, output=tmp_path / "map.html").path.read_text()
    data = json.loads(re.search(r"^var tfData = (.*);$", page, re.MULTILINE).group(1))
    assert sorted((s["lat"], s["lon"]) for s in data["sites"]) == sorted(
        _stored(f) for f in STORED)

    with TestClient(create_app(Settings(db_path=store_path, trials=(NCT,)))) as client:
        api = client.get("/api/nearest", params={"place": PLACE, "trial": NCT}).json()
        web_csv = client.get(f"/trial/{NCT}/sites.csv").text
    assert api["sites"] == nearest["sites"]
    assert {r["facility"]: (float(r["latitude"]), float(r["longitude"]))
            for r in csv.DictReader(io.StringIO(web_csv.lstrip("\ufeff")))} == {
        f: _stored(f) for f in STORED}

    found = json.loads(_cli("search", "--near", PLACE, "--db", db, "--json"))["trials"]
    first = min(STORED, key=distance)  # by the stored positions: the Croix-Rousse
    assert [(t["nct_id"], t["site"]["facility"], t["site"]["latitude"],
             t["site"]["longitude"], t["site"]["distance_km"]) for t in found] == [
        (NCT, first, *_stored(first), distance(first))]

    with Store(store_path) as store:  # reading placed nothing again
        assert {s.facility: (s.latitude, s.longitude)
                for s in store.get_trial(NCT).sites} == {f: _stored(f) for f in STORED}
