"""The map: one self-contained HTML file, every record value shown as text."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from map_fixtures import HOSTILE, lyon, sixteen_site_trial
from trialfinder import mapping
from trialfinder.cli import app
from trialfinder.errors import TrialFinderError
from trialfinder.models import Site, Status
from trialfinder.queries import TrialView
from trialfinder.resources import data_path

MAX_BYTES = 600 * 1024


def page_data(page: str) -> dict:
    match = re.search(r"^var tfData = (.*);$", page, re.MULTILINE)
    assert match, "the page carries its data as one JSON line"
    return json.loads(match.group(1))


def body(page: str) -> str:
    """The <body> element only (legend and source boxes), where record text is HTML."""
    return page[page.index("<body>") : page.index("</body>")]


@pytest.fixture(scope="module")
def trial():
    return sixteen_site_trial()


@pytest.fixture(scope="module")
def near_lyon(trial) -> str:
    return mapping.build_map(trial, place=lyon(), today=date(2024, 1, 1))


@pytest.fixture(scope="module")
def everywhere(trial) -> str:
    return mapping.build_map(trial, today=date(2024, 1, 1))


def test_one_marker_per_placed_site(trial, everywhere):
    """Every site with a position is one marker; the one without is not drawn."""
    sites = page_data(everywhere)["sites"]
    assert len(sites) == sum(1 for s in trial.sites if s.has_position) == 15


def test_marker_colour_follows_the_status_rule(trial, everywhere):
    """Colours follow the status rule (the site's own status, else the trial's), by standing."""
    colours = {c.key: c.colour for c in mapping.CATEGORIES}
    sites = page_data(everywhere)["sites"]
    placed = [s for s in trial.sites if s.has_position]
    view = TrialView(trial)
    for entry, site in zip(sites, placed, strict=True):
        standing = view.site_recruitment(site).standing.value
        assert (entry["category"], entry["colour"]) == (standing, colours[standing])
    # Centre Léon Bérard records no status of its own: the trial's (recruiting) shows.
    berard = sites[1]
    assert berard["category"] == "recruiting"
    assert "the trial&#x27;s status" in berard["popup"]
    assert "the site&#x27;s own status" in sites[0]["popup"]


def test_an_unverified_trial_is_drawn_as_status_unknown(trial):
    """A recruiting trial not verified for two years: every marker says status unknown."""
    page = mapping.build_map(trial.replace(verified_date="2022-09"), today=date(2025, 3, 1))
    data = page_data(page)
    assert {s["category"] for s in data["sites"]} == {"unknown"}
    herriot = data["sites"][0]["popup"]
    assert ("Status unknown (last known: recruiting, not verified since September 2022)"
            in herriot)


def test_legend_has_one_entry_per_status_category_with_counts(everywhere):
    """The legend names the standings with how many placed sites each has ("no status in
    the record" only when a site has none)."""
    legend = body(everywhere)
    entries = re.findall(r'<li class="tf-entry" data-category="([\w-]+)">(.*?)</li>', legend)
    assert [key for key, _ in entries] == [
        "recruiting", "not_yet_recruiting", "not_recruiting", "unknown"]
    counts = [re.search(r"\((\d+)\)", text).group(1) for _, text in entries]
    assert counts == ["8", "2", "4", "1"]


def test_popup_shows_facility_city_investigator_status_contacts_precision(near_lyon):
    """A popup holds what a patient needs to act on the site."""
    herriot = page_data(near_lyon)["sites"][0]["popup"]
    for text in ("Hôpital Édouard Herriot", "Lyon, France", "Investigator:</b> Dr Lyon",
                 "Recruiting", "+33 4 72 00 00 00", 'href="tel:+33472000000"',
                 "mailto:essais@example.org", "city centre (registry geoPoint)",
                 "Distance:</b> 1.5 km from Lyon (69)",
                 "Equally near: 2 sites placed at one point, the centre of Lyon"):
        assert text in herriot, text


def test_with_a_place_the_patient_and_the_nearest_recruiting_sites_are_marked(near_lyon):
    """The patient's marker, the nearest recruiting sites highlighted (the two Lyon sites
    share one position: equally near, both marked), a fitted view."""
    data = page_data(near_lyon)
    assert data["patient"]["label"] == "Your place: Lyon (69)"
    nearest = [s for s in data["sites"] if s["nearest"]]
    assert [s["tooltip"] for s in nearest] == [
        html.escape("Hôpital Édouard Herriot"), html.escape("Centre Léon Bérard")]
    assert all(s["category"] == "recruiting" for s in nearest)
    assert all("Nearest recruiting site (equally near)" in s["popup"] for s in nearest)
    assert data["bounds"][0] == [45.7578, 4.832]
    assert 2 <= len(data["bounds"]) <= 5
    assert (
        "Nearest recruiting, equally near: Hôpital Édouard Herriot; Centre Léon Bérard (2 "
        "sites placed at one point, the centre of Lyon (the record gives no street address)) "
        "— 1.5 km"
    ) in html.unescape(body(near_lyon))


def test_a_single_nearest_site_is_named_alone(trial):
    """Near Grenoble, the nearest recruiting site stands alone."""
    grenoble = dataclasses.replace(lyon(), name="Grenoble", latitude=45.19, longitude=5.72)
    page = mapping.build_map(trial, place=grenoble, today=date(2024, 1, 1))
    nearest = [s for s in page_data(page)["sites"] if s["nearest"]]
    assert len(nearest) == 2  # Grenoble is closed; the nearest recruiting are Lyon's two
    marseille = dataclasses.replace(lyon(), name="Marseille", latitude=43.30, longitude=5.37)
    page = mapping.build_map(trial, place=marseille, today=date(2024, 1, 1))
    (only,) = [s for s in page_data(page)["sites"] if s["nearest"]]
    assert only["tooltip"] == "Hôpital de la Timone"
    assert "Nearest recruiting: Hôpital de la Timone — 0.4 km" in html.unescape(body(page))


def test_without_a_place_the_view_fits_every_site(everywhere):
    """No patient marker, no highlight; the bounds are all placed sites."""
    data = page_data(everywhere)
    assert data["patient"] is None
    assert not any(s["nearest"] for s in data["sites"])
    assert len(data["bounds"]) == 15


def test_ranked_answer_decides_the_nearest_site(trial):
    """Given the answer's ranking, the map highlights its first recruiting rank."""
    from trialfinder.nearest import rank_sites

    place = lyon()
    ranked = rank_sites(trial, place.latitude, place.longitude)
    page = mapping.build_map(trial, place=place, ranked=ranked[2:])
    nearest = [s for s in page_data(page)["sites"] if s["nearest"]]
    assert [s["tooltip"] for s in nearest] == [html.escape(ranked[2].site.facility)]


def test_sites_without_position_are_listed(everywhere):
    """'1 site not placed' names the site in the legend."""
    legend = body(everywhere)
    assert "1 site not placed (position unknown)" in legend
    assert "Centre Hospitalier de Brive, Brive-la-Gaillarde" in legend


def test_source_as_of_and_staleness_warning(trial, everywhere):
    """The source and its date are on the map, with the staleness warning when old, in the
    words of the one staleness rule."""
    text = body(everywhere)
    assert "Source: Built for tests, as of January 2019." in text
    assert ("This record dates from January 2019, about 5 years ago: recruitment may have "
            "changed since.") in text
    fresh = mapping.build_map(trial, today=date(2019, 2, 1))
    assert "recruitment may have changed" not in fresh
    assert "Information as of January 2019, 4 weeks ago" in fresh


def test_view_notes_are_shown():
    """Warnings carried by the view (e.g. geocoding notes) reach the source box."""
    view = TrialView(trial=sixteen_site_trial(), notes=("Check <this> note",))
    assert "Check &lt;this&gt; note" in body(mapping.build_map(view))


def hostile_trial():
    """The hostile facility is both the nearest to Dijon and, twice, unplaced."""
    trial = sixteen_site_trial()
    unplaced = Site(facility=HOSTILE, city=HOSTILE, country="France", status=Status.RECRUITING)
    return trial.replace(
        title=HOSTILE, acronym=HOSTILE, sites=(*trial.sites, unplaced),
        source=dataclasses.replace(trial.source, description=HOSTILE),
    )


def test_hostile_record_text_is_escaped_everywhere():
    """Popups, tooltips, legend and source box show markup from a record as text."""
    dijon = dataclasses.replace(lyon(), name=HOSTILE, latitude=47.32, longitude=5.04)
    page = mapping.build_map(hostile_trial(), place=dijon)
    assert "<img" not in page
    assert "<script>alert" not in page
    assert "onerror=alert(1)>" not in page
    escaped = html.escape(HOSTILE)
    legend = body(page)
    assert f"Nearest recruiting: {escaped}" in legend
    assert f"<li>{escaped}, {escaped}</li>" in legend  # the unplaced site
    assert f"Source: {escaped}" in legend
    assert f"<title>NCT02260505: trial sites near {html.escape(escaped)}" not in page
    data = page_data(page)
    hostile = next(s for s in data["sites"] if s["nearest"])
    assert hostile["tooltip"] == escaped
    assert f'<div class="tf-facility">{escaped}</div>' in hostile["popup"]
    assert "`${alert(2)}`" in hostile["popup"]  # a JSON string, never a JS template
    assert 'href="mailto:&quot;&gt;&lt;script&gt;' in hostile["popup"]
    assert data["patient"]["label"] == f"Your place: {html.escape(dijon.label)}"


def test_record_text_is_never_a_template():
    """Jinja syntax in a record is shown as is, not evaluated by folium's templates."""
    page = mapping.build_map(sixteen_site_trial())
    assert "sixteen French sites {{ 7*7 }}" in page
    assert "sixteen French sites 49" not in page


def test_no_network_resources(near_lyon):
    """Leaflet is inline; no script, stylesheet, font or image is fetched."""
    assert not re.search(r"<script[^>]*\bsrc\s*=", near_lyon, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=", near_lyon, re.IGNORECASE)
    assert not re.search(r"url\((?!data:|#)", near_lyon)
    for cdn in ("cdn.jsdelivr", "code.jquery", "cdnjs", "bootstrapcdn", "sourceMappingURL"):
        assert cdn not in near_lyon
    assert "Leaflet 1.9.4" in near_lyon
    assert "url(data:image/png;base64," in near_lyon
    # The only remote URLs are the optional tiles and links a reader may follow.
    assert set(re.findall(r"https?://[\w.-]+", near_lyon)) <= {
        "https://tile.openstreetmap.org", "https://www.openstreetmap.org",
        "https://clinicaltrials.gov", "https://leafletjs.com",
        # inside Leaflet itself: the SVG namespace and two comments of its CSS
        "http://www.w3.org", "https://bugzilla.mozilla.org", "https://bugs.chromium.org",
    }


def test_basemap_and_attributions(near_lyon):
    """Natural Earth outlines are inline, under credited OpenStreetMap tiles."""
    assert '"name":"France"' in near_lyon
    assert "Natural Earth (public domain)" in near_lyon
    assert "OpenStreetMap\\u003c/a\\u003e contributors" in near_lyon  # JSON in the script
    offline_only = mapping.build_map(sixteen_site_trial(), tiles=False)
    assert "tile.openstreetmap.org" not in offline_only


def test_bundled_basemap_is_small_and_has_provenance():
    """The basemap stays small and says where it comes from."""
    path = data_path("basemap/countries.geojson")
    assert path.stat().st_size <= 250 * 1024
    collection = json.loads(path.read_text(encoding="utf-8"))
    names = {f["properties"]["name"] for f in collection["features"]}
    assert {"France", "Switzerland", "Spain"} <= names
    provenance = data_path("basemap/PROVENANCE.md").read_text(encoding="utf-8")
    assert "public domain" in provenance.lower()


def test_sixteen_site_map_is_at_most_600_kb(near_lyon):
    """The whole file, Leaflet and outlines included, stays under 600 KB."""
    assert len(near_lyon.encode("utf-8")) <= MAX_BYTES


def test_write_map_replaces_atomically(tmp_path):
    """The file appears whole, replaces an old one, and leaves no temporary file."""
    target = tmp_path / "maps" / "m.html"
    assert mapping.write_map("first", target) == target
    mapping.write_map("second", target)
    assert target.read_text(encoding="utf-8") == "second"
    assert [p.name for p in target.parent.iterdir()] == ["m.html"]


def test_write_map_failure_keeps_the_old_file(tmp_path, monkeypatch):
    """If the final rename fails the old map stays and the temporary file is removed."""
    target = tmp_path / "m.html"
    target.write_text("old", encoding="utf-8")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(TrialFinderError, match="No space left on device"):
        mapping.write_map("new", target)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.html"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Lyon", "lyon"), ("Saint-Étienne", "saint-etienne"), ("L'Haÿ-les-Roses", "l-hay-les-roses"),
     ("Œuf", "oeuf"), ("???", "place")],
)
def test_slug_is_folded_ascii(text, expected):
    """Place names become plain file-name slugs."""
    assert mapping.slug(text) == expected


def test_default_paths():
    """maps/NCT….html, and maps/NCT…-slug.html near a place."""
    assert mapping.default_map_path("NCT02260505") == Path("maps/NCT02260505.html")
    assert mapping.default_map_path("NCT02260505", lyon()) == Path(
        "maps/NCT02260505-lyon.html"
    )


@pytest.fixture
def fixture_record(monkeypatch):
    """Commands read the 16-site fixture trial instead of a stored record."""
    import trialfinder.queries

    monkeypatch.setattr(trialfinder.queries, "load_trial", lambda nct_id, db: sixteen_site_trial())


def test_cli_map_near_writes_to_maps(tmp_path, monkeypatch, fixture_record):
    """`trialfinder map --near Lyon` writes maps/NCT02260505-lyon.html and prints its path."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["map", "--near", "Lyon", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0, result.output
    assert result.output == "maps/NCT02260505-lyon.html\n"
    page = (tmp_path / "maps" / "NCT02260505-lyon.html").read_text(encoding="utf-8")
    assert page_data(page)["patient"]["label"].startswith("Your place: Lyon")


def test_cli_map_output(tmp_path, fixture_record):
    """`--output` chooses the file; without --near the map has no patient."""
    out = tmp_path / "deep" / "m.html"
    out.parent.mkdir()  # an --output's folder is not created (trialfinder.files)
    result = CliRunner().invoke(app, ["map", "-o", str(out), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0, result.output
    assert result.output == f"{out}\n"
    assert page_data(out.read_text(encoding="utf-8"))["patient"] is None


def test_cli_nearest_map(tmp_path, monkeypatch, fixture_record):
    """`nearest Lyon --map` ends its answer with the map's path."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["nearest", "Lyon", "--map", "--db", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert result.output.endswith("\nMap: maps/NCT02260505-lyon.html\n")
    assert (tmp_path / "maps" / "NCT02260505-lyon.html").is_file()


def test_cli_nearest_map_output_json(tmp_path, fixture_record):
    """`--map-output` implies --map; with --json the path is a key of the answer."""
    out = tmp_path / "near.html"
    result = CliRunner().invoke(
        app, ["nearest", "Lyon", "--json", "--map-output", str(out), "--db", str(tmp_path / "x")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["map"] == str(out)
    assert out.is_file()


def test_cli_map_unknown_place(tmp_path, fixture_record):
    """An unknown place is one line on stderr and no file."""
    result = CliRunner().invoke(
        app, ["map", "--near", "Xqzwv", "-o", str(tmp_path / "m.html"), "--db", str(tmp_path / "x")]
    )
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: ")
    assert not (tmp_path / "m.html").exists()


def test_site_at_the_patients_position_is_fanned_out_and_cities_labelled(trial):
    """A site exactly at the patient's position is moved aside; each other position is
    labelled with its city, escaped."""
    at_site = dataclasses.replace(lyon(), latitude=45.7485, longitude=4.8467)
    data = page_data(mapping.build_map(trial, place=at_site))
    lyon_sites = [s for s in data["sites"] if s["lat"] == 45.7485]
    assert [s["aroundPatient"] for s in lyon_sites] == [True, True]
    labels = {label["label"] for label in data["labels"]}
    assert "Lyon" not in labels  # the patient's own label names it
    assert {"Paris", "Dijon", "Saint-Étienne"} <= labels


def test_popups_reach_sites_by_the_one_rule(trial) -> None:
    """A popup shows whom `contacts.reach` names: the site's own people with a phone or an
    e-mail, else the trial's central contacts (said so), numbers linked in international
    form only when they read as numbers."""
    from trialfinder.models import Contact

    sites = tuple(dataclasses.replace(s, contacts=()) for s in trial.sites)
    sites = (dataclasses.replace(sites[0], contacts=(
        Contact(name="Dr Own", phone="04 72 11 22 33"),
        Contact(name="Desk", phone="ext. unknown")),), *sites[1:])
    central = dataclasses.replace(trial, sites=sites, central_contacts=(
        Contact(name="Study desk", phone="01 42 34 56 78", email="desk@example.org"),))
    popups = [s["popup"] for s in page_data(mapping.build_map(central, today=date(2024, 1, 1)))
              ["sites"]]
    own = next(p for p in popups if "Dr Own" in p)
    assert 'href="tel:+33472112233"' in own and "Study desk" not in own
    assert "Desk, ext. unknown</div>" in own  # not a number: shown, not linked
    others = [p for p in popups if "Dr Own" not in p]
    assert others and all(
        "<b>Contact (for the whole trial):</b> Study desk, "
        '<a href="tel:+33142345678">01 42 34 56 78</a>' in p for p in others)
    nobody = dataclasses.replace(central, central_contacts=())
    popups = [s["popup"] for s in page_data(mapping.build_map(nobody, today=date(2024, 1, 1)))
              ["sites"]]
    assert not any("Contact" in p for p in popups if "Dr Own" not in p)
