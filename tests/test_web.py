"""`trialfinder serve` over HTTP, through Starlette's test client: pages, the JSON API, errors,
privacy and security headers, hostile input, and a store that changes while it runs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from typer.testing import CliRunner

from map_fixtures import HOSTILE, sixteen_site_trial
from trialfinder.cli import app as cli_app
from trialfinder.gazetteer import Gazetteer
from trialfinder.mapping import Tiles
from trialfinder.models import Arm, Contact, Eligibility, Site, Source, Status, Trial
from trialfinder.store import Store
from trialfinder.web.app import Settings, create_app

NCT = "NCT02260505"
OTHER = "NCT09999991"


@pytest.fixture
def no_store(tmp_path: Path) -> Path:
    """A store path that does not exist: the bundled record answers."""
    return tmp_path / "absent.sqlite"


@pytest.fixture
def client(no_store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(db_path=no_store))) as test_client:
        yield test_client


def hostile_trial(nct_id: str = OTHER, facility: str = "Centre <b>Hostile</b>") -> Trial:
    """A trial whose every text field tries something: markup, quotes, template syntax,
    control characters and a bidi override."""
    evil = '<script>alert("x")</script> \' " {{ 7*7 }} \x1b]0;title\x07 \u202eevil'
    return Trial(
        nct_id=nct_id,
        title=f"Title {evil}",
        acronym="<i>ACR</i>",
        source=Source(kind="registry", description="ClinicalTrials.gov API v2",
                      as_of="2025-02-01", retrieved="2025-02-20T00:00:00Z"),
        status=Status.RECRUITING,
        brief_summary=f"Summary {evil}",
        sponsor=f"Sponsor {evil}",
        conditions=(f"GIST {evil}",),
        eligibility=Eligibility(
            criteria=f"Inclusion Criteria:\n\n* Adult {evil}\n\nExclusion Criteria:\n\n* None",
        ),
        verified_date="2025-02",
        arms=(Arm(label=f"<u>Arm</u> {evil}", type="EXPERIMENTAL", description=f"Desc {evil}",
                  interventions=(f"Drug {evil}",)),),
        sites=(
            Site(facility=facility, city="Dijon", country="France", status=Status.RECRUITING,
                 latitude=47.322, longitude=5.0415,
                 contacts=(Contact(name=f"Dr {evil}", role="PRINCIPAL_INVESTIGATOR"),
                           Contact(name="Desk", role="CONTACT", phone=f"+33 3 80 {evil}",
                                   email=f'"><script>alert(3)</script>{evil}'))),
            Site(facility=HOSTILE, city="Lyon", country="France", status=Status.RECRUITING,
                 latitude=45.7485, longitude=4.8467),
        ),
    )


def store_with(path: Path, *trials: Trial) -> Path:
    from trialfinder.geocode import placing_version

    with Store(path) as store:
        for trial in trials:
            # As a sync stores them: placed by this version (an older one is placed again,
            # and written back, when first loaded).
            store.save_trial(trial.replace(placed_by=placing_version()), None)
    return path


class _Collector(HTMLParser):
    """Every element's tag and attributes, in order (the page as a browser would see it)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def nonce_of(response) -> str:
    match = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
    assert match
    return match.group(1)


def scripts_are_ours(html: str, nonce: str) -> None:
    """Every script is from this server or carries this response's nonce; nothing at all is
    loaded from another host."""
    for tag, attrs in parse(html).elements:
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/") or attrs.get("nonce") == nonce, attrs
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(name) or ""
            if tag == "a" and name == "href":
                continue  # links are followed only when clicked (no-referrer)
            assert not re.match(r"^\s*(https?:)?//", value), (tag, attrs)


# --------------------------------------------------------------------------- the search page


def test_search_page_has_one_labelled_field_posting_the_place(client: TestClient) -> None:
    """GET / is a form that POSTs `place` (labelled, described), in English by default, with
    the suggestion script from this server."""
    response = client.get("/")
    assert response.status_code == 200
    page = parse(response.text)
    form = next(attrs for tag, attrs in page.elements if tag == "form"
                and attrs.get("class") == "search")
    assert form["method"] == "post" and form["action"] == "/nearest"
    field = next(attrs for tag, attrs in page.elements if tag == "input"
                 and attrs.get("name") == "place")
    assert ("label", {"for": field["id"]}) in page.elements
    assert field["autocomplete"] == "off"
    assert '<html lang="en">' in response.text
    assert ("script", {"src": "/static/places.js", "defer": None}) in page.elements
    scripts_are_ours(response.text, nonce_of(response))


def test_security_and_privacy_headers_on_every_response(client: TestClient) -> None:
    """CSP without 'unsafe-inline' for scripts, a fresh nonce per response, no referrer,
    nosniff, no framing, no caching of answers."""
    seen = set()
    for response in (client.get("/"), client.get("/api/nearest?place=Lyon"),
                     client.get("/trial/" + NCT), client.get("/nowhere")):
        csp = response.headers["content-security-policy"]
        script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script and "'self'" in script
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "img-src 'self' data:;" in csp  # no tile server configured: nothing else
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        seen.add(nonce_of(response))
    assert len(seen) == 4


def test_a_tile_server_widens_only_the_image_rule(no_store: Path) -> None:
    """--tiles adds its origin (subdomains as *) to img-src, nothing else; the map uses it."""
    tiles = Tiles("https://{s}.tiles.example.org/{z}/{x}/{y}.png", "© Example")
    with TestClient(create_app(Settings(db_path=no_store, tiles=tiles))) as client:
        response = client.post("/nearest", data={"place": "Lyon"})
    csp = response.headers["content-security-policy"]
    assert "img-src 'self' data: https://*.tiles.example.org;" in csp
    assert csp.count("example.org") == 1
    assert "tiles.example.org/{z}/{x}/{y}.png" in response.text  # in the map's srcdoc
    assert "which sees the area the map shows" in response.text


# --------------------------------------------------------------------------- the answer page


def test_posted_place_gets_the_plain_answer_and_stays_out_of_urls(client: TestClient) -> None:
    """POST /nearest answers Besançon with the CHRU, its investigator, the data's age and
    the privacy note; the typed place appears in no link, form action or script source."""
    response = client.post("/nearest", data={"place": "Besancon", "trial": NCT})
    assert response.status_code == 200
    text = response.text
    assert "<h1>Nearest centres to Besançon (25), France</h1>" in text
    assert ("The nearest centre recruiting for this trial is CHRU de Besançon - Hôpital "
            "Minjoz, in Besançon, France: less than 1 km from Besançon (25), France.") in text
    lyon = client.post("/nearest", data={"place": "Villeurbanne"}).text
    assert ("The nearest centre recruiting for this trial is Centre Léon Bérard, in Lyon, "
            "France: 3.1 km from Villeurbanne (69), France as the crow flies.") in lyon
    assert "Ask for: Elsa KALBACHER, Doctor (investigator)" in text
    assert ("Warning: This record dates from January 2019, about 6 years ago: recruitment may "
            "have changed since. Confirm with the site before you go.") in text
    paris = client.post("/nearest", data={"place": "Paris"}).text
    assert ("2 centres recruiting for this trial are equally near, less than 1 km from Paris "
            "(75), France: 2 sites placed at one point, the centre of Paris (the record gives "
            "no street address).") in paris
    assert "Your place was not stored or logged" in text
    assert "trialfinder sync" not in text  # no terminal advice for a patient
    for tag, attrs in parse(text).elements:
        for name in ("href", "src", "action"):
            assert "esancon" not in (attrs.get(name) or "").lower(), (tag, attrs)
    scripts_are_ours(text, nonce_of(response))


def test_get_nearest_works_for_links_and_the_switch_keeps_it(client: TestClient) -> None:
    """GET /nearest?place= answers too; its language link keeps that same URL."""
    response = client.get("/nearest", params={"place": "97400"})
    assert response.status_code == 200
    assert "Nearest centres to Saint-Denis (974), 97400, France" in response.text
    assert 'href="/nearest?place=97400&amp;lang=fr"' in response.text


def test_language_switch_after_a_post_posts_again(client: TestClient) -> None:
    """After a POST, the other language is a button re-sending the form, never a link with
    the place in it."""
    response = client.post("/nearest", data={"place": "Lyon", "lang": "en"})
    page = parse(response.text)
    switch = [attrs for tag, attrs in page.elements if tag == "form"
              and attrs.get("action") == "/nearest" and attrs.get("method") == "post"
              and attrs.get("class") == "inline"]
    assert len(switch) == 1
    hidden = [(a["name"], a["value"]) for tag, a in page.elements
              if tag == "input" and a.get("type") == "hidden"]
    assert ("place", "Lyon") in hidden and ("lang", "fr") in hidden
    assert not any("Lyon" in (a.get("href") or "") for _t, a in page.elements)


@pytest.mark.parametrize(("query", "header", "expected"), [
    ("", None, "en"), ("?lang=fr", None, "fr"), ("", "fr-FR,fr;q=0.9,en;q=0.5", "fr"),
    ("?lang=en", "fr-FR", "en"), ("?lang=xx", "fr", "fr"), ("", "de, en;q=0.5", "en"),
])
def test_language_from_parameter_then_accept_language(
    client: TestClient, query: str, header: str | None, expected: str
) -> None:
    """?lang= wins, else Accept-Language, else English; <html lang> says which."""
    headers = {"accept-language": header} if header else {}
    response = client.get("/" + query, headers=headers)
    assert f'<html lang="{expected}">' in response.text
    other = "fr" if expected == "en" else "en"
    assert f'hreflang="{other}"' in response.text


def test_french_request_formats_numbers_in_french(client: TestClient) -> None:
    """?lang=fr: <html lang="fr"> and distances written "157,5 km"."""
    response = client.post("/nearest", data={"place": "Besancon", "lang": "fr"})
    page = re.sub(r'srcdoc="[^"]*"', "", response.text)
    assert '<html lang="fr">' in page
    assert "157,5 km" in page and "157.5 km" not in page


def test_bare_get_nearest_goes_back_to_the_form(client: TestClient) -> None:
    """GET /nearest without a place is a redirect to the search page (language kept)."""
    response = client.get("/nearest?lang=fr", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?lang=fr"


def test_empty_and_unknown_places_return_the_form_with_the_reason(client: TestClient) -> None:
    """An empty place and an unknown one: 422, the form again (the place kept in the field,
    marked invalid), the message, and suggestions when the library has some."""
    empty = client.post("/nearest", data={"place": "   "})
    assert empty.status_code == 422
    assert "Type a town or a postal code." in empty.text
    unknown = client.post("/nearest", data={"place": "Xqzwv"})
    assert unknown.status_code == 422
    assert "Unknown place &#39;Xqzwv&#39;" in unknown.text
    assert 'value="Xqzwv"' in unknown.text and 'aria-invalid="true"' in unknown.text
    contradiction = client.post("/nearest", data={"place": "75020 Lyon"})
    assert contradiction.status_code == 422
    assert '<button type="submit" name="place" value="75020" class="link">' in contradiction.text


def test_far_away_place_is_told_how_far_without_terminal_advice(client: TestClient) -> None:
    """A place where the trial has no site and none within reach: 422, the nearest site's
    distance, no `trialfinder where` / --max-km advice."""
    response = client.post("/nearest", data={"place": "Tokyo, Japan"})
    assert response.status_code == 422
    assert "No centre of this trial is within 1,500 km of Tokyo, Japan" in response.text
    assert "--max-km" not in response.text and "trialfinder where" not in response.text


def test_map_is_inline_with_nonce_and_local_assets(client: TestClient) -> None:
    """The map comes in the page (iframe srcdoc: no URL to carry the place); every script
    in it is this server's or carries the response's nonce; Leaflet is served locally."""
    response = client.post("/nearest", data={"place": "Lyon"})
    nonce = nonce_of(response)
    iframe = next(a for t, a in parse(response.text).elements if t == "iframe")
    assert iframe["title"]
    document = iframe["srcdoc"] or ""
    assert document.startswith("<!DOCTYPE html>") and '<html lang="en">' in document
    scripts_are_ours(document, nonce)
    assert '<script src="/static/map/leaflet.js"></script>' in document
    assert "user-scalable=no" not in document
    leaflet = client.get("/static/map/leaflet.js")
    assert leaflet.status_code == 200 and "leaflet" in leaflet.text.lower()[:2000]
    again = client.get("/static/map/leaflet.js",
                       headers={"if-none-match": leaflet.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/static/map/basemap.js").text.startswith("var tfBasemap = {")
    assert client.get("/static/map/../app.py").status_code == 404
    assert client.get("/static/map/nothing.js").status_code == 404


# --------------------------------------------------------------------------- the JSON API


def cli_json(place: str, db: Path, *extra: str) -> tuple[int, dict | None]:
    result = CliRunner().invoke(cli_app, ["nearest", place, "--json", "--db", str(db), *extra])
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else None


def assert_same_answer(api: dict, cli: dict) -> None:
    """Same fields and values; only the warnings' advice differs (for a patient)."""
    assert {k: v for k, v in api.items() if k != "warnings"} == {
        k: v for k, v in cli.items() if k != "warnings"}
    assert len(api["warnings"]) == len(cli["warnings"])
    assert not any("trialfinder " in w for w in api["warnings"])


@pytest.mark.parametrize("place", ["Lyon", "Besancon", "97400", "42270 Saint-Priest-en-Jarez",
                                   "Saint-Denis 93", "Valencia, Spain", "Brest", "Ajaccio"])
def test_api_nearest_is_the_json_of_nearest(client: TestClient, no_store: Path,
                                            place: str) -> None:
    """/api/nearest gives what `nearest --json` prints, field for field."""
    code, cli = cli_json(place, no_store)
    response = client.get("/api/nearest", params={"place": place})
    assert code == 0 and response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert_same_answer(response.json(), cli or {})


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_api_and_cli_agree_on_places_of_the_gazetteer(client: TestClient, no_store: Path,
                                                      data: st.DataObject) -> None:
    """On French places drawn from the whole gazetteer, and any limit, the API and the CLI
    give the same answer."""
    names = tuple(Gazetteer.bundled().place_names("FR"))
    place = data.draw(st.sampled_from(names))
    limit = data.draw(st.integers(1, 20))
    code, cli = cli_json(place, no_store, "--limit", str(limit))
    response = client.get("/api/nearest", params={"place": place, "limit": limit})
    if code == 0:
        assert response.status_code == 200
        assert_same_answer(response.json(), cli or {})
    else:
        assert response.status_code == 422 and response.json()["error"]


@pytest.mark.parametrize(("params", "status", "message"), [
    ({}, 400, "Give a place: ?place=Lyon, a town or a postal code."),
    ({"place": "Lyon", "limit": "0"}, 400, "limit must be a whole number from 1 to 100."),
    ({"place": "Lyon", "limit": "abc"}, 400, "limit must be a whole number from 1 to 100."),
    ({"place": "Lyon", "limit": "101"}, 400, "limit must be a whole number from 1 to 100."),
    ({"place": "Xqzwv"}, 422, "Unknown place 'Xqzwv': not a French commune, a French postal "
                              "code nor a city of 15,000+ people"),
    ({"place": "x" * 300}, 422, "That is too long for a place name (300 characters; at "
                                "most 200)"),
    ({"place": "Lyon", "trial": "NCT1"}, 400, None),
    ({"place": "Lyon", "trial": "NCT00000001"}, 404,
     "This server has no record of the trial NCT00000001."),
])
def test_api_errors_are_4xx_with_one_message(client: TestClient, params: dict, status: int,
                                             message: str | None) -> None:
    """Bad input and unknown places: a 4xx and {"error": "<one line>"}, never a 500."""
    response = client.get("/api/nearest", params=params)
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    if message:
        assert body["error"] == message


def test_ten_kilobyte_place_is_refused_in_one_line(client: TestClient) -> None:
    """A 10 kB place: 414 in a URL, 413 in a form; one short line, and the server goes on."""
    place = "Lyon" * 2500
    for response in (client.get("/api/nearest", params={"place": place}),
                     client.get("/nearest", params={"place": place})):
        assert response.status_code == 414
        assert response.text == "The address is too long.\n"
    posted = client.post("/nearest", data={"place": place})
    assert posted.status_code == 413
    assert "That is too much text for a place." in posted.text
    assert client.get("/api/nearest?place=Lyon").status_code == 200


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.text(max_size=60))
def test_no_place_text_gets_a_server_error(client: TestClient, place: str) -> None:
    """Whatever the text (controls, markup, any script), the API answers 200 or a 4xx JSON
    error, and the page answers 200 or 4xx without echoing markup."""
    api = client.get("/api/nearest", params={"place": place})
    assert api.status_code in (200, 400, 404, 413, 414, 422), api.text
    assert "error" in api.json() or "sites" in api.json()
    page = client.post("/nearest", data={"place": place})
    assert page.status_code in (200, 413, 422)
    assert "<script>" not in page.text.replace("<script src=", "")


def test_place_suggestions_resolve_to_what_they_show(client: TestClient) -> None:
    """/api/places: likely places first; typing a suggestion's value resolves to its label."""
    response = client.get("/api/places", params={"q": "besan"})
    places = response.json()["places"]
    assert places[0] == {"label": "Besançon (25)", "value": "Besançon"}
    assert client.get("/api/places", params={"q": "9740"}).json()["places"] == [
        {"label": "Saint-Denis (974), 97400", "value": "97400 Saint-Denis"}]
    assert client.get("/api/places", params={"q": "<script>"}).json() == {"places": []}
    assert client.get("/api/places").json() == {"places": []}


# --------------------------------------------------------------------------- the trial page


def test_trial_page_lists_criteria_sites_and_offers_csv_and_referral(
    client: TestClient, no_store: Path
) -> None:
    """The oncologist's page: every site with its investigator, the CSV of `sites --csv`,
    and a referral sheet for a place typed there."""
    from trialfinder import queries, render

    response = client.get(f"/trial/{NCT}")
    assert response.status_code == 200
    view = queries.trial_view(NCT, no_store)
    assert "16 centres" in response.text
    for site in view.trial.sites:
        assert (site.facility or "").replace("'", "&#39;") in response.text
    assert "Jean-Yves BLAY, Pr" in response.text
    csv = client.get(f"/trial/{NCT}/sites.csv")
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.headers["content-disposition"] == f'attachment; filename="{NCT}-sites.csv"'
    assert csv.text == render.sites_csv(view)
    sheet = client.post(f"/trial/{NCT}/referral", data={"place": "Besancon"})
    assert sheet.status_code == 200
    assert "CHRU de Besançon - Hôpital Minjoz" in sheet.text and "Besancon" not in sheet.text
    # Advice for a person reading it, not commands to run (the CLI's sheet keeps them).
    assert "trialfinder sync" not in sheet.text
    assert "<p>not in this record (listing page): see the registry.</p>" in sheet.text
    assert "Confirm with the site before you go." in sheet.text
    for place in ("", "Xqzwv"):
        refused = client.post(f"/trial/{NCT}/referral", data={"place": place})
        assert refused.status_code == 422
        assert f'<a href="/trial/{NCT}">Back</a>' in refused.text


def test_unknown_and_malformed_trials(client: TestClient) -> None:
    """A trial the server does not have is a 404 page; a malformed id a 400; ?trial= too."""
    assert client.get("/trial/NCT00000001").status_code == 404
    assert "This server has no record of the trial" in client.get("/trial/NCT00000001").text
    # The trial named is the one asked for in the path, not the page's default trial.
    assert "no record of the trial NCT00000001." in client.get("/trial/NCT00000001").text
    assert "no record of the trial NCT00000001." in client.post(
        "/trial/NCT00000001/referral", data={"place": "Lyon"}).text
    assert client.get("/trial/NCT1").status_code == 400
    assert client.get("/?trial=NCT00000001").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_trial_page_shows_eligibility_lists(tmp_path: Path) -> None:
    """Inclusion and exclusion criteria are lists on the trial page."""
    db = store_with(tmp_path / "s.sqlite", hostile_trial())
    with TestClient(create_app(Settings(db_path=db, trials=(OTHER,)))) as client:
        response = client.get(f"/trial/{OTHER}")
    assert response.status_code == 200
    assert "<h3>Inclusion criteria</h3>" in response.text
    assert "<li>Adult &lt;script&gt;" in response.text


# --------------------------------------------------------------------------- hostile records


def test_hostile_records_are_text_everywhere(tmp_path: Path) -> None:
    """Markup, quotes, template syntax, control characters and bidi overrides from a record
    are shown as text on every page: no element, no executed template, no control byte."""
    db = store_with(tmp_path / "s.sqlite", hostile_trial())
    with TestClient(create_app(Settings(db_path=db, trials=(OTHER,)))) as client:
        pages = [client.get("/"), client.post("/nearest", data={"place": "Dijon"}),
                 client.get(f"/trial/{OTHER}"), client.get("/nearest?place=Lyon")]
    for response in pages:
        assert response.status_code == 200, response.text
        text = response.text
        assert '<script>alert("x")' not in text and "<script>alert(3)" not in text
        assert "<b>Hostile</b>" not in text and "<i>ACR</i>" not in text
        assert "{{ 7*7 }}" in text  # shown, not evaluated
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202e]", text)
        tags = {tag for tag, _attrs in parse(text).elements}
        assert not tags & {"b", "i", "u", "img"}
        scripts_are_ours(text, nonce_of(response))
    assert "Centre &lt;b&gt;Hostile&lt;/b&gt;" in pages[1].text
    assert "\ufffd]0;title\ufffd" in pages[2].text
    assert "<strong>&lt;u&gt;Arm&lt;/u&gt; &lt;script&gt;" in pages[2].text  # the arm's label
    assert "(experimental): Desc &lt;script&gt;" in pages[2].text


def test_hostile_records_in_json_are_plain_json(tmp_path: Path) -> None:
    """The API gives record text as JSON strings (control characters \\u-escaped)."""
    db = store_with(tmp_path / "s.sqlite", hostile_trial())
    with TestClient(create_app(Settings(db_path=db, trials=(OTHER,)))) as client:
        response = client.get("/api/nearest", params={"place": "Dijon", "trial": OTHER})
    assert response.status_code == 200
    assert "\\u001b]0;title\\u0007" in response.text
    assert response.json()["sites"][0]["facility"] == "Centre <b>Hostile</b>"


# --------------------------------------------------------------------------- the store


def test_a_sync_shows_without_a_restart_and_nothing_reloads_otherwise(tmp_path: Path) -> None:
    """The server reads the store as it is: a new record shows at the next request; while
    nothing changes, the trial is loaded once."""
    db = store_with(tmp_path / "s.sqlite", hostile_trial(facility="Centre Avant"))
    app = create_app(Settings(db_path=db, trials=(OTHER,)))
    views = app.state.web.views
    with TestClient(app) as client:
        first = client.get("/api/nearest", params={"place": "Dijon"}).json()
        for _ in range(5):
            client.get("/api/nearest", params={"place": "Dijon"})
        assert views.loads == 1
        store_with(db, hostile_trial(facility="Centre Après"))
        second = client.get("/api/nearest", params={"place": "Dijon"}).json()
    assert first["sites"][0]["facility"] == "Centre Avant"
    assert second["sites"][0]["facility"] == "Centre Après"
    assert views.loads == 2


def test_a_store_created_after_start_is_read(no_store: Path) -> None:
    """Started on the bundled record, the server answers from a store made later."""
    app = create_app(Settings(db_path=no_store))
    with TestClient(app) as client:
        before = client.get("/api/nearest", params={"place": "Dijon"}).json()
        trial = sixteen_site_trial()
        store_with(no_store, trial)
        after = client.get("/api/nearest", params={"place": "Dijon"}).json()
    assert before["trial"]["source_kind"] == "listing"
    assert after["trial"]["source"] == "Built for tests"


def test_a_damaged_store_is_503_not_500(tmp_path: Path) -> None:
    """A store that cannot be read answers 503 with one line; the server stays up."""
    db = tmp_path / "broken.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with TestClient(create_app(Settings(db_path=db))) as client:
        response = client.get("/api/nearest", params={"place": "Lyon"})
        assert response.status_code == 503
        assert response.json() == {
            "error": "The trial records cannot be read right now. Please try again later."}
        assert client.get("/").status_code == 503


def test_an_unexpected_error_is_a_500_page_without_details(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug: a 500 page or JSON error saying so in one sentence; the log names the error's
    type and where, not its message (which might hold the place)."""
    from trialfinder import render

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret " + "Besan" + "con")  # the place, as in a message

    monkeypatch.setattr(render, "nearest_json", broken)
    with caplog.at_level(logging.ERROR, logger="trialfinder.web"):
        page = client.post("/nearest", data={"place": "Besancon"})
        api = client.get("/api/nearest", params={"place": "Besancon"})
    assert page.status_code == 500
    assert "Something went wrong on this server. Please try again." in page.text
    assert "Traceback" not in page.text and "secret" not in page.text
    assert api.status_code == 500
    assert api.json() == {"error": "Something went wrong on this server. Please try again."}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unexpected RuntimeError in POST /nearest" in logged
    assert "Besancon" not in logged


# --------------------------------------------------------------------------- logs


def test_the_place_is_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """Request lines hold method, path and status, never the query string or the form."""
    with caplog.at_level(logging.INFO, logger="trialfinder"):
        client.get("/nearest", params={"place": "Besancon"})
        client.post("/nearest", data={"place": "Montbeliard"})
        client.get("/api/nearest", params={"place": "Xqzwv"})
        client.get("/api/places", params={"q": "Pontarl"})
    lines = [r.getMessage() for r in caplog.records]
    assert '"GET /nearest" 200' in lines[0]
    assert '"POST /nearest" 200' in lines[1]
    assert '"GET /api/nearest" 422' in lines[2]
    for needle in ("esancon", "ontbeliard", "Xqzwv", "Pontarl", "place="):
        assert not any(needle in line for line in lines)


# --------------------------------------------------------------------------- a real process


def http(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One request with the standard library (no client shared with the server's tests)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def raw(url: str, data: bytes, *, read: bool = True) -> bytes:
    """Bytes written straight to the server's socket, and the start of its answer."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        if not read:
            return b""
        return sock.recv(65536)  # the status line comes first


def test_bad_requests_never_stop_the_server(live_server) -> None:
    """Garbage, a half request, a huge header, a 10 kB place and an unknown method are each
    refused; the server answers the next patient all the same."""
    url = live_server.url
    assert raw(url, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    raw(url, b"GET / HTTP/1.1\r\nHost: x\r\n", read=False)  # cut off half-way
    assert raw(url, b"GET /?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
               ).startswith(b"HTTP/1.1 4")  # 414, or 400 from the HTTP parser itself
    assert http(url + "api/nearest?place=" + "Lyon" * 2500)[0] == 414
    assert http(url + "nearest", "POST", b"place=" + b"L" * 10_000,
                {"content-type": "application/x-www-form-urlencoded"})[0] == 413
    assert http(url + "nearest", "DELETE")[0] == 405
    status, body = http(url + "api/nearest?place=Besancon")
    assert status == 200
    assert json.loads(body)["sites"][0]["city"] == "Besançon"
    assert live_server.process.poll() is None


def test_the_running_server_logs_no_place(live_server) -> None:
    """What the server process writes holds request lines, never a place typed."""
    url = live_server.url
    http(url + "nearest?place=Pontarlier")
    http(url + "nearest", "POST", b"place=Montbeliard&lang=fr",
         {"content-type": "application/x-www-form-urlencoded"})
    http(url + "api/places?q=Vesoul")
    import time

    time.sleep(0.3)
    log = "".join(live_server.lines)
    assert '"GET /nearest" 200' in log and '"POST /nearest" 200' in log
    assert '"GET /api/places" 200' in log
    for needle in ("Pontarlier", "Montbeliard", "Vesoul", "place=", "q="):
        assert needle not in log


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_stop_it_cleanly(tmp_path: Path, signum: str) -> None:
    """SIGTERM (systemd stop) and Ctrl-C end the server with exit 0 and one line, after
    the requests under way."""
    import signal

    from conftest import LiveServer

    server = LiveServer("--db", str(tmp_path / "none.sqlite"), "--trial", NCT)
    assert http(server.url)[0] == 200
    code = server.stop(getattr(signal, signum))
    assert code == 0, "".join(server.lines)
    assert server.lines[0].startswith(f"trialfinder: serving {NCT} on http://127.0.0.1:")
    assert server.lines[-1] == "trialfinder: stopped\n"
    assert not any("Traceback" in line for line in server.lines)


def test_serve_is_ready_quickly(tmp_path: Path) -> None:
    """From launch to answering requests in under 2 s (the goal; generous on a busy CI)."""
    import time

    from conftest import LiveServer

    started = time.perf_counter()
    server = LiveServer("--db", str(tmp_path / "none.sqlite"))
    try:
        assert http(server.url + "api/nearest?place=Lyon")[0] == 200
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    assert elapsed < 4.0, elapsed


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--trial", "NCT123"], 2, "Error: 'NCT123' is not a ClinicalTrials.gov identifier "
                               "(expected NCT and 8 digits, e.g. NCT02260505)\n"),
    (["--trial", "NCT00000001"], 1, "Error: No record of NCT00000001 here; fetch it with "
                                    "`trialfinder sync NCT00000001` (needs network)\n"),
    (["--tiles", "https://tiles.example.org/tile.png"], 2,
     "Error: --tiles needs {z}, {x} and {y} in its URL, not https://tiles.example.org/tile.png\n"),
    (["--tiles", "ftp://x/{z}/{x}/{y}"], 2, "Error: Not a tile URL: ftp://x/{z}/{x}/{y}\n"),
    (["--port", "70000"], 2, None),
])
def test_serve_refuses_bad_options_in_one_line(no_store: Path, args: list[str], code: int,
                                               message: str | None) -> None:
    """Bad --trial, --tiles or --port: one line, the README's exit code, nothing served."""
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(no_store), *args])
    assert result.exit_code == code
    assert result.stdout == ""
    if message:
        assert result.stderr == message
    assert result.stderr.count("\n") == 1


def test_serve_on_a_taken_port_says_so(no_store: Path) -> None:
    """A port already in use: exit 1 and one line naming it."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["serve", "--db", str(no_store), "--port",
                                              str(port)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use\n")


def test_how_to_reach_a_site_is_one_rule_in_every_output(tmp_path: Path) -> None:
    """A site with its own desk, one reachable only through the trial's central contact, one
    with nobody: the CLI answer, its JSON, the web page and the referral sheet say the same
    (`contacts.reach`), and every phone is linked in international form."""
    from trialfinder import queries, render
    from trialfinder.referral import build_referral, referral_html

    central = Contact("Trial office", role="CENTRAL_CONTACT", phone="01 42 11 42 11")
    trial = Trial(
        nct_id=OTHER, title="Reach", status=Status.RECRUITING, verified_date="2025-02",
        source=Source("registry", "ClinicalTrials.gov API v2", "2025-02-01",
                      retrieved="2025-02-20T00:00:00Z"),
        central_contacts=(central,),
        sites=(
            Site("Hôpital A", "Dijon", "France", status=Status.RECRUITING, latitude=47.322,
                 longitude=5.0415, contacts=(
                     Contact("Dr A", role="PRINCIPAL_INVESTIGATOR"),
                     Contact("Desk A", role="CONTACT", phone="03 80 29 30 31"))),
            Site("Hôpital B", "Beaune", "France", status=Status.RECRUITING, latitude=47.025,
                 longitude=4.8397, contacts=(Contact("Dr B", role="PRINCIPAL_INVESTIGATOR"),)),
        ),
    )
    db = store_with(tmp_path / "store.sqlite", trial)
    answer = queries.nearest("Dijon", OTHER, db, limit=5)
    data = render.nearest_json(answer)
    reach = {s["facility"]: s["reach"] for s in data["sites"]}
    assert reach["Hôpital A"] == {"scope": "site", "contacts": [
        {"name": "Desk A", "title": None, "role": "CONTACT", "phone": "03 80 29 30 31",
         "tel": "tel:+33380293031", "email": None}]}
    assert reach["Hôpital B"]["scope"] == "trial"
    assert reach["Hôpital B"]["contacts"][0]["tel"] == "tel:+33142114211"
    text = render.nearest_text(answer)
    assert "   Contact: Desk A, 03 80 29 30 31" in text
    assert "   Contact (for the whole trial): Trial office, 01 42 11 42 11" in text
    assert "No phone or e-mail" not in text
    with TestClient(create_app(Settings(db_path=db, trials=(OTHER,)))) as client:
        page = client.post("/nearest", data={"place": "Dijon", "trial": OTHER}).text
    assert '<a href="tel:+33380293031">03 80 29 30 31</a>' in page
    assert '<a href="tel:+33142114211">01 42 11 42 11</a>' in page
    assert "Contact (for the whole trial): Trial office" in page
    sheet = referral_html(build_referral(OTHER, "Dijon", db))
    assert "see the central contacts" in sheet and sheet.count("tel. 03 80 29 30 31") == 1


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_plain_age_of_a_fresh_record_is_not_a_warning_in_any_language(
    tmp_path: Path, lang: str
) -> None:
    """A fresh copy gets the plain age line, styled as such (not as a warning), in French
    as in English: whether a line warns comes from the rule that wrote it, not from
    comparing sentences (a listing page's source is named in the reader's language)."""
    import dataclasses

    listing = dataclasses.replace(hostile_trial(), source=Source(
        kind="listing", description="CenterWatch-style listing page", as_of="2025-02-01"))
    db = store_with(tmp_path / "s.sqlite", listing)
    with TestClient(create_app(Settings(db_path=db, trials=(OTHER,)))) as client:
        pages = [client.get(f"/trial/{OTHER}", params={"lang": lang}),
                 client.get("/nearest", params={"place": "Dijon", "trial": OTHER,
                                                "lang": lang})]
    for page in pages:
        assert page.status_code == 200
        assert len(re.findall(r'<p class="age">', page.text)) == 1
        assert '<p class="warning">' not in page.text
