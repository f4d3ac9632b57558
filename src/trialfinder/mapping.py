"""Maps a patient can open anywhere: one self-contained HTML file per trial (and place).

folium builds the page (map, OpenStreetMap tiles); Leaflet's own JS and CSS are inlined from
the `django-js-lib-leaflet` package, and the Natural Earth country outlines bundled in
data/basemap/ are drawn under the tiles, so the file renders with no network at all and
reads better with it. Nothing is fetched from a CDN: folium's default jQuery, Bootstrap and
icon-font links are dropped, and sites are drawn as circle markers.

Everything that comes from a record is HTML-escaped in Python and reaches the page either
as HTML text or inside JSON whose `<`, `>` and `&` are \\u-escaped. None of it passes through
folium's Jinja templates (they re-render their own output as a template, and do not escape):
the page is rendered with placeholders, which are then replaced in a single pass.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trialfinder.i18n import N_, _, ngettext
from trialfinder.models import Site, Trial
from trialfinder.nearest import RankedSite, haversine_km, point_key, position_key, rank_sites
from trialfinder.recruitment import Recruitment, Standing, StatusFrom
from trialfinder.resources import data_path
from trialfinder.words import facility_words

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer, Place, Resolution
    from trialfinder.geocode import Geocoder
    from trialfinder.queries import NearestAnswer, TrialView
    from trialfinder.store import StoreLike

LEAFLET_PACKAGE = "js_lib_leaflet"  # PyPI: django-js-lib-leaflet (Leaflet 1.9.4, BSD-2-Clause)
BASEMAP = "basemap/countries.geojson"
DEFAULT_MAP_DIR = Path("maps")

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)
BASEMAP_ATTRIBUTION = N_("Outlines: Natural Earth (public domain)")

NEAREST_COLOUR = "#b2182b"
PATIENT_COLOUR = "#6a3d9a"


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    """A `recruitment.Standing` value: the status rule decides a marker's colour."""
    colour: str

    @property
    def label(self) -> str:
        labels = {
            Standing.RECRUITING: _("Recruiting"),
            Standing.NOT_YET_RECRUITING: _("Not yet recruiting"),
            Standing.NOT_RECRUITING: _("Not recruiting (closed, completed…)"),
            Standing.UNKNOWN: _("Status unknown (e.g. not verified for two years)"),
            Standing.NOT_STATED: _("No status in the record"),
        }
        return labels[Standing(self.key)]


# Colour-blind-safe enough: green, blue, grey, orange, brown differ in lightness as well as hue.
CATEGORIES = (
    Category(Standing.RECRUITING.value, "#1a9850"),
    Category(Standing.NOT_YET_RECRUITING.value, "#2171b5"),
    Category(Standing.NOT_RECRUITING.value, "#737373"),
    Category(Standing.UNKNOWN.value, "#e08214"),
    Category(Standing.NOT_STATED.value, "#8c6d31"),
)
CATEGORY_BY_KEY = {c.key: c for c in CATEGORIES}


@dataclass(frozen=True, slots=True)
class Tiles:
    """A tile server chosen by whoever runs trialfinder (e.g. `serve --tiles`)."""

    url: str
    """A Leaflet URL template: "https://tiles.example.org/{z}/{x}/{y}.png"."""
    attribution: str = OSM_ATTRIBUTION
    """HTML shown in the map's corner (the provider's terms usually require it)."""


@dataclass(frozen=True, slots=True)
class MapResult:
    """A map written to disk, with what the command may tell the user about it."""

    path: Path
    placed: int
    unplaced: int
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- public API


def build_map(
    view_or_trial: TrialView | Trial,
    *,
    place: Place | None = None,
    ranked: Sequence[RankedSite] | None = None,
    tiles: bool | Tiles = True,
    today: date | None = None,
    script_nonce: str | None = None,
    assets_url: str | None = None,
    terminal: bool = True,
) -> str:
    """The whole map as one self-contained HTML document.

    `place` adds the patient's marker, distances, the nearest recruiting site highlighted
    with a line to it, and a view fitted to the patient and the nearest sites. `ranked`
    (e.g. a `NearestAnswer.ranked`) decides which sites count as nearest, so the map agrees
    with the text answer; without it every site is ranked around the place. `tiles=False`
    leaves out the OpenStreetMap layer (the outlines alone); a `Tiles` uses that server.

    For a web page (`trialfinder serve`): `script_nonce` is put on every script element, for a
    Content-Security-Policy that allows no other inline script; `assets_url` links Leaflet
    and the outlines (the files of `map_asset`, served there) instead of inlining them;
    `terminal=False` gives advice for a patient instead of commands to run.
    """
    import folium

    view = _view(view_or_trial, today)
    trial = view.trial
    nonce = secrets.token_hex(8)
    slots: dict[str, str] = {}

    def slot(name: str, content: str) -> str:
        slots[name] = content
        return f"@@tf-{name}-{nonce}@@"

    sites = _site_entries(view, place, ranked)
    placed = [s for s in sites if s["lat"] is not None]
    bounds = _fit_points(placed, place, ranked is not None)
    centre = bounds[0] if bounds else [46.6, 2.4]

    fmap = folium.Map(location=centre, zoom_start=6, tiles=None, control_scale=True)
    # No CDN: Leaflet comes inline below; folium's jQuery/Bootstrap/icon fonts are not needed.
    fmap.default_js = []
    fmap.default_css = []
    if isinstance(tiles, Tiles):
        folium.TileLayer(tiles.url, attr=tiles.attribution, name="tiles", max_zoom=19).add_to(fmap)
    elif tiles:
        folium.TileLayer(
            OSM_TILES, attr=OSM_ATTRIBUTION, name="OpenStreetMap", max_zoom=19
        ).add_to(fmap)

    title = (_("{nct_id}: trial sites near {place}").format(nct_id=trial.nct_id, place=place.label)
             if place else _("{nct_id}: trial sites").format(nct_id=trial.nct_id))
    script_tag = f'<script nonce="{html.escape(script_nonce)}">' if script_nonce else "<script>"
    if assets_url is None:
        js, css = leaflet_assets()
        assets = f"<style>{css}</style>\n{script_tag}{js}</script>"
        basemap = _basemap_text()
    else:
        base = html.escape(assets_url)
        assets = (
            f'<link rel="stylesheet" href="{base}leaflet.css">\n'
            f'<script src="{base}leaflet.js"></script>\n<script src="{base}basemap.js"></script>'
        )
        basemap = "tfBasemap"  # defined by basemap.js
    header = f"<title>{html.escape(title)}</title>\n{assets}\n<style>{_PAGE_CSS}</style>"
    legend_id, source_id = f"tf-legend-{nonce}", f"tf-source-{nonce}"
    body = _legend_html(legend_id, trial, sites, place) + _source_html(
        source_id, view, terminal=terminal
    )
    data = {
        "sites": [{k: v for k, v in s.items() if not k.startswith("_")} for s in placed],
        "patient": _patient_entry(place),
        "labels": _place_labels(placed, place),
        "bounds": bounds,
        "legend": legend_id,
        "source": source_id,
        "basemapAttribution": _(BASEMAP_ATTRIBUTION),
        "nearestColour": NEAREST_COLOUR,
    }
    script = (
        f"var tfMap = {fmap.get_name()};\n"
        f"var tfBasemap = {basemap};\n"
        f"var tfData = {script_json(data)};\n"
        f"{_PAGE_JS}"
    )
    _slot_element(
        header=slot("header", header), html=slot("body", body), script=slot("script", script)
    ).add_to(fmap)

    page = _finish_page(fmap.get_root().render(), script_nonce)
    pattern = re.compile(rf"@@tf-(\w+)-{nonce}@@")
    # One pass: text put in by a slot is never searched for further placeholders.
    return pattern.sub(lambda m: slots[m.group(1)], page)


def _finish_page(page: str, script_nonce: str | None) -> str:
    """folium's page, with the document's language, a viewport that lets people zoom (WCAG
    1.4.4), and `script_nonce` on folium's script elements. Runs before the slots are filled, so
    nothing from a record is ever touched here."""
    from trialfinder.i18n import current_language

    page = page.replace("<html>", f'<html lang="{current_language()}">', 1)
    page = re.sub(r",\s*maximum-scale=1\.0,\s*user-scalable=no", "", page, count=1)
    if script_nonce is not None:
        page = re.sub(r"<script(?=[\s>])", f'<script nonce="{html.escape(script_nonce)}"', page)
    return page


def write_map(
    html_text: str,
    path: Path | str,
    *,
    private: bool = False,
    store: Path | str | None = None,
    create_folder: bool = True,
) -> Path:
    """Write the page atomically with `trialfinder.files.write_output` (its refusals, its
    modes): ``private`` when it shows the patient's place; never over ``store``'s files.
    The commands create only the default folder (maps/), not the folder of an --output."""
    from trialfinder.files import write_output

    return write_output(path, html_text, private=private, stores=(store,),
                        create_folder=create_folder)


def slug(text: str) -> str:
    """'Saint-Étienne (42)' -> 'saint-etienne-42': folded ASCII for file names."""
    from trialfinder.text import strip_accents

    ascii_text = strip_accents(text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-") or "place"


def default_map_path(
    nct_id: str, place: Place | None = None, directory: Path | None = None
) -> Path:
    """maps/NCT02260505.html, or maps/NCT02260505-lyon.html near a place (relative to the
    current directory)."""
    name = nct_id if place is None else f"{nct_id}-{slug(place.name)}"
    return (directory or DEFAULT_MAP_DIR) / f"{name}.html"


def make_map(
    nct_id: str,
    db: StoreLike,
    *,
    place_query: str | None = None,
    output: Path | None = None,
    gazetteer: Gazetteer | None = None,
    geocoder: Geocoder | None = None,
    tiles: bool = True,
    today: date | None = None,
) -> MapResult:
    """`trialfinder map`: load the trial (``db``: an open `Store`, a path, or None), resolve
    the place (offline), build, write.

    The file goes to `output`, else to maps/NCT….html (maps/NCT…-slug.html near a place)
    under the current directory.
    """
    from trialfinder.geocode import resolve_place
    from trialfinder.queries import trial_view

    resolution = (
        resolve_place(place_query, gazetteer=gazetteer) if place_query is not None else None
    )
    view = trial_view(nct_id, db, geocoder=geocoder, today=today, gazetteer=gazetteer)
    place = resolution.place if resolution else None
    page = build_map(view, place=place, tiles=tiles, today=today)
    path = write_map(page, output or default_map_path(view.trial.nct_id, place),
                     private=place is not None, store=_store_path(db),
                     create_folder=output is None)
    return _result(path, view.trial, resolution)


def _store_path(db: StoreLike) -> str | None:
    """The file behind ``db`` (an open Store's path), which a map must never overwrite."""
    if db is None or isinstance(db, (str, Path)):
        return None if db is None else str(db)
    return db.path


def map_for_answer(
    answer: NearestAnswer,
    output: Path | None = None,
    *,
    store: Path | str | None = None,
) -> MapResult:
    """`trialfinder nearest --map`: the map of an answer already computed (it shows the
    patient's place: written private). Never written over ``store``'s files."""
    place = answer.resolution.place
    page = build_map(answer.view, place=place, ranked=answer.ranked)
    path = write_map(page, output or default_map_path(answer.view.trial.nct_id, place),
                     private=True, store=store, create_folder=output is None)
    return _result(path, answer.view.trial, answer.resolution)


# --------------------------------------------------------------------------- assets


@functools.cache
def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS and CSS from the installed package, ready to inline (images as data:)."""
    base = resources.files(LEAFLET_PACKAGE).joinpath("static", LEAFLET_PACKAGE)
    js = base.joinpath("leaflet.js").read_text(encoding="utf-8")
    css = base.joinpath("leaflet.css").read_text(encoding="utf-8")
    js = re.sub(r"//# sourceMappingURL=\S*\s*$", "", js).replace("</", "<\\/")

    def inline(match: re.Match[str]) -> str:
        data = base.joinpath("images", match.group(1)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(data).decode('ascii')})"

    css = re.sub(r"url\(images/([\w.-]+\.png)\)", inline, css).replace("</", "<\\/")
    return js, css


MAP_ASSETS = {
    "leaflet.js": "text/javascript; charset=utf-8",
    "leaflet.css": "text/css; charset=utf-8",
    "basemap.js": "text/javascript; charset=utf-8",
}
"""The files a map built with `assets_url` links to, by name."""


def map_asset(name: str) -> str:
    """The text of one of `MAP_ASSETS` (Leaflet from the installed package, images inlined;
    the country outlines as a script defining ``tfBasemap``); KeyError for any other name."""
    if name not in MAP_ASSETS:
        raise KeyError(name)
    js, css = leaflet_assets()
    if name == "leaflet.js":
        return js
    if name == "leaflet.css":
        return css
    return f"var tfBasemap = {_basemap_text()};\n"


@functools.cache
def _basemap_text() -> str:
    text = data_path(BASEMAP).read_text(encoding="utf-8").strip()
    return text.replace("</", "<\\/")


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` survives literally."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


@functools.cache
def _slot_class() -> type:
    from branca.element import MacroElement
    from folium.template import Template

    class Slots(MacroElement):
        """Placeholders in the page's head, body and script (replaced after rendering)."""

        _template = Template(
            "{% macro header(this, kwargs) %}{{ this.slot_header }}{% endmacro %}"
            "{% macro html(this, kwargs) %}{{ this.slot_html }}{% endmacro %}"
            "{% macro script(this, kwargs) %}{{ this.slot_script }}{% endmacro %}"
        )

        def __init__(self, header: str, html: str, script: str) -> None:
            super().__init__()
            self._name = "TrialfinderSlots"
            self.slot_header, self.slot_html, self.slot_script = header, html, script

    return Slots


def _slot_element(*, header: str, html: str, script: str) -> Any:
    return _slot_class()(header, html, script)


# --------------------------------------------------------------------------- content


def _view(view_or_trial: TrialView | Trial, today: date | None) -> TrialView:
    from trialfinder.queries import TrialView

    if isinstance(view_or_trial, Trial):
        return TrialView(view_or_trial, today=today) if today else TrialView(view_or_trial)
    return view_or_trial


def _site_entries(
    view: TrialView, place: Place | None, ranked: Sequence[RankedSite] | None
) -> list[dict[str, Any]]:
    """One dict per site, in record order: position, colour, tooltip and popup HTML."""
    trial = view.trial
    distances: dict[int, float] = {}
    rank_of: dict[int, int] = {}  # index of a site -> its place, nearest first (ranked ones)
    nearest: set[int] = set()  # the nearest recruiting site, or the equally near ones
    if place is not None:
        for i, site in enumerate(trial.sites):
            if site.latitude is not None and site.longitude is not None:
                distances[i] = haversine_km(
                    place.latitude, place.longitude, site.latitude, site.longitude
                )
        if ranked is None:
            ranked = rank_sites(trial, place.latitude, place.longitude, include_all=True,
                                today=view.today)
        ids = {id(s): i for i, s in enumerate(trial.sites)}
        known = [r for r in ranked if id(r.site) in ids and r.site.has_position]
        rank_of = {ids[id(r.site)]: n for n, r in enumerate(known)}
        first = next((r for r in known if r.recruitment.recruiting), None)
        if first is not None:
            nearest = {ids[id(r.site)] for r in known
                       if r.rank == first.rank and r.recruitment.recruiting}

    answers = [view.site_recruitment(site) for site in trial.sites]
    positions = Counter(k for s in trial.sites if (k := position_key(s)) is not None)
    seen: defaultdict[tuple[float, float], int] = defaultdict(int)
    entries = []
    for i, site in enumerate(trial.sites):
        answer = answers[i]
        key = position_key(site)
        category = CATEGORY_BY_KEY[answer.standing.value]
        entry: dict[str, Any] = {
            "lat": site.latitude if site.has_position else None,
            "lon": site.longitude if site.has_position else None,
            "category": category.key,
            "colour": category.colour,
            "nearest": i in nearest,
            "tooltip": html.escape(facility_words(site)),
            "popup": _popup_html(site, trial, answer, distances.get(i), place,
                                 nearest=i in nearest,
                                 sharing=positions[key] if key is not None else 0),
            "_site": site,
            "_rank": rank_of.get(i),
        }
        if key is not None:
            entry["group"], entry["slot"] = positions[key], seen[key]
            # A site exactly where the patient is would hide under (or hide) the patient.
            entry["aroundPatient"] = place is not None and key == point_key(
                place.latitude, place.longitude
            )
            seen[key] += 1
            if i in nearest and distances.get(i) is not None:
                entry["distance"] = round(distances[i], 1)
        entries.append(entry)
    return entries


def _place_labels(placed: list[dict[str, Any]], place: Place | None) -> list[dict[str, Any]]:
    """One small city label per distinct site position (not where the patient's label is),
    so the map reads without tiles."""
    cities: dict[tuple[float, float], list[str]] = {}
    for entry in placed:
        site = entry["_site"]
        key = position_key(site)
        if key is None:
            continue
        names = cities.setdefault(key, [])
        if site.city and site.city not in names:
            names.append(site.city)
    patient = point_key(place.latitude, place.longitude) if place is not None else None
    return [
        {"lat": lat, "lon": lon, "label": html.escape(" / ".join(names))}
        for (lat, lon), names in cities.items()
        if names and (lat, lon) != patient
    ]


def _fit_points(
    placed: list[dict[str, Any]], place: Place | None, from_answer: bool
) -> list[list[float]]:
    """Points the view is fitted to: the patient and the 3 nearest sites, else every site."""
    if place is None:
        return [[s["lat"], s["lon"]] for s in placed]
    ranked = sorted((s for s in placed if s["_rank"] is not None), key=lambda s: s["_rank"])
    recruiting = [s for s in ranked if s["category"] == "recruiting"]
    chosen = (recruiting or ranked)[:3]
    nearest = [s for s in placed if s["nearest"]]
    chosen.extend(s for s in nearest if s not in chosen)
    return [[place.latitude, place.longitude]] + [[s["lat"], s["lon"]] for s in chosen]


def _patient_entry(place: Place | None) -> dict[str, Any] | None:
    if place is None:
        return None
    return {
        "lat": place.latitude,
        "lon": place.longitude,
        "label": html.escape(_("Your place: {place}").format(place=place.label)),
        "colour": PATIENT_COLOUR,
    }


def _popup_html(
    site: Site,
    trial: Trial,
    answer: Recruitment,
    distance_km: float | None,
    place: Place | None,
    *,
    nearest: bool,
    sharing: int,
) -> str:
    from trialfinder.contacts import reach, tel_uri
    from trialfinder.recruitment import status_source_words, status_words
    from trialfinder.render import position_text, shared_words
    from trialfinder.words import distance_words, site_where

    e = html.escape
    status_label, contact_label = _("Status:"), _("Contact:")
    position_label, distance_label = _("Position:"), _("Distance:")
    category = CATEGORY_BY_KEY[answer.standing.value]
    parts = [f'<div class="tf-popup"><div class="tf-facility">{e(facility_words(site))}</div>']
    if nearest:
        badge = (_("Nearest recruiting site (equally near)") if sharing > 1
                 else _("Nearest recruiting site"))
        parts.append(f'<div class="tf-badge">{e(badge)}</div>')
    if site.facility_raw and site.facility_raw != site.facility:
        parts.append('<div class="tf-muted">{}</div>'.format(
            e(_("As recorded: {name}").format(name=site.facility_raw))))
    where = site_where(site, full=True)
    if where:
        parts.append(f"<div>{e(where)}</div>")
    investigators = site.investigators
    if investigators:
        label = ngettext("Investigator:", "Investigators:", len(investigators))
        names = "; ".join(c.display for c in investigators)
        parts.append(f"<div><b>{e(label)}</b> {e(names)}</div>")
    source = ("" if answer.status_from is StatusFrom.PAGE else
              f' <span class="tf-muted">({e(status_source_words(answer, site))})</span>')
    parts.append(
        f'<div><b>{e(status_label)}</b> <span class="tf-dot" '
        f'style="background:{category.colour}"></span>{e(status_words(answer))}{source}</div>'
    )
    found = reach(site, trial)
    if found.scope == "trial":
        contact_label = _("Contact (for the whole trial):")
    for contact in found.contacts:
        bits = [e(contact.display)]
        if contact.phone:
            tel = tel_uri(contact.phone, site.country)
            bits.append(f'<a href="{e(tel)}">{e(contact.phone)}</a>' if tel
                        else e(contact.phone))
        if contact.email:
            bits.append(f'<a href="mailto:{e(contact.email)}">{e(contact.email)}</a>')
        parts.append(f"<div><b>{e(contact_label)}</b> {', '.join(bits)}</div>")
    parts.append(f"<div><b>{e(position_label)}</b> {e(position_text(site))}</div>")
    if sharing > 1:
        parts.append('<div class="tf-muted">{}</div>'.format(e(_("Equally near: {shared}").format(
            shared=shared_words(site, sharing)))))
    if place is not None and distance_km is not None:
        parts.append(
            f"<div><b>{e(distance_label)}</b> "
            + e(_("{distance} from {place}").format(distance=distance_words(distance_km),
                                                  place=place.label))
            + ' <span class="tf-muted">({})</span></div>'.format(e(_("straight line")))
        )
    if site.unrepaired:
        parts.append('<div class="tf-muted">{}</div>'.format(e(
            _("The name may have lost accents here: {tokens}").format(
                tokens=", ".join(site.unrepaired)))))
    parts.append("</div>")
    return "".join(parts)


def _legend_html(
    element_id: str, trial: Trial, sites: list[dict[str, Any]], place: Place | None
) -> str:
    from trialfinder.render import shared_words
    from trialfinder.words import distance_words

    e = html.escape
    counts = Counter(s["category"] for s in sites if s["lat"] is not None)
    heading = trial.nct_id + (f" — {trial.acronym}" if trial.acronym else "")
    title = trial.brief_title or trial.title
    if len(title) > 110:
        title = title[:107].rstrip() + "…"
    rows = [
        f'<li class="tf-entry" data-category="{c.key}"><span class="tf-swatch" '
        f'style="background:{c.colour}"></span>{e(c.label)} <span class="tf-count">'
        f"({counts.get(c.key, 0)})</span></li>"
        for c in CATEGORIES
        if counts.get(c.key) or c.key != Standing.NOT_STATED.value
    ]
    if place is not None:
        rows.append(
            '<li class="tf-entry" data-category="patient"><span class="tf-swatch" '
            f'style="background:{PATIENT_COLOUR}"></span>'
            f'{e(_("Your place: {place}").format(place=place.label))}</li>'
        )
        nearest = [s for s in sites if s["nearest"]]
        if nearest:
            distance = nearest[0].get("distance")
            far = f" — {distance_words(distance)}" if distance is not None else ""
            names = "; ".join(facility_words(s["_site"]) for s in nearest)
            if len(nearest) == 1:
                text = _("Nearest recruiting: {names}").format(names=names)
            else:
                text = _("Nearest recruiting, equally near: {names} ({shared})").format(
                    names=names, shared=shared_words(nearest[0]["_site"], len(nearest)))
            rows.append(
                '<li class="tf-entry" data-category="nearest"><span class="tf-ring"></span>'
                f"{e(text)}{e(far)}</li>"
            )
        else:
            rows.append('<li class="tf-entry tf-muted">{}</li>'.format(
                e(_("No recruiting site is placed."))))
    parts = [
        # Focusable: it scrolls when long, and keyboard users must be able to scroll it.
        f'<div id="{element_id}" class="tf-box tf-legend" tabindex="0">',
        f'<div class="tf-heading">{e(heading)}</div><div class="tf-muted">{e(title)}</div>',
        f'<ul class="tf-entries">{"".join(rows)}</ul>',
        '<div class="tf-muted">{}</div>'.format(e(_(
            "Colour: each site's status (its own, else the trial's; a status not verified for "
            "two years is unknown)."))),
    ]
    if any(s.get("group", 1) > 1 for s in sites):
        parts.append('<div class="tf-muted">{}</div>'.format(e(_(
            "Sites sharing one position are equally near (the record gives no street "
            "address); they are fanned out around it."))))
    unplaced = [s["_site"] for s in sites if s["lat"] is None]
    if unplaced:
        items = "".join(
            f"<li>{e(facility_words(s))}{e(', ' + s.city if s.city else '')}</li>"
            for s in unplaced
        )
        summary = ngettext("{count} site not placed (position unknown)",
                           "{count} sites not placed (position unknown)",
                           len(unplaced)).format(count=len(unplaced))
        parts.append(
            f'<details class="tf-unplaced"><summary>{e(summary)}'
            f"</summary><ul>{items}</ul></details>"
        )
    parts.append("</div>")
    return "".join(parts)


def _source_html(element_id: str, view: TrialView, *, terminal: bool = True) -> str:
    from trialfinder.freshness import age_sentence
    from trialfinder.render import as_of_text, warnings
    from trialfinder.words import record_source_words

    e = html.escape
    trial = view.trial
    source = trial.source
    parts = [
        f'<div id="{element_id}" class="tf-box tf-source">',
        e(_("Source: {source}, as of {as_of}.").format(
            source=record_source_words(source.description), as_of=as_of_text(source))) + " ",
        f'<a href="{e(trial.registry_url)}">'
        f'{e(_("{nct_id} on ClinicalTrials.gov").format(nct_id=trial.nct_id))}</a>',
        f'<div class="tf-muted">'
        f'{e(age_sentence(view.freshness, record_source_words(source.description)))}</div>',
    ]
    parts.extend(f'<div class="tf-warning">⚠ {e(w)}</div>'
                 for w in warnings(view, terminal=terminal))
    parts.append("</div>")
    return "".join(parts)


def _result(path: Path, trial: Trial, resolution: Resolution | None) -> MapResult:
    placed = sum(1 for s in trial.sites if s.has_position)
    notes = tuple(resolution.notes) if resolution else ()
    return MapResult(path=path, placed=placed, unplaced=len(trial.sites) - placed, notes=notes)


_PAGE_CSS = """
.leaflet-container { background: #c9dcea; font: 13px/1.4 system-ui, sans-serif; }
.tf-box { background: rgba(255,255,255,.95); padding: 8px 10px; border-radius: 6px;
  box-shadow: 0 1px 4px rgba(0,0,0,.35); max-width: 320px; }
.tf-legend { max-height: 70vh; overflow: auto; }
.tf-heading { font-weight: 600; }
.tf-muted { color: #555; font-size: 12px; }
.tf-entries { list-style: none; margin: 6px 0; padding: 0; }
.tf-entries li { margin: 2px 0; display: flex; align-items: center; gap: 6px; }
.tf-swatch { display: inline-block; width: 12px; height: 12px; border-radius: 50%;
  border: 1.5px solid #fff; box-shadow: 0 0 0 1px #666; flex: none; }
.tf-ring { display: inline-block; width: 12px; height: 12px; border-radius: 50%;
  border: 2px dashed #b2182b; flex: none; }
.tf-dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
  margin-right: 4px; }
.tf-unplaced ul { margin: 4px 0 0; padding-left: 18px; max-height: 150px; overflow: auto; }
.tf-source { font-size: 12px; max-width: 420px; }
.tf-warning { color: #8a1c00; margin-top: 4px; }
.tf-popup .tf-facility { font-weight: 600; font-size: 14px; }
.tf-popup > div { margin: 2px 0; }
.tf-badge { display: inline-block; background: #b2182b; color: #fff; border-radius: 3px;
  padding: 0 5px; font-size: 11px; }
.tf-patient-label { font-weight: 600; }
.tf-labels-hidden .tf-city { display: none; }
@media (max-width: 480px) {  /* a phone, or the map inside a web page on one */
  .tf-box { max-width: 62vw; padding: 5px 7px; font-size: 11px; }
  .tf-legend { max-height: 40vh; }
  .tf-legend .tf-muted { display: none; }
  .tf-source { font-size: 10px; }
}
.tf-city-text { position: absolute; left: 0; top: 9px; transform: translateX(-50%);
  font-size: 11px; color: #333; white-space: nowrap;
  text-shadow: 0 0 2px #fff, 0 0 2px #fff, 0 0 3px #fff; }
"""

# Reads tfMap, tfBasemap and tfData (set just before it). Plain ES5, no library but Leaflet.
_PAGE_JS = """
(function (map, basemap, data) {
  map.createPane('tfBasemap');
  map.getPane('tfBasemap').style.zIndex = 150;  // under the tiles (200): offline fallback
  L.geoJSON(basemap, {
    pane: 'tfBasemap', interactive: false, attribution: data.basemapAttribution,
    style: {color: '#8c8c8c', weight: 0.8, fillColor: '#f3efe6', fillOpacity: 1}
  }).addTo(map);

  data.labels.forEach(function (p) {
    L.marker([p.lat, p.lon], {
      icon: L.divIcon({className: 'tf-city', iconSize: null,
                       html: '<span class="tf-city-text">' + p.label + '</span>'}),
      interactive: false, keyboard: false
    }).addTo(map);
  });

  var sites = L.featureGroup().addTo(map);
  var fanned = [];
  var nearestAt = null;  // the nearest recruiting site's true position (shared when tied)
  data.sites.forEach(function (s) {
    var marker = L.circleMarker([s.lat, s.lon], {
      radius: s.nearest ? 10 : 7, color: s.nearest ? data.nearestColour : '#ffffff',
      weight: s.nearest ? 3 : 1.5, fillColor: s.colour, fillOpacity: 0.95,
      className: 'tf-site tf-' + s.category + (s.nearest ? ' tf-nearest' : '')
    });
    marker.bindTooltip(s.tooltip, {direction: 'top', offset: [0, -6]});
    marker.bindPopup(s.popup, {maxWidth: 320});
    marker.addTo(sites);
    var ring = null;
    if (s.nearest) {
      // Equally near sites (one position) are all marked nearest, each with its ring.
      if (!nearestAt) { nearestAt = [s.lat, s.lon]; }
      ring = L.circleMarker([s.lat, s.lon], {
        radius: 16, fill: false, color: data.nearestColour, weight: 2, dashArray: '4 3',
        interactive: false, className: 'tf-nearest-ring'
      }).addTo(map);
    }
    if (s.group > 1 || s.aroundPatient) { fanned.push({marker: marker, site: s, ring: ring}); }
  });

  if (data.patient) {
    var p = data.patient;
    L.circleMarker([p.lat, p.lon], {
      radius: 8, color: '#ffffff', weight: 2, fillColor: p.colour, fillOpacity: 1,
      className: 'tf-patient'
    }).bindTooltip(p.label, {permanent: true, direction: 'right', offset: [8, 0],
                             className: 'tf-patient-label'}).addTo(map);
    if (nearestAt) {
      L.polyline([[p.lat, p.lon], nearestAt], {
        color: data.nearestColour, weight: 2.5, dashArray: '6 6', interactive: false,
        className: 'tf-route'
      }).addTo(map);
    }
  }

  // Sites that share one position (often a city centre) are fanned out on a small circle,
  // in screen pixels, so each stays visible and clickable at every zoom. The route keeps to
  // the shared position itself: none of them is nearer than the others.
  function fan() {
    fanned.forEach(function (f) {
      var s = f.site, angle = 2 * Math.PI * s.slot / s.group - Math.PI / 2;
      var r = Math.min(8 + 3 * s.group, 30);
      var centre = map.latLngToLayerPoint([s.lat, s.lon]);
      var at = map.layerPointToLatLng(centre.add([r * Math.cos(angle), r * Math.sin(angle)]));
      f.marker.setLatLng(at);
      if (f.ring) { f.ring.setLatLng(at); }
    });
  }
  map.on('zoomend viewreset', fan);

  // City labels only once zoomed in enough for them not to pile up.
  function labels() {
    var hidden = map.getZoom() < 7, classes = map.getContainer().classList;
    if (hidden) { classes.add('tf-labels-hidden'); } else { classes.remove('tf-labels-hidden'); }
  }
  map.on('zoomend', labels);

  function control(id, position) {
    var element = document.getElementById(id);
    if (!element) { return; }
    var Box = L.Control.extend({options: {position: position}, onAdd: function () {
      L.DomEvent.disableClickPropagation(element);
      L.DomEvent.disableScrollPropagation(element);
      return element;
    }});
    new Box().addTo(map);
  }
  control(data.legend, 'topright');
  control(data.source, 'bottomleft');

  if (data.bounds.length > 1) {
    // Keep the fitted points clear of the legend (top right) and the source box.
    var legend = document.getElementById(data.legend);
    var source = document.getElementById(data.source);
    var size = map.getSize();
    var right = legend ? Math.min(legend.offsetWidth + 30, size.x / 2) : 40;
    var bottom = source ? Math.min(source.offsetHeight + 30, size.y / 3) : 40;
    map.fitBounds(data.bounds, {paddingTopLeft: [40, 40], paddingBottomRight: [right, bottom],
                                maxZoom: 12});
  } else if (data.bounds.length === 1) {
    map.setView(data.bounds[0], 10);
  } else {
    map.setView([46.6, 2.4], 5);
  }
  fan();
  labels();
})(tfMap, tfBasemap, tfData);
"""
