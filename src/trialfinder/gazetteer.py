"""The bundled place index: French communes and postal codes, and the world's larger cities.

``Gazetteer.bundled().resolve("Saint-Denis 974")`` turns what a patient types into a `Place`;
``locate(city, country, postal_code)`` geocodes a trial site from a registry's address fields.

The index is a read-only SQLite file, ``data/gazetteer.sqlite``, built from GeoNames data by
``scripts/build_gazetteer.py`` (see ``data/GAZETTEER.md``). Opening it parses nothing: an
exact lookup is one indexed query. Keys are `name_key` of the names (accent-free, lower-case,
St/Ste spelt out). Typos are caught in two steps: every string one edit away from the query
is looked up directly (a few hundred index probes), and, failing that, a trigram index over
primary names gives candidates ranked by Damerau-Levenshtein distance.

Ranking when a name fits several places: a score per name, precomputed by the build script,
of population times a weight (metropolitan France 1, French overseas and Monaco 0.5, the rest
of Europe 0.05, elsewhere 0.01), exonyms ("Londres", "Genève") counting a fifth of a primary
name. So "Saint-Denis" is the one in 93 (974 is bigger but overseas), "Valence" the one in
Drôme, "Valencia" the one in Spain. An alias-only place tiny next to the one taken is not
offered as an alternative.
"""

from __future__ import annotations

import heapq
import math
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import cos, hypot, radians
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from trialfinder.errors import UnknownPlace
from trialfinder.i18n import _, format_decimal, ngettext
from trialfinder.i18n import country_code as cldr_country_code
from trialfinder.i18n import country_name as localised_country_name
from trialfinder.models import Precision
from trialfinder.resources import data_path
from trialfinder.text import fold

__all__ = [
    "UNPLACED_REASONS",
    "Gazetteer",
    "Place",
    "Resolution",
    "SiteMatch",
    "Suggestion",
    "department_of",
    "name_key",
    "postal_key",
    "same_country",
]

SCHEMA_VERSION = 2
INDEX_FILE = "gazetteer.sqlite"

TOWN, MINOR, AREA = 0, 1, 2
"""Kinds of place in the index: a town a patient or a site may name; a small town (under
15,000 people abroad) only sites are matched to; a French region, department or overseas
territory only patients name."""

UNPLACED_REASONS = frozenset({
    "country unknown", "not found", "state differs", "postal code differs", "ambiguous",
    "registry position outside country",
})
"""The codes `Site.unplaced_reason` takes (stable: stored and in JSON); `words.unplaced_words`
says each in the reader's language."""
"""`Site.unplaced_reason` codes given by the offline placing, and what each means."""

FRENCH_TERRITORIES = frozenset(
    {"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF"}
)
"""GeoNames country codes of France and its overseas departments and collectivities."""

MAX_QUERY = 200
"""Longer input is refused rather than searched."""

_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "sts": "saints", "stes": "saintes",
                  "lez": "les"}
_CEDEX = re.compile(r"\s*\bcedex\b.*$", re.IGNORECASE)
_POSTAL = re.compile(r"\d{5}")
_POSTAL_AND_NAME = re.compile(r"^(\d{5})[\s,]+(\D.*)$|^(\D.*?)[\s,]+(\d{5})$")
_DEPARTMENT = re.compile(r"^(?:\d{1,3}|2[ab])$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz "
_MAX_FUZZY = 40
_COMMON_GRAM = 4000
"""Trigrams shared by more names than this ("sai", "ill") are too common to select on."""
_CANDIDATES = 30
"""Names sharing the most trigrams with the query that are then measured exactly."""
_CLEAR_WINNER = 10.0
"""A fuzzy match is taken when its score is this many times the next equally close one's."""
_WEAK_ALIAS = 0.01
"""A place matched only by an alias is offered as an alternative only if its score is at
least this fraction of the taken place's ("Milan" is also an alternate name of Syracuse, NY)."""
_MINOR_WORDS = frozenset({"saint", "sainte", "saints", "saintes", "sur", "sous", "les", "la",
                          "le", "en", "de", "du", "des", "aux", "au", "et", "l", "d", "lo"})
"""Words that alone do not designate a commune ("Saint", "sur"): a partial name needs more."""
_POSTAL_COUNTRIES = FRENCH_TERRITORIES | {"MC"}
_LOCALITY_KM = 10.0
"""A locality (an alias, a place without a postal code) this near a commune of the code is
taken to be in it."""
_DISTRICT_SUFFIX = re.compile(
    r"^(?:\d{1,2}(?:e|er|eme|ieme)?|[ivx]{1,5}(?:e|er|eme)?|arrondissement)$")
"""What may follow a commune's name in a postal-code query: "Paris 20e", "Lyon 3eme", "XXe"."""
_FRENCH_PREFIX = re.compile(r"\b(?:FR?)[-\s]?(?=\d{5}\b)", re.IGNORECASE)
"""A country prefix before a French postal code: "F-69008", "FR-75020", "FR 75020"."""
_ZIP_KM = 25.0
"""A town this near the places of a postal code agrees with it (US ZIP codes are wide)."""
_SAME_PLACE_KM = 10.0
"""Two entries of one name this close are one town (a GeoNames point and a ZIP town)."""

_ZIP_DIGITS = {"US": 5, "DE": 5, "ES": 5, "IT": 5, "AT": 4, "BE": 4, "CH": 4, "DK": 4, "NL": 4,
               "AU": 4, "NZ": 4}
"""Countries whose postal codes the index keeps, by their number of digits."""
ZIP_COUNTRIES = frozenset(_ZIP_DIGITS) | {"CA", "GB", "IE"}
"""Countries (besides France, its overseas territories and Monaco) whose postal codes are in
the index, so that a site's postal code is checked and can place it."""
_ALNUM = re.compile(r"[^0-9A-Z]")
_LEADING_DIGITS = re.compile(r"^[A-Z]{0,3}(\d+)")
_FSA = re.compile(r"^[A-Z]\d[A-Z]")
_IRISH_KEY = re.compile(r"^[A-Z]\d[\dW]")
_OUTWARD = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?$")


def name_key(text: str) -> str:
    """The lookup key of a place name: `fold`, with St/Ste/Lez spelt Saint/Sainte/Lès."""
    words = fold(text).split()
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


def postal_key(code: str | None, country: str) -> str | None:
    """A foreign postal code as the index keeps it, or None when it is not one.

    Digits only, the country's number of them ("D-80331" -> "80331", ZIP+4 "53066-1234" ->
    "53066", "1234 AB" -> "1234"); Canada's FSA and Ireland's routing key (the first three
    characters); Britain's outward code ("SW1A 1AA" -> "SW1A").
    """
    if not code or country not in ZIP_COUNTRIES:
        return None
    raw = code.upper().strip()
    text = _ALNUM.sub("", raw)
    if country in _ZIP_DIGITS:
        match = _LEADING_DIGITS.match(text)
        if not match or len(match.group(1)) < _ZIP_DIGITS[country]:
            return None
        return match.group(1)[: _ZIP_DIGITS[country]]
    if country == "CA":
        return text[:3] if _FSA.match(text) else None
    if country == "IE":
        return text[:3] if _IRISH_KEY.match(text) else None
    outward = raw.split()[0] if " " in raw else (text[:-3] if len(text) >= 5 else text)
    outward = _ALNUM.sub("", outward)
    return outward if _OUTWARD.match(outward) else None


def degree_cell(latitude: float, longitude: float) -> int:
    """The one-degree cell of a coordinate, as the index numbers them."""
    return (math.floor(latitude) + 90) * 360 + (math.floor(longitude) + 180) % 360


def department_of(postal_code: str) -> str:
    """French department of a postal code: two digits, three overseas, 2A/2B in Corsica."""
    if postal_code.startswith(("97", "98")):
        return postal_code[:3]
    if postal_code.startswith("20"):
        return "2A" if postal_code[2] in "01" else "2B"
    return postal_code[:2]


def country_weight(country: str, continent: str) -> float:
    """How much a place's population counts when ranking homonyms (France first)."""
    if country == "FR":
        return 1.0
    if country in FRENCH_TERRITORIES or country == "MC":
        return 0.5
    return 0.05 if continent == "EU" else 0.01


@dataclass(frozen=True, slots=True)
class Place:
    """A resolved place: a French commune, a postal code's area, or a city abroad."""

    name: str
    """Display name with accents: "Saint-Étienne", "València"."""
    country: str
    """ISO 3166-1 alpha-2 as GeoNames has it: "RE" for La Réunion."""
    country_name: str
    """English name; "France" for the overseas territories too."""
    region: str | None
    """Region (French places, US states) or overseas territory ("La Réunion")."""
    department: str | None
    """French department code ("34", "2A", "974"); None abroad."""
    postal_code: str | None
    """The postal code looked up, else a commune's first postal code; None abroad."""
    latitude: float
    longitude: float
    population: int | None
    precision: Precision
    """POSTAL_CODE for a postal-code centroid, CITY for a city centre, REGION for a French
    region, department or overseas territory (at its population-weighted centre, or its main
    town for the scattered overseas ones)."""

    @property
    def label(self) -> str:
        """ "Montpellier (34)", "Saint-Étienne (42), 42000", "Paris, Texas, United States"."""
        if self.department:
            base = f"{self.name} ({self.department})"
            if self.precision is Precision.POSTAL_CODE and self.postal_code:
                return f"{base}, {self.postal_code}"
            return base
        if self.region and self.country == "US":
            return f"{self.name}, {self.region}, {self.country_words}"
        return f"{self.name}, {self.country_words}"

    @property
    def country_words(self) -> str:
        """The country's name as the current language writes it ("Allemagne" in French);
        France for every French territory, as `country_name` says."""
        code = "FR" if self.country in FRENCH_TERRITORIES else self.country
        return localised_country_name(self.country_name, code)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a query was taken to mean, and what else it could have meant."""

    query: str
    place: Place
    alternatives: tuple[Place, ...] = ()
    """Other places the query could have meant, most likely first (at most 5)."""
    corrected_from: str | None = None
    """The user's text, when a typo was corrected."""
    notes: tuple[str, ...] = ()
    """Sentences for the user: what was taken, what else it could be, how to choose."""


class Suggestion(NamedTuple):
    """A place offered as the user types, and the text that resolves to it."""

    text: str
    place: Place


# The two private value types are plain classes: a dataclass costs about a millisecond of
# start-up each, and `trialfinder nearest` has a start-up budget.
@dataclass(frozen=True, slots=True)
class SiteMatch:
    """Where a site's address fields put it, which of them agree, or why nowhere."""

    place: Place | None
    matched: tuple[str, ...] = ()
    """The fields the place agrees with, in this order: "postal code", "city", "state"."""
    reason: str | None = None
    """Why the site is not placed: a key of `UNPLACED_REASONS`; None when placed."""


class _Hit(NamedTuple):
    place_id: int
    place: Place
    alias: bool
    score: float
    region_id: int | None = None
    """The place's admin-1 area (`admin` table)."""
    admin2: int | None = None
    """Its French department (`admin` table, level 2)."""


class _Filter:
    """A qualifier after the name: a department, a set of countries or an admin area."""

    __slots__ = ("admins", "countries", "department", "text")

    def __init__(
        self,
        text: str,
        department: str | None = None,
        countries: frozenset[str] | None = None,
        admins: frozenset[int] = frozenset(),
    ) -> None:
        self.text = text
        self.department = department
        self.countries = countries
        self.admins = admins

    def accepts(self, hit: _Hit) -> bool:
        if self.department is not None:
            return hit.place.department == self.department
        if self.countries is not None:
            return hit.place.country in self.countries
        return _in_admins(hit, self.admins)


def _in_admins(hit: _Hit, admins: frozenset[int]) -> bool:
    return hit.region_id in admins or hit.admin2 in admins


_PLACE_COLUMNS = """p.id, p.name, p.country, coalesce(c.name, p.country), a.name, p.department,
    p.postal_code, p.latitude, p.longitude, p.population, p.kind, p.region, p.admin2"""
_JOINS = " LEFT JOIN country c ON c.code = p.country LEFT JOIN admin a ON a.id = p.region"
_FOR_PATIENTS = f" AND p.kind != {MINOR}"
_FOR_SITES = f" AND p.kind != {AREA}"
_NAME_SCORE = "p.score * (1 - 0.8 * n.alias)"
"""Exonyms ("Londres") count a fifth of a primary name."""
_SCALE = 100_000
"""Coordinates are stored as integers of 1e-5 degree."""


class Gazetteer:
    """Read-only access to the place index. Cheap to open; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        uri = Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            row = self._db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.Error as exc:
            raise RuntimeError(f"cannot open the gazetteer index {path}: {exc}") from exc
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise RuntimeError(
                f"gazetteer index {path} has schema {row and row[0]}, expected "
                f"{SCHEMA_VERSION}: run scripts/build_gazetteer.py"
            )
        self._trigram_type: str | None = None
        self._names_cache: dict[str, tuple[str, ...]] = {}
        # Registry records repeat a few countries and states thousands of times.
        self._country_cache: dict[str, frozenset[str]] = {}
        self._admin_cache: dict[tuple[str, frozenset[str] | None], frozenset[int]] = {}

    @property
    def build_id(self) -> str:
        """Identifies this build of the index (its 'build' meta entry, else a digest of its
        meta table): positions decided with another build are decided again."""
        rows = self._db.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
        meta = dict(rows)
        if "build" in meta:
            return str(meta["build"])
        import hashlib

        return hashlib.sha256(repr(rows).encode()).hexdigest()[:12]

    @classmethod
    def bundled(cls) -> Gazetteer:
        """The index shipped with trialfinder (opened once per process)."""
        return _bundled()

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ public API

    def resolve(self, query: str) -> Resolution:
        """What the user typed -> a place; raises UnknownPlace with a message to act on."""
        text = _clean(query)
        if not text:
            raise UnknownPlace(_(
                "No place given: type a town (e.g. Lyon), a French postal code (e.g. 69003) "
                "or both"
            ))
        if len(text) > MAX_QUERY:
            # _clean reads at most MAX_QUERY * 4 characters: report the length given.
            length = len(query) if len(text) >= MAX_QUERY * 4 else len(text)
            raise UnknownPlace(_(
                "That is too long for a place name ({length} characters; at most {limit})"
            ).format(length=format_decimal(length, 0), limit=MAX_QUERY))
        shown = _shorten(text)
        text = _CEDEX.sub("", text).strip() or text
        text = _FRENCH_PREFIX.sub("", text).strip() or text
        if _POSTAL.fullmatch(text):
            return self._resolve_postcode(shown, text)
        both = _POSTAL_AND_NAME.match(text)
        if both:
            code = both.group(1) or both.group(4)
            name = (both.group(2) or both.group(3)).strip(" ,")
            return self._resolve_postcode(shown, code, name)

        key = name_key(text)
        if not any(ch.isalnum() for ch in key):
            raise UnknownPlace(_("'{text}' is not a place name").format(text=shown))
        hits = self._exact(key)
        if hits:
            return self._resolution(shown, hits)
        code = self._district(key)
        if code:
            return self._resolve_postcode(shown, code)

        splits = list(self._splits(text))
        excluded: list[tuple[_Filter, list[_Hit]]] = []
        for name, qualifier in splits:
            hits = self._exact(name_key(name))
            kept = [h for h in hits if qualifier.accepts(h)]
            if kept:
                return self._resolution(shown, kept)
            if hits:
                excluded.append((qualifier, hits))

        if excluded:
            qualifier, hits = excluded[0]
            labels = tuple(_dedupe(h.place.label for h in hits[:5]))
            raise UnknownPlace(
                _("No {name} in '{qualifier}'. Did you mean {choices}?").format(
                    name=hits[0].place.name, qualifier=_shorten(qualifier.text),
                    choices=_enumerate(labels, "or")),
                suggestions=labels,
            )
        resolution = self._fuzzy_resolution(shown, key, None)
        if resolution:
            return resolution
        for name, qualifier in splits:
            resolution = self._fuzzy_resolution(shown, name_key(name), qualifier)
            if resolution:
                return resolution
        raise UnknownPlace(_(
            "Unknown place '{text}': not a French commune, a French postal code nor a city "
            "of 15,000+ people"
        ).format(text=shown))

    def locate(
        self,
        city: str,
        country: str | None = None,
        postal_code: str | None = None,
        state: str | None = None,
    ) -> Place | None:
        """Geocode a trial site from registry fields; None when not placed with confidence
        (`match_site` says which fields agree, or why not)."""
        return self.match_site(city, country, state, postal_code).place

    def match_site(
        self,
        city: str | None,
        country: str | None,
        state: str | None = None,
        postal_code: str | None = None,
    ) -> SiteMatch:
        """Where a trial site's address fields put it, only when they agree.

        The city must be in the country, in the state or province when the record gives one
        the index knows (by name, code or alternate name: "FL"/"Florida", "Bayern"/"Bavaria",
        a French region or department), and at the postal code when the record gives one the
        index knows (France, its overseas territories, Monaco and `ZIP_COUNTRIES`). Without a
        state or postal code, a name is placed only if it is one place in the country. A
        postal code whose places do not bear the city's name is placed at its own centroid
        only when the city is no known place of the country (a village the index lacks).
        """
        name = _CEDEX.sub("", _clean(city or "")).strip()
        key = name_key(name)
        if len(key) > MAX_QUERY:
            key = ""
        countries = self._countries(country) if country and country.strip() else frozenset()
        if not countries:
            return SiteMatch(None, reason="country unknown")
        admins = self._admins(state, countries) if state and state.strip() else frozenset()
        state_field: tuple[str, ...] = ("state",) if admins else ()

        postal: list[_Hit] = []
        french = bool(countries & _POSTAL_COUNTRIES)
        if french:
            code = _french_postal_code(postal_code)
            district = self._district(key) if key else None
            if district:  # "Paris 20e", "Lyon 3eme"
                code = code or district
                hits = self._postcode_hits(district)
                key = name_key(hits[0].place.name) if hits else key
            if code:
                postal = [h for h in self._postcode_hits(code) if h.place.country in countries]
        elif len(countries) == 1:
            (country_code,) = countries
            zip_code = postal_key(postal_code, country_code)
            if zip_code:
                postal = self._zip_hits(country_code, zip_code)

        hits = _primary(self._exact(key, sites=True, countries=countries))
        if admins:
            in_state = [h for h in hits if _in_admins(h, admins)]
            if hits and not in_state and not postal:
                return SiteMatch(None, reason="state differs")
            hits = in_state
        if postal:
            return self._match_postal(key, hits, postal, admins, french)
        if not key:
            return SiteMatch(None, reason="not found")
        if not hits and len(key) >= 5:
            near = [h for d, h in self._one_edit(key, sites=True)
                    if d == 1 and h.place.country in countries
                    and (not admins or _in_admins(h, admins))]
            if len({h.place_id for h in near}) == 1:
                hits = near
        if not hits:
            return SiteMatch(None, reason="not found")
        places = _distinct(hits)
        if len(places) > 1:
            return SiteMatch(None, reason="ambiguous")
        return SiteMatch(places[0].place, ("city", *state_field))

    def _match_postal(
        self,
        key: str,
        hits: list[_Hit],
        postal: list[_Hit],
        admins: frozenset[int],
        french: bool,
    ) -> SiteMatch:
        """A site whose postal code the index knows: the code and the city must agree."""
        state_field: tuple[str, ...] = ("state",) if admins else ()
        if key:
            if french:
                named = [p for p in postal if self._has_name(p.place_id, key)]
            else:
                named = [p for p in postal if name_key(p.place.name) == key]
            if named:
                good = [p for p in named if not admins or _in_admins(p, admins)]
                if not good:
                    return SiteMatch(None, reason="state differs")
                return SiteMatch(good[0].place, ("postal code", "city", *state_field))
        if hits:  # the city is a known place: is it where the code is?
            near = sorted(
                (min(_km(h.place, p.place) for p in postal), -h.score, i, h)
                for i, h in enumerate(hits)
                if (french and h.place.department
                    and h.place.department == postal[0].place.department)
                or any(_km(h.place, p.place) <= _ZIP_KM for p in postal)
            )
            if not near:
                return SiteMatch(None, reason="postal code differs")
            good = [h for *_rest, h in near if not admins or _in_admins(h, admins)]
            if not good:
                return SiteMatch(None, reason="state differs")
            return SiteMatch(good[0].place, ("postal code", "city", *state_field))
        # A city the index does not know (a village): the postal code's own position.
        inside = [p for p in postal if not admins or _in_admins(p, admins)]
        if not inside:
            return SiteMatch(None, reason="state differs")
        code = postal[0].place.postal_code or ""
        place = self._centroid(code, inside) if french else _mean(inside)
        return SiteMatch(place, ("postal code", *state_field))

    def contains(self, country: str | None, latitude: float, longitude: float) -> bool | None:
        """Whether a coordinate lies within a degree of a place of the country; None when the
        country is unknown (or has no place). A coarse check, meant to catch a coordinate in
        another country far away, not a border error."""
        codes = self._countries(country) if country and country.strip() else frozenset()
        if not codes or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            return None
        marks = ",".join("?" * len(codes))
        if self._db.execute(
            f"SELECT 1 FROM country_cell WHERE country IN ({marks}) LIMIT 1", sorted(codes)
        ).fetchone() is None:
            return None
        cells = sorted({degree_cell(latitude + dlat, longitude + dlon)
                        for dlat in (-1, 0, 1) for dlon in (-1, 0, 1)})
        row = self._db.execute(
            f"SELECT 1 FROM country_cell WHERE country IN ({marks})"
            f" AND cell IN ({','.join('?' * len(cells))}) LIMIT 1",
            [*sorted(codes), *cells],
        ).fetchone()
        return row is not None

    def country_code(self, country: str | None) -> str | None:
        """The ISO 3166-1 code of a country as a record or a person names it ("France",
        "USA", "Korea, Republic of", "Allemagne"); "FR" for France; None when unknown."""
        codes = self._countries(country) if country and country.strip() else frozenset()
        if not codes:
            return None
        return "FR" if codes == FRENCH_TERRITORIES else min(codes)

    def same_country(self, place: Place, site_country: str | None) -> bool:
        """Whether a site in `site_country` is in the patient's country; France and its
        overseas departments and collectivities count as one."""
        codes = self._countries(site_country) if site_country and site_country.strip() else None
        if not codes:
            return False
        mine = FRENCH_TERRITORIES if place.country in FRENCH_TERRITORIES else {place.country}
        return bool(codes & mine)

    def place_names(self, country: str = "FR") -> Iterable[str]:
        """Display names (with accents) of a country's places; "FR" includes overseas."""
        code = country.upper()
        if code not in self._names_cache:
            codes = sorted(FRENCH_TERRITORIES) if code == "FR" else [code]
            marks = ",".join("?" * len(codes))
            rows = self._db.execute(
                f"SELECT DISTINCT name FROM place WHERE country IN ({marks}) AND kind = {TOWN}"
                " ORDER BY name",
                codes,
            )
            self._names_cache[code] = tuple(r[0] for r in rows)
        return self._names_cache[code]

    def suggest(self, text: str, limit: int = 8) -> list[Suggestion]:
        """Places whose name (or postal code) starts with what was typed so far, most likely
        first: suggestions as a patient types (the web page's search field). Each comes with
        a text that `resolve` takes to that very place (checked: a place no text reaches is
        not suggested). Fewer than 2 characters suggest nothing."""
        key = name_key(_clean(text))[:MAX_QUERY]
        if len(key) < 2 or limit < 1:
            return []
        if key.isdigit():
            if len(key) > 5:
                return []
            rows = self._db.execute(
                f"SELECT pc.code, pc.latitude, pc.longitude, {_PLACE_COLUMNS}, 0, p.score"
                f" FROM postcode pc JOIN place p ON p.id = pc.place{_JOINS}"
                f" WHERE pc.code >= ? AND pc.code < ? AND pc.cedex = 0{_FOR_PATIENTS}"
                " ORDER BY pc.code, p.score DESC, p.id LIMIT ?",
                (key, key + ":", limit * 4),
            ).fetchall()
            places = [
                _replace(_hit(row[3:]).place, postal_code=row[0], latitude=row[1] / _SCALE,
                         longitude=row[2] / _SCALE, precision=Precision.POSTAL_CODE)
                for row in rows
            ]
        else:
            # Primary names, by the homonym ranking of `resolve`; exonyms ("Londres") only
            # when no primary name starts so: an alias match is often surprising.
            rows = self._db.execute(
                f"SELECT {_PLACE_COLUMNS}, min(n.alias) AS a, p.score FROM name n"
                f" JOIN place p ON p.id = n.place{_JOINS}"
                f" WHERE n.key >= ? AND n.key < ?{_FOR_PATIENTS}"
                " GROUP BY p.id ORDER BY a, p.score DESC, p.id LIMIT ?",
                (key, key + "\U0010ffff", limit * 2),
            ).fetchall()
            hits = [_hit(row) for row in rows]
            if hits and not hits[0].alias:
                hits = [hit for hit in hits if not hit.alias]
            places = [hit.place for hit in hits]
        found: dict[str, Suggestion] = {}
        for place in places:
            if len(found) >= limit:
                break
            query = self._query_for(place)
            if query is not None and query not in found:
                found[query] = Suggestion(query, place)
        return list(found.values())

    def _query_for(self, place: Place) -> str | None:
        """The shortest of the usual ways to write `place` that resolves to it."""
        forms = [f"{place.postal_code} {place.name}"] if (
            place.precision is Precision.POSTAL_CODE and place.postal_code) else [place.name]
        if place.department:
            forms += [f"{place.name} ({place.department})",
                      f"{place.name}, {place.department}"]
        elif place.region and place.country == "US":
            forms.append(f"{place.name}, {place.region}")
        else:
            forms.append(f"{place.name}, {place.country_name}")
        for form in forms:
            try:
                if self.resolve(form).place == place:
                    return form
            except UnknownPlace:
                continue
        return None

    # ------------------------------------------------------------------ lookups

    def _exact(
        self, key: str, *, sites: bool = False, countries: frozenset[str] | None = None
    ) -> list[_Hit]:
        """Places of that name: towns and areas for a patient, towns and small towns for a
        trial site; in the given countries only, if any."""
        if not key:
            return []
        kind = _FOR_SITES if sites else _FOR_PATIENTS
        args = [key]
        if countries is not None:
            kind += f" AND p.country IN ({','.join('?' * len(countries))})"
            args += sorted(countries)
        rows = self._db.execute(
            f"SELECT {_PLACE_COLUMNS}, n.alias, {_NAME_SCORE} AS s"
            f" FROM name n JOIN place p ON p.id = n.place{_JOINS}"
            f" WHERE n.key = ?{kind} ORDER BY s DESC, p.id",
            args,
        ).fetchall()
        return [_hit(row) for row in rows]

    def _admins(self, text: str, countries: frozenset[str] | None = None) -> frozenset[int]:
        """The admin areas (states, provinces, regions, French departments) a name or code
        designates, within the given countries."""
        cached = self._admin_cache.get((text, countries))
        if cached is not None:
            return cached
        key = name_key(text)
        if not key:
            return frozenset()
        sql = "SELECT an.admin FROM admin_name an JOIN admin a ON a.id = an.admin WHERE an.key = ?"
        args = [key]
        if countries is not None:
            sql += f" AND a.country IN ({','.join('?' * len(countries))})"
            args += sorted(countries)
        found = frozenset(row[0] for row in self._db.execute(sql, args))
        if len(self._admin_cache) < 10_000:
            self._admin_cache[(text, countries)] = found
        return found

    def _zip_hits(self, country: str, code: str) -> list[_Hit]:
        """The places a foreign postal code names, each at its own position in the code."""
        rows = self._db.execute(
            "SELECT z.name, z.latitude, z.longitude, z.region, a.name, coalesce(c.name, ?)"
            " FROM zipcode z LEFT JOIN admin a ON a.id = z.region"
            " LEFT JOIN country c ON c.code = z.country"
            " WHERE z.country = ? AND z.code = ? ORDER BY z.name",
            (country, country, code),
        ).fetchall()
        return [
            _Hit(0, Place(name=name, country=country, country_name=country_name, region=region,
                          department=None, postal_code=code, latitude=lat / _SCALE,
                          longitude=lon / _SCALE, population=None,
                          precision=Precision.POSTAL_CODE), False, 0.0, region_id)
            for name, lat, lon, region_id, region, country_name in rows
        ]

    def _hits_for_keys(self, keys: Sequence[str], *, sites: bool = False) -> dict[str, list[_Hit]]:
        found: dict[str, list[_Hit]] = {}
        kind = _FOR_SITES if sites else _FOR_PATIENTS
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT n.key, {_PLACE_COLUMNS}, n.alias, {_NAME_SCORE}"
                f" FROM name n JOIN place p ON p.id = n.place{_JOINS}"
                f" WHERE n.key IN ({marks}){kind}",
                chunk,
            )
            for row in rows:
                found.setdefault(row[0], []).append(_hit(row[1:]))
        return found

    def _has_name(self, place_id: int, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM name WHERE key = ? AND place = ?", (key, place_id)
        ).fetchone()
        return row is not None

    def _district(self, key: str) -> str | None:
        row = self._db.execute("SELECT code FROM district WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _postcode_hits(self, code: str) -> list[_Hit]:
        """Communes of a postal code, most likely first, each at its position in that code."""
        rows = self._db.execute(
            f"SELECT {_PLACE_COLUMNS}, 0, p.score, pc.latitude, pc.longitude, pc.cedex"
            f" FROM postcode pc JOIN place p ON p.id = pc.place{_JOINS} WHERE pc.code = ?"
            " ORDER BY pc.cedex, p.score DESC, p.id",
            (code,),
        ).fetchall()
        hits = []
        for row in rows:
            hit = _hit(row[:15])
            precision = Precision.CITY if row[17] else Precision.POSTAL_CODE
            place = _replace(hit.place, postal_code=code, latitude=row[15] / _SCALE,
                             longitude=row[16] / _SCALE, precision=precision)
            hits.append(hit._replace(place=place, alias=False))
        return hits

    def _centroid(self, code: str, hits: list[_Hit]) -> Place:
        regular = [h for h in hits if h.place.precision is Precision.POSTAL_CODE] or hits
        lat = sum(h.place.latitude for h in regular) / len(regular)
        lon = sum(h.place.longitude for h in regular) / len(regular)
        return _replace(hits[0].place, latitude=round(lat, 5), longitude=round(lon, 5))

    def _countries(self, text: str, *, typed: bool = False) -> frozenset[str]:
        """The codes a country name stands for (France: every French territory). ``typed``
        (a person's text, not a record's): also a name as trialfinder itself writes countries
        (CLDR's, in the languages it speaks), so that every example it gives ("Brest,
        Biélorussie") reads back; records keep to the index's names, which decide placing."""
        found = self._country_cache.get(text)
        if found is None:
            key = name_key(text)
            row = self._db.execute(
                "SELECT code FROM country_name WHERE key = ?", (key,)).fetchone()
            found = (frozenset() if row is None
                     else FRENCH_TERRITORIES if row[0] == "FR" else frozenset({row[0]}))
            if len(self._country_cache) < 10_000:
                self._country_cache[text] = found
        if not found and typed and (code := cldr_country_code(text)) is not None:
            return FRENCH_TERRITORIES if code == "FR" else frozenset({code})
        return found

    # ------------------------------------------------------------------ resolve helpers

    def _resolve_postcode(self, shown: str, code: str, name: str | None = None) -> Resolution:
        hits = self._postcode_hits(code)
        if not hits:
            raise UnknownPlace(
                _("Unknown postal code '{code}': not a French postal code").format(code=code))
        if name:
            return self._postcode_and_name(shown, code, name, hits)
        place = self._centroid(code, hits)
        others = tuple(h.place for h in hits[1:6])
        notes = []
        if others:
            notes.append(_("{code} also covers {names}.").format(
                code=code, names=_enumerate([p.name for p in others])))
        return Resolution(shown, place, others, notes=tuple(notes))

    def _postcode_and_name(self, shown: str, code: str, name: str, hits: list[_Hit]) -> Resolution:
        """A postal code and a town: the town within the code, unless they contradict.

        Accepted: any name of a commune of the code (aliases and localities included), an
        arrondissement of it ("Paris 20e"), part of its name ("Saint-Priest" for
        Saint-Priest-en-Jarez) and, when the name is no other place's, a typo of it. A name
        that designates another place ("75020 Lyon") is refused: either half may be the typo,
        and guessing wrong sends the patient hundreds of kilometres away.
        """
        key = name_key(name)

        def taken(hit: _Hit) -> Resolution:
            others = tuple(h.place for h in hits if h is not hit)[:5]
            return Resolution(shown, hit.place, others)

        for hit in hits:
            if self._has_name(hit.place_id, key):
                return taken(hit)
        district = self._district(key)
        if district:
            ids = {h.place_id for h in self._postcode_hits(district)}
            for hit in hits:
                if hit.place_id in ids:
                    return taken(hit)
        for hit in hits:
            if _part_of(key, name_key(hit.place.name)):
                return taken(hit)
        if hits[0].place.country in self._countries(name, typed=True):  # "75020, France"
            return self._resolve_postcode(shown, code)
        elsewhere = self._exact(key)
        for other in elsewhere:  # a locality: Juan-les-Pins (no code of its own), La Défense
            if other.alias or (other.place.country in _POSTAL_COUNTRIES
                               and not other.place.postal_code):
                for hit in hits:
                    if _km(other.place, hit.place) <= _LOCALITY_KM:
                        return taken(hit)
        if not elsewhere:
            limit = 2 if len(key) >= 5 else 1
            close = [(d, h) for h in hits
                     if (d := _distance(key, name_key(h.place.name), limit)) <= limit]
            if close:
                hit = min(close, key=lambda dh: dh[0])[1]
                others = tuple(h.place for h in hits if h is not hit)[:5]
                note = _("'{text}' read as {name}, in {code}.").format(
                    text=_shorten(name), name=hit.place.name, code=code)
                return Resolution(shown, hit.place, others, corrected_from=shown, notes=(note,))
        names = _dedupe(h.place.name for h in hits)
        listed = _enumerate(names[:3] + (["…"] if len(names) > 3 else []), "or")
        raise UnknownPlace(
            _("{code} is {names}, not {text}: give the postal code or the town alone, "
              "or both matching").format(code=code, names=listed, text=_shorten(name)),
            suggestions=(code, _shorten(name)),
        )

    def _splits(self, text: str) -> Iterable[tuple[str, _Filter]]:
        """(name, qualifier) readings: "Valence, Espagne", "Saint-Denis 974", "Valencia ES"."""
        if "," in text:
            name, _comma, qualifier = text.rpartition(",")
            parsed = self._qualifier(qualifier.strip(), allow_region=True)
            if parsed and name.strip():
                yield name.strip(" ,"), parsed
                if parsed.countries is not None:  # "MA": Morocco, or Massachusetts
                    admins = self._admins(qualifier)
                    if admins:
                        yield name.strip(" ,"), _Filter(qualifier.strip(), admins=admins)
        words = text.replace(",", " ").split()
        for n in (1, 2, 3):
            if len(words) > n:
                parsed = self._qualifier(" ".join(words[-n:]), allow_region=False)
                if parsed:
                    yield " ".join(words[:-n]), parsed

    def _qualifier(self, text: str, allow_region: bool) -> _Filter | None:
        key = name_key(text)
        if not key:
            return None
        if _DEPARTMENT.fullmatch(key):
            department = key.upper() if key[0] == "2" and key[-1] in "ab" else key.zfill(2)
            return _Filter(text, department=department)
        countries = self._countries(text, typed=True)
        if countries:
            return _Filter(text, countries=countries)
        return _Filter(text, admins=self._admins(text)) if allow_region else None

    def _resolution(self, shown: str, hits: list[_Hit]) -> Resolution:
        # Aliases keep competing on score (at a fifth of their place's): "Pékin" is Beijing
        # and "Mexico" Mexico City, though small places bear those names; the others are
        # listed as alternatives.
        best = hits[0]
        floor = best.score * _WEAK_ALIAS
        others = [h.place for h in hits[1:] if not h.alias or h.score >= floor]
        notes = []
        if best.alias:
            notes.append(_("'{text}' read as {place}.").format(text=shown,
                                                                 place=best.place.label))
        if others:
            labels = [p.label for p in others[:5]]
            if len(others) > 5:
                labels.append(ngettext("{count} more", "{count} more", len(others) - 5).format(
                    count=len(others) - 5))
            notes.append(
                _("Taken: {place}. Also: {others} — add the department or country to choose "
                  "(e.g. '{example}').").format(place=best.place.label,
                                                others=_enumerate(labels),
                                                example=_hint(others[0]))
            )
        return Resolution(shown, best.place, tuple(others[:5]), notes=tuple(notes))

    def _fuzzy_resolution(
        self, shown: str, key: str, qualifier: _Filter | None
    ) -> Resolution | None:
        if len(key) < 4 or len(key) > _MAX_FUZZY:
            return None
        candidates = self._one_edit(key) or self._trigram_matches(key)
        if qualifier:
            candidates = [(d, h) for d, h in candidates if qualifier.accepts(h)]
        if not candidates:
            return None
        if any(not h.alias for _d, h in candidates):
            candidates = [(d, h) for d, h in candidates if not h.alias]  # names before exonyms
        best_distance = min(d for d, _h in candidates)
        by_place: dict[int, _Hit] = {}
        for d, hit in sorted(candidates, key=lambda dh: (dh[0], -dh[1].score)):
            if d == best_distance and hit.place_id not in by_place:
                by_place[hit.place_id] = hit
        tied = sorted(by_place.values(), key=lambda h: -h.score)
        if len(tied) > 1 and tied[0].score < _CLEAR_WINNER * tied[1].score:
            labels = tuple(_dedupe(h.place.label for h in tied[:5]))
            raise UnknownPlace(
                _("Unknown place '{text}'. Did you mean {choices}?").format(
                    text=shown, choices=_enumerate(labels, "or")),
                suggestions=labels,
            )
        best = tied[0]
        others = tuple(h.place for h in tied[1:6])
        note = _("'{text}' is not a known place; taken as the closest name: {place}.").format(
            text=shown, place=best.place.label)
        return Resolution(shown, best.place, others, corrected_from=shown, notes=(note,))

    # ------------------------------------------------------------------ fuzzy matching

    def _one_edit(self, key: str, *, sites: bool = False) -> list[tuple[int, _Hit]]:
        """Places whose name (or exonym) is one edit (Damerau) away from the key."""
        variants = sorted(_edits1(key) - {key})
        found = self._hits_for_keys(variants, sites=sites)
        return [(1, hit) for hits in found.values() for hit in hits]

    def _trigram_matches(self, key: str) -> list[tuple[int, _Hit]]:
        """Primary names within 2 (3 for long names) edits, via the trigram index."""
        if len(key) < 8:
            return []
        max_distance = 2 if len(key) < 14 else 3
        if self._trigram_type is None:
            row = self._db.execute(
                "SELECT value FROM meta WHERE key = 'trigram_typecode'"
            ).fetchone()
            self._trigram_type = row[0]
        from array import array

        grams = sorted(_trigrams(key))
        marks = ",".join("?" * len(grams))
        counts: Counter[int] = Counter()
        counted = []
        for gram, blob in self._db.execute(
            f"SELECT gram, ids FROM trigram WHERE gram IN ({marks})", grams
        ):
            ids = array(self._trigram_type)
            ids.frombytes(blob)
            counts.update(ids)
            counted.append(gram)
        # q-gram lemma: d edits destroy at most 3d of the query's trigrams (common ones were
        # not counted, so the bound is loose; the exact distance decides below).
        need = max(2, len(grams) - 3 * max_distance - (len(grams) - len(counted)))
        passing = [(i, n) for i, n in counts.items() if n >= need]
        best = [i for i, _n in heapq.nlargest(_CANDIDATES, passing, key=itemgetter(1))]
        if not best:
            return []
        marks = ",".join("?" * len(best))
        keys = [r[0] for r in self._db.execute(
            f"SELECT key FROM vocab WHERE id IN ({marks})", best)]
        close = {}
        for candidate in keys:
            if abs(len(candidate) - len(key)) <= max_distance:
                d = _distance(key, candidate, max_distance)
                if d <= max_distance:
                    close[candidate] = d
        found = self._hits_for_keys(sorted(close))
        return [(close[k], hit) for k, hits in found.items() for hit in hits if not hit.alias]


@lru_cache(maxsize=1)
def _bundled() -> Gazetteer:
    return Gazetteer(data_path(INDEX_FILE))


def _hit(row: Sequence) -> _Hit:
    (place_id, name, country, country_name, region, department, postal_code, lat, lon,
     population, kind, region_id, admin2, alias, score) = row
    place = Place(
        name=name,
        country=country,
        country_name="France" if country in FRENCH_TERRITORIES else country_name,
        region=region,
        department=department,
        postal_code=postal_code,
        latitude=lat / _SCALE,
        longitude=lon / _SCALE,
        population=population,
        precision=Precision.REGION if kind == AREA else Precision.CITY,
    )
    return _Hit(place_id, place, bool(alias), score, region_id, admin2)


def _french_postal_code(text: str | None) -> str | None:
    """A French postal code in a record's field: "69008", "F-69008", "FR 75 020"."""
    if not text:
        return None
    digits = _FRENCH_PREFIX.sub("", text.strip()).replace(" ", "")
    match = _POSTAL.fullmatch(digits)
    return match.group(0) if match else None


def _primary(hits: list[_Hit]) -> list[_Hit]:
    """Places bearing the name as their own, and those bearing it as an alternate name only
    when they outweigh them ("Milano" is Milan; "Hollywood" is not Daphne, Alabama)."""
    best = max((h.score for h in hits if not h.alias), default=0.0)
    return [h for h in hits if not h.alias or h.score >= best]


def _distinct(hits: list[_Hit]) -> list[_Hit]:
    """One hit per town: entries of one name within `_SAME_PLACE_KM` are the same town."""
    kept: list[_Hit] = []
    for hit in sorted(hits, key=lambda h: -h.score):
        if not any(h.place_id == hit.place_id or _km(h.place, hit.place) <= _SAME_PLACE_KM
                   for h in kept):
            kept.append(hit)
    return kept


def _mean(hits: list[_Hit]) -> Place:
    lat = sum(h.place.latitude for h in hits) / len(hits)
    lon = sum(h.place.longitude for h in hits) / len(hits)
    return _replace(hits[0].place, latitude=round(lat, 5), longitude=round(lon, 5))


@lru_cache(maxsize=1024)
def record_country_code(country: str | None) -> str | None:
    """The ISO 3166-1 code of a country as a record names it ("France" -> "FR", "Korea,
    Republic of" -> "KR"), by the bundled index's names; None when unknown."""
    return _bundled().country_code(country)


def same_country(place: Place, site_country: str | None) -> bool:
    """Whether a site in `site_country` is in the patient's country (the bundled index);
    France and its overseas departments and collectivities count as one country."""
    return _bundled().same_country(place, site_country)


def _replace(place: Place, **changes: object) -> Place:
    from dataclasses import replace

    return replace(place, **changes)  # type: ignore[arg-type]


def _clean(text: str) -> str:
    """Drop control and other invisible characters, collapse whitespace."""
    if not isinstance(text, str):
        return ""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text[: MAX_QUERY * 4]
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())


def _part_of(key: str, commune_key: str) -> bool:
    """Whether a name key is part of a commune's name key, or that name plus a district.

    "saint priest" and "priest en jarez" are part of "saint priest en jarez"; "paris 20e" is
    "paris" with an arrondissement. A run of minor words ("saint", "sur") is not enough, and
    a longer name ("sainte foy les lyon" for "lyon") is another place.
    """
    words, name = key.split(), commune_key.split()
    if not words:
        return False
    if len(words) > len(name):
        rest = words[len(name):]
        return words[: len(name)] == name and all(_DISTRICT_SUFFIX.match(w) for w in rest)
    if all(w in _MINOR_WORDS or len(w) < 3 for w in words):
        return False
    n = len(words)
    return any(name[i : i + n] == words for i in range(len(name) - n + 1))


def _km(a: Place, b: Place) -> float:
    """Distance in km, flat-earth approximation (good to a few percent under 100 km)."""
    dx = radians(b.longitude - a.longitude) * cos(radians((a.latitude + b.latitude) / 2))
    return 6371.0 * hypot(dx, radians(b.latitude - a.latitude))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _enumerate(items: Sequence[str], last: str = "and") -> str:
    """"A, B and C" (or "A, B or C"), in the current language."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    head, tail = ", ".join(items[:-1]), items[-1]
    if last == "or":
        return _("{items} or {last}").format(items=head, last=tail)
    return _("{items} and {last}").format(items=head, last=tail)


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _hint(other: Place) -> str:
    if other.department:
        return f"{other.name} {other.department}"
    return f"{other.name}, {other.country_words}"


def _trigrams(key: str) -> set[str]:
    padded = f" {key} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _edits1(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _ALPHABET}
    inserts = {a + c + b for a, b in splits for c in _ALPHABET}
    return {w.strip() for w in deletes | transposes | replaces | inserts if w.strip()}


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment (Damerau-Levenshtein) distance, capped at limit + 1."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        ai = a[i - 1]
        current = [i]
        row_min = i
        for j in range(1, len(b) + 1):
            value = previous[j - 1] + (ai != b[j - 1])
            if previous[j] + 1 < value:
                value = previous[j] + 1
            if current[j - 1] + 1 < value:
                value = current[j - 1] + 1
            if i > 1 and j > 1 and ai == b[j - 2] and a[i - 2] == b[j - 1]:
                transposed = previous2[j - 2] + 1
                if transposed < value:
                    value = transposed
            current.append(value)
            if value < row_min:
                row_min = value
        if row_min > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)
