"""The bundled gazetteer: what a patient types, and what registries write, become places."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialfinder.errors import UnknownPlace
from trialfinder.gazetteer import (
    FRENCH_TERRITORIES,
    TOWN,
    UNPLACED_REASONS,
    Gazetteer,
    Place,
    Resolution,
    department_of,
    name_key,
    postal_key,
    same_country,
)
from trialfinder.models import Precision


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return Gazetteer.bundled()


def resolve(gaz: Gazetteer, query: str) -> Resolution:
    return gaz.resolve(query)


# ---------------------------------------------------------------- keys and departments


def test_name_key_spells_out_saint_and_drops_accents():
    """St/Ste and accents, hyphens and case all fold to one key."""
    assert name_key("St-Étienne") == name_key("saint etienne") == "saint etienne"
    assert name_key("  Ste Foy-lès-Lyon ") == "sainte foy les lyon"


@pytest.mark.parametrize(
    ("code", "department"),
    [("42000", "42"), ("01000", "01"), ("97400", "974"), ("20000", "2A"), ("20167", "2A"),
     ("20200", "2B"), ("20600", "2B")],
)
def test_department_of_postal_code(code, department):
    """The department comes from the postal code, 97x on three digits, Corsica as 2A/2B."""
    assert department_of(code) == department


# ---------------------------------------------------------------- tolerant names


@pytest.mark.parametrize(
    ("query", "name", "department"),
    [
        ("Besancon", "Besançon", "25"),
        ("LYON", "Lyon", "69"),
        ("  lyon  ", "Lyon", "69"),
        ("saint priest en jarez", "Saint-Priest-en-Jarez", "42"),
        ("St-Etienne", "Saint-Étienne", "42"),
        ("Ste Foy les Lyon", "Sainte-Foy-lès-Lyon", "69"),
        ("montpellier", "Montpellier", "34"),
    ],
)
def test_names_tolerate_accents_case_hyphens_and_abbreviations(gaz, query, name, department):
    """Accents, case, hyphens/spaces, St/Ste and surrounding spaces do not matter."""
    place = resolve(gaz, query).place
    assert (place.name, place.department, place.precision) == (name, department, Precision.CITY)


def test_label_shows_department():
    """A French commune is labelled with its department number."""
    place = Gazetteer.bundled().resolve("Montpellier").place
    assert place.label == "Montpellier (34)"
    assert place.country_name == "France"


def test_paris_resolves_to_the_city_centre_not_an_arrondissement(gaz):
    """'Paris' is Paris centre (GeoNames' city point), at city precision."""
    place = resolve(gaz, "Paris").place
    assert place.label == "Paris (75)"
    assert place.latitude == pytest.approx(48.8534, abs=1e-3)
    assert place.longitude == pytest.approx(2.3488, abs=1e-3)


def test_arrondissement_name_resolves_to_its_postal_code(gaz):
    """'Paris 05' and 'Marseille 5e' are arrondissements: their postal code's centroid."""
    paris = resolve(gaz, "Paris 05").place
    assert (paris.name, paris.postal_code, paris.precision) == ("Paris", "75005",
                                                                Precision.POSTAL_CODE)
    assert resolve(gaz, "Marseille 5e").place.postal_code == "13005"


# ---------------------------------------------------------------- postal codes


@pytest.mark.parametrize(
    ("code", "name", "department", "country"),
    [
        ("42000", "Saint-Étienne", "42", "FR"),
        ("13005", "Marseille", "13", "FR"),
        ("97400", "Saint-Denis", "974", "RE"),
        ("20000", "Ajaccio", "2A", "FR"),
        ("75005", "Paris", "75", "FR"),
    ],
)
def test_postal_codes(gaz, code, name, department, country):
    """A five-digit French postal code gives its main commune at the code's centroid."""
    place = resolve(gaz, code).place
    assert (place.name, place.department, place.country) == (name, department, country)
    assert place.postal_code == code
    assert place.precision is Precision.POSTAL_CODE


def test_postal_code_label_includes_the_code(gaz):
    """A postal-code place is labelled with its department and code."""
    assert resolve(gaz, "42000").place.label == "Saint-Étienne (42), 42000"


def test_marseille_postal_code_is_the_arrondissement_not_the_centre(gaz):
    """13005 is placed at its own centroid, not at Marseille's centre."""
    by_code = resolve(gaz, "13005").place
    centre = resolve(gaz, "Marseille").place
    assert (by_code.latitude, by_code.longitude) != (centre.latitude, centre.longitude)


@pytest.mark.parametrize("query", ["42270 Saint-Priest-en-Jarez", "Saint-Priest-en-Jarez 42270",
                                   "42270, st priest en jarez"])
def test_postal_code_and_name(gaz, query):
    """'postal code + name', in either order, gives that commune within that code."""
    place = resolve(gaz, query).place
    assert (place.name, place.postal_code, place.precision) == (
        "Saint-Priest-en-Jarez", "42270", Precision.POSTAL_CODE)


@pytest.mark.parametrize(
    ("query", "name", "code"),
    [
        ("42270 St Priest en Jarez", "Saint-Priest-en-Jarez", "42270"),
        ("42270 Saint-Priest", "Saint-Priest-en-Jarez", "42270"),  # part of the name
        ("75020 Paris 20e", "Paris", "75020"),  # arrondissement forms
        ("Paris 20e 75020", "Paris", "75020"),
        ("75020 Paris 20", "Paris", "75020"),
        ("69003 Lyon Cedex 03", "Lyon", "69003"),
        ("13090 AIX", "Aix-en-Provence", "13090"),
        ("75020 Paname", "Paris", "75020"),  # an alias of the commune
        ("06160 Juan-les-Pins", "Antibes", "06160"),  # a locality within the commune
        ("75020, France", "Paris", "75020"),
    ],
)
def test_postal_code_with_a_variant_of_its_town(gaz, query, name, code):
    """Accents, St, part of the name, arrondissements, CEDEX, aliases, localities agree."""
    place = resolve(gaz, query).place
    assert (place.name, place.postal_code) == (name, code)


def test_postal_code_with_a_typo_in_its_town(gaz):
    """A typo of the code's commune, that is no other place's name, is corrected."""
    resolution = resolve(gaz, "42270 Saint-Priest-en-Jarz")
    assert resolution.place.name == "Saint-Priest-en-Jarez"
    assert resolution.corrected_from == "42270 Saint-Priest-en-Jarz"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("75020 Lyon", "75020 is Paris, not Lyon"),
        ("69000 Paris", "69000 is Lyon, not Paris"),
        ("Lyon 75020", "75020 is Paris, not Lyon"),
        ("42270 Saint-Étienne", "42270 is Saint-Priest-en-Jarez, not Saint-Étienne"),
        ("69003 Sainte-Foy-lès-Lyon", "69003 is Lyon, not Sainte-Foy-lès-Lyon"),
        ("01000 Lyon", "01000 is Bourg-en-Bresse or Saint-Denis-lès-Bourg, not Lyon"),
        ("75020 Londres", "75020 is Paris, not Londres"),
    ],
)
def test_postal_code_contradicting_the_town_is_refused(gaz, query, message):
    """A code and a town that designate different places: refused, as either may be the
    typo (using the code silently put Lyon patients in Paris)."""
    with pytest.raises(UnknownPlace) as info:
        resolve(gaz, query)
    assert str(info.value) == (
        f"{message}: give the postal code or the town alone, or both matching")


def test_unknown_postal_code(gaz):
    """A five-digit number that is no French postal code is an UnknownPlace."""
    with pytest.raises(UnknownPlace, match="postal code '99999'"):
        resolve(gaz, "99999")


# ---------------------------------------------------------------- typos


def test_typo_is_corrected_when_unambiguous(gaz):
    """'Montpelier' becomes Montpellier, and the resolution says it was corrected."""
    resolution = resolve(gaz, "Montpelier")
    assert resolution.place.label == "Montpellier (34)"
    assert resolution.corrected_from == "Montpelier"
    assert any("Montpellier (34)" in note for note in resolution.notes)


@pytest.mark.parametrize(
    ("query", "label"),
    [("Bordaux", "Bordeaux (33)"), ("Lyonn", "Lyon (69)"), ("Marseile", "Marseille (13)"),
     ("Clermond Ferand", "Clermont-Ferrand (63)"), ("Strassbourgg", "Strasbourg (67)")],
)
def test_more_typos(gaz, query, label):
    """One- and two-letter typos of towns are corrected to the likely town."""
    resolution = resolve(gaz, query)
    assert resolution.place.label == label
    assert resolution.corrected_from == query


def test_exact_names_are_not_marked_corrected(gaz):
    """An exact name carries no correction."""
    assert resolve(gaz, "Bordeaux").corrected_from is None


# ---------------------------------------------------------------- ambiguity


def test_saint_denis_prefers_93_and_lists_974(gaz):
    """'Saint-Denis' is the one in 93; La Réunion's is among the alternatives and notes."""
    resolution = resolve(gaz, "Saint-Denis")
    assert resolution.place.label == "Saint-Denis (93)"
    assert "Saint-Denis (974)" in [p.label for p in resolution.alternatives]
    assert len(resolution.alternatives) <= 5
    assert any(n.startswith("Taken: Saint-Denis (93). Also: Saint-Denis (974)")
               for n in resolution.notes)


@pytest.mark.parametrize(("query", "department"), [("Saint-Denis 974", "974"),
                                                   ("Saint-Denis 93", "93"),
                                                   ("Saint-Denis, La Réunion", "974")])
def test_department_or_region_disambiguates(gaz, query, department):
    """A department number (or the region) after the name picks the place."""
    assert resolve(gaz, query).place.department == department


def test_qualifier_that_matches_nothing_lists_the_choices(gaz):
    """'Saint-Denis 45' has no answer; the message lists the Saint-Denis there are."""
    with pytest.raises(UnknownPlace, match=r"No Saint-Denis in '45'.*Saint-Denis \(93\)") as info:
        resolve(gaz, "Saint-Denis 45")
    assert "Saint-Denis (974)" in info.value.suggestions


@pytest.mark.parametrize(("query", "taken"), [("Pékin", "Beijing"), ("Mexico", "Mexico City")])
def test_french_exonyms_of_big_cities_beat_small_namesakes(gaz, query, taken):
    """An alias keeps competing on score: 'Pékin' is Beijing, not Pekin, Illinois."""
    assert resolve(gaz, query).place.name == taken


def test_a_shared_commune_name_lists_its_namesakes(gaz):
    """'Villeneuve' names several communes: one is taken and the exact namesakes are offered."""
    resolution = resolve(gaz, "Villeneuve")
    names = [resolution.place.name] + [p.name for p in resolution.alternatives]
    assert "Villeneuve" in names
    assert resolve(gaz, "Villeneuve 94").place.name == "Villeneuve-Saint-Georges"


@pytest.mark.parametrize(("query", "not_listed"), [("Milan", "Syracuse"),
                                                   ("Berlin", "North Canton")])
def test_weak_alias_alternatives_are_dropped(gaz, query, not_listed):
    """A place that has the name only as an alias, and is tiny next to the one taken, is
    not offered: Syracuse, NY is not an alternative to Milan."""
    resolution = resolve(gaz, query)
    assert not_listed not in " ".join(p.label for p in resolution.alternatives)
    assert not any(not_listed in note for note in resolution.notes)


def test_valence_is_french_first(gaz):
    """'Valence' is Valence (26); Spain's Valencia is an alternative."""
    resolution = resolve(gaz, "Valence")
    assert resolution.place.label == "Valence (26)"
    assert "Valencia, Spain" in [p.label for p in resolution.alternatives]


@pytest.mark.parametrize("query", ["Valence, Spain", "Valence, Espagne", "Valencia ES",
                                   "valence espagne", "Valencia"])
def test_country_disambiguates(gaz, query):
    """A country in English or French, or its ISO code, after the name picks the place."""
    place = resolve(gaz, query).place
    assert place.country == "ES"
    assert place.name in ("Valencia", "València")
    assert place.label == f"{place.name}, Spain"
    assert place.department is None


def test_paris_texas(gaz):
    """'Paris, Texas' is the American one, labelled with its state."""
    place = resolve(gaz, "Paris, Texas").place
    assert (place.country, place.region) == ("US", "Texas")
    assert place.label == "Paris, Texas, United States"


# ---------------------------------------------------------------- the world, in French


@pytest.mark.parametrize(
    ("query", "name", "country"),
    [("Londres", "London", "GB"), ("Genève", "Geneva", "CH"), ("Geneve", "Geneva", "CH"),
     ("Munich", "Munich", "DE"), ("Bâle", "Basel", "CH")],
)
def test_foreign_cities_by_their_french_names(gaz, query, name, country):
    """French names of foreign cities resolve to the city, and say how they were read."""
    resolution = resolve(gaz, query)
    assert (resolution.place.name, resolution.place.country) == (name, country)
    assert resolution.corrected_from is None


# ---------------------------------------------------------------- unknown and hostile


def test_atlantis_is_a_real_town_in_south_africa(gaz):
    """GeoNames knows Atlantis, Western Cape (82,736 people): it is not an unknown place."""
    assert resolve(gaz, "Atlantis").place.country == "ZA"


@pytest.mark.parametrize("query", ["Zzyzxville", "Qwxqwxqwx", "Atlantide-sur-Nuages"])
def test_unknown_place(gaz, query):
    """A name that is nowhere near any place is an UnknownPlace with a one-line message."""
    with pytest.raises(UnknownPlace, match=r"^Unknown place") as info:
        resolve(gaz, query)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_empty_input(gaz, query):
    """Empty or blank input is an UnknownPlace saying what to type."""
    with pytest.raises(UnknownPlace, match="No place given"):
        resolve(gaz, query)


@pytest.mark.parametrize(
    "query",
    ["x" * 10_000, "Lyon\x00\x1b[31m", "'; DROP TABLE place; --", '" OR 1=1 --', "%_%",
     "\u202eLyon", "!!!", "42", "2A", "Paris, ", ", Paris", "75005 75005", "😀"],
)
def test_hostile_input_does_not_crash(gaz, query):
    """Long strings, control characters and SQL-ish quotes resolve or raise UnknownPlace."""
    try:
        resolution = resolve(gaz, query)
    except UnknownPlace as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(resolution.place, Place)


@pytest.mark.parametrize(("length", "shown"), [(201, "201"), (8_000, "8,000"),
                                               (100_000, "100,000")])
def test_too_long_input_reports_its_length(gaz, length, shown):
    """The message gives the length typed, not that of the part read (800 characters)."""
    with pytest.raises(UnknownPlace, match=rf"^That is too long .*\({shown} characters; at most"):
        resolve(gaz, "x" * length)


def test_control_characters_are_ignored(gaz):
    """Invisible characters around a name are dropped before lookup."""
    assert resolve(gaz, "\x00Lyon\x1b").place.label == "Lyon (69)"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_resolve_raises_nothing_but_unknown_place(query):
    """On arbitrary text, resolve() answers or raises UnknownPlace, never anything else."""
    with contextlib.suppress(UnknownPlace):
        Gazetteer.bundled().resolve(query)


# ---------------------------------------------------------------- locate (registry fields)


@pytest.mark.parametrize(
    ("city", "country", "postal_code", "name", "department"),
    [
        ("Saint-priest-en-jarez", "France", "42270", "Saint-Priest-en-Jarez", "42"),
        ("Vandoeuvre-les-Nancy", "France", None, "Vandœuvre-lès-Nancy", "54"),
        ("Villejuif", "France", "94805", "Villejuif", "94"),
        ("Paris Cedex 05", "France", None, "Paris", "75"),
        ("Lyon Cedex 08", "France", None, "Lyon", "69"),
        ("Bordeaux cedex", "France", "33076", "Bordeaux", "33"),
        ("Pierre Benite", "France", "69495", "Pierre-Bénite", "69"),
        ("Saint-Denis", "France", "97400", "Saint-Denis", "974"),
        ("Saint-Denis", "France", "93200", "Saint-Denis", "93"),
        ("Saint-Denis", "Reunion", None, "Saint-Denis", "974"),
    ],
)
def test_locate_registry_names(gaz, city, country, postal_code, name, department):
    """Registry spellings (lower case, no accents, CEDEX) locate the right commune."""
    place = gaz.locate(city, country, postal_code)
    assert place is not None
    assert (place.name, place.department) == (name, department)


def test_locate_prefers_the_postal_code_centroid(gaz):
    """With a consistent postal code the site is placed at that code, at postal precision."""
    place = gaz.locate("Paris", "France", "75013")
    assert place is not None
    assert (place.postal_code, place.precision) == ("75013", Precision.POSTAL_CODE)
    assert place.latitude != pytest.approx(resolve(gaz, "Paris").place.latitude, abs=1e-4)


def test_locate_abroad(gaz):
    """Foreign sites are located by city and country name or code, at the postal code's
    position where the index knows the country's codes."""
    valencia = gaz.locate("Valencia", "Spain")
    boston = gaz.locate("Boston", "US", "02114")
    assert valencia is not None and valencia.country == "ES"
    assert boston is not None and (boston.region, boston.precision) == ("Massachusetts",
                                                                         Precision.POSTAL_CODE)


@pytest.mark.parametrize(
    ("city", "country"),
    [("Nowhere", "France"), ("Montpelier", "France"), ("Lyon", "Atlantis"), ("", "France"),
     ("Paris", "Spain")],
)
def test_locate_does_not_guess(gaz, city, country):
    """Unknown towns, ambiguous typos and unknown countries give None, not a wrong town."""
    assert gaz.locate(city, country) is None


# ---------------------------------------------------------------- vocabulary


def test_place_names_are_accented_display_names(gaz):
    """place_names('FR') lists communes with their accents, overseas included."""
    names = set(gaz.place_names("FR"))
    assert {"Saint-Étienne", "Besançon", "Vandœuvre-lès-Nancy", "Saint-Denis"} <= names
    assert "Saint-Etienne" not in names
    assert "London" in set(gaz.place_names("GB"))


# ---------------------------------------------------------------- places a French patient types


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("Bretagne", "Bretagne"),
        ("Brittany", "Bretagne"),
        ("Normandie", "Normandie"),
        ("Île-de-France", "Île-de-France"),
        ("ile de france", "Île-de-France"),
        ("Grand Est", "Grand Est"),
        ("Hauts-de-France", "Hauts-de-France"),
        ("Occitanie", "Occitanie"),
        ("PACA", "Provence-Alpes-Côte d'Azur"),
        ("Provence-Alpes-Côte d'Azur", "Provence-Alpes-Côte d'Azur"),
        ("Corse", "Corse"),
    ],
)
def test_regions_resolve_to_themselves(gaz, query, name):
    """A French region (or its usual short or English name) is the region, at region
    precision, in metropolitan France."""
    place = resolve(gaz, query).place
    assert (place.name, place.country, place.precision) == (name, "FR", Precision.REGION)
    assert place.label == f"{name}, France"
    assert 41.3 < place.latitude < 51.1 and -5.2 < place.longitude < 9.6


@pytest.mark.parametrize(
    ("query", "name", "country", "department"),
    [
        ("La Réunion", "La Réunion", "RE", "974"),
        ("Réunion", "La Réunion", "RE", "974"),
        ("reunion", "La Réunion", "RE", "974"),
        ("974", "La Réunion", "RE", "974"),
        ("Guadeloupe", "Guadeloupe", "GP", "971"),
        ("Martinique", "Martinique", "MQ", "972"),
        ("Guyane", "Guyane", "GF", "973"),
        ("Mayotte", "Mayotte", "YT", "976"),
        ("Saint-Barthélemy", "Saint-Barthélemy", "BL", "977"),
        ("Saint-Martin", "Saint-Martin", "MF", "978"),
        ("Saint-Pierre-et-Miquelon", "Saint-Pierre-et-Miquelon", "PM", "975"),
        ("Nouvelle-Calédonie", "Nouvelle-Calédonie", "NC", "988"),
        ("Polynésie française", "Polynésie française", "PF", "987"),
        ("Tahiti", "Polynésie française", "PF", "987"),
        ("Wallis-et-Futuna", "Wallis-et-Futuna", "WF", "986"),
    ],
)
def test_overseas_territories_resolve_to_themselves(gaz, query, name, country, department):
    """An overseas department or collectivity is itself (at its main town), in France, not a
    namesake village of metropolitan France."""
    place = resolve(gaz, query).place
    assert (place.name, place.country, place.department, place.precision) == (
        name, country, department, Precision.REGION)
    assert place.country_name == "France"
    assert place.label == f"{name} ({department})"
    assert not (41.3 < place.latitude < 51.1 and -5.2 < place.longitude < 9.6)


def test_la_reunion_lists_the_village_of_lot_et_garonne_as_an_alternative(gaz):
    """The village named La Réunion (47) is offered, not taken."""
    resolution = resolve(gaz, "La Réunion")
    assert resolution.place.country == "RE"
    assert [p.label for p in resolution.alternatives] == ["La Réunion (47)"]


@pytest.mark.parametrize(
    ("query", "name", "department"),
    [("2A", "Corse-du-Sud", "2A"), ("2b", "Haute-Corse", "2B"), ("Finistère", "Finistère", "29"),
     ("finistere", "Finistère", "29"), ("Val-de-Marne", "Val-de-Marne", "94"),
     ("29", "Finistère", "29"), ("Corse-du-Sud", "Corse-du-Sud", "2A"), ("Savoie", "Savoie", "73")],
)
def test_departments_by_name_or_number(gaz, query, name, department):
    """A department's name or number alone is the department, labelled with its number."""
    place = resolve(gaz, query).place
    assert (place.name, place.department, place.precision) == (name, department,
                                                              Precision.REGION)
    assert place.label == f"{name} ({department})"


def test_corsican_departments_are_on_corsica(gaz):
    """2A and 2B are placed on the island, 2A south of 2B."""
    south, north = resolve(gaz, "2A").place, resolve(gaz, "2B").place
    for place in (south, north):
        assert 41.3 < place.latitude < 43.1 and 8.5 < place.longitude < 9.6
    assert south.latitude < north.latitude


def test_a_town_bigger_than_a_department_name_comes_first(gaz):
    """'Vienne' is the town of 29,000 people in Isère; the department (86) is offered."""
    resolution = resolve(gaz, "Vienne")
    assert resolution.place.label == "Vienne (38)"
    assert "Vienne (86)" in [p.label for p in resolution.alternatives]


def test_a_department_beats_a_namesake_village(gaz):
    """'Landes' is the department, not the village of Charente-Maritime."""
    resolution = resolve(gaz, "Landes")
    assert (resolution.place.label, resolution.place.precision) == ("Landes (40)",
                                                                    Precision.REGION)
    assert "Landes (17)" in [p.label for p in resolution.alternatives]


def test_paris_is_the_commune_not_its_department(gaz):
    """'Paris' is the city centre, and the department is not listed as another Paris."""
    resolution = resolve(gaz, "Paris")
    assert resolution.place.precision is Precision.CITY
    assert "Paris (75)" not in [p.label for p in resolution.alternatives]


@pytest.mark.parametrize(
    ("code", "name", "country"),
    [("97133", "Gustavia", "BL"), ("98000", "Monaco", "MC"), ("98800", "Nouméa", "NC"),
     ("98714", "Papeete", "PF"), ("97400", "Saint-Denis", "RE"), ("97200", "Fort-de-France", "MQ")],
)
def test_overseas_and_monaco_postal_codes(gaz, code, name, country):
    """Overseas postal codes and Monaco's are known places."""
    place = resolve(gaz, code).place
    assert (place.name, place.country, place.postal_code) == (name, country, code)


def test_saint_martin_postal_code_is_in_saint_martin(gaz):
    """97150 is French Saint-Martin (one code for the whole collectivity)."""
    resolution = resolve(gaz, "97150")
    assert resolution.place.country == "MF"
    assert {p.country for p in resolution.alternatives} == {"MF"}


@pytest.mark.parametrize(
    ("query", "code"),
    [("Paris XXe", "75020"), ("Paris XX", "75020"), ("paris xxe", "75020"),
     ("Paris 20e", "75020"), ("Lyon 3e", "69003"), ("Lyon IIIe", "69003"),
     ("Lyon 1er", "69001"), ("Marseille Ier", "13001"), ("F-69008 Lyon", "69008"),
     ("FR-75020", "75020"), ("F 13005 Marseille", "13005"), ("fr-69008", "69008")],
)
def test_arrondissements_and_prefixed_postal_codes(gaz, query, code):
    """Arrondissements in Arabic or Roman numerals, and postal codes with F-/FR- prefixes."""
    place = resolve(gaz, query).place
    assert (place.postal_code, place.precision) == (code, Precision.POSTAL_CODE)


def test_overseas_qualifier_picks_the_town(gaz):
    """'Saint-Denis, La Réunion' and 'Saint-Denis, 974' are the one in La Réunion."""
    assert resolve(gaz, "Saint-Denis, La Réunion").place.country == "RE"
    assert resolve(gaz, "Saint-Denis, Réunion").place.country == "RE"


@pytest.mark.parametrize(
    ("query", "state"),
    [("Paris, TX", "Texas"), ("Paris, Texas", "Texas"), ("Portland, Maine", "Maine"),
     ("Portland, OR", "Oregon"), ("Springfield, Illinois", "Illinois"),
     ("Springfield, MA", "Massachusetts")],
)
def test_state_names_and_codes_qualify_american_towns(gaz, query, state):
    """A US state's name or postal code after a town picks the town of that state."""
    place = resolve(gaz, query).place
    assert (place.country, place.region) == ("US", state)


def test_a_qualifier_in_another_country_than_the_town_finds_nothing(gaz):
    """'Toulouse, Texas' names no place: the message lists the Toulouse there is."""
    with pytest.raises(UnknownPlace, match=r"No Toulouse in 'Texas'.*Toulouse \(31\)"):
        resolve(gaz, "Toulouse, Texas")


def test_small_places_abroad_are_for_sites_only(gaz):
    """A village abroad known only for placing sites does not answer a patient: 'Summit' is
    Summit, New Jersey (22,000 people), not one of the smaller Summits."""
    resolution = resolve(gaz, "Summit")
    assert (resolution.place.name, resolution.place.region) == ("Summit", "New Jersey")
    assert all(p.population and p.population >= 15_000 for p in resolution.alternatives)


# ---------------------------------------------------------------- match_site (registry fields)


@pytest.mark.parametrize(
    ("city", "country", "state", "postal_code", "region", "matched"),
    [
        ("Hollywood", "United States", "Florida", None, "Florida", ("city", "state")),
        ("Hollywood", "United States", "FL", "33021", "Florida",
         ("postal code", "city", "state")),
        ("Hollywood", "United States", "California", None, "California", ("city", "state")),
        ("Maywood", "United States", "Illinois", None, "Illinois", ("city", "state")),
        ("Maywood", "United States", "NJ", None, "New Jersey", ("city", "state")),
        ("Summit", "United States", "New Jersey", None, "New Jersey", ("city", "state")),
        ("Summit", "United States", None, "07901", "New Jersey", ("postal code", "city")),
        ("Springfield", "USA", "IL", None, "Illinois", ("city", "state")),
        ("Springfield", "USA", "Missouri", None, "Missouri", ("city", "state")),
        ("Portland", "United States", "Maine", None, "Maine", ("city", "state")),
        ("Portland", "United States", None, "97239", "Oregon", ("postal code", "city")),
        ("Paris", "United States", "Texas", "75460", "Texas", ("postal code", "city", "state")),
        ("London", "Canada", "Ontario", None, "Ontario", ("city", "state")),
        ("Hamilton", "Canada", "ON", "L8N 3Z5", "Ontario", ("postal code", "city", "state")),
        ("Toronto", "Canada", "Ontario", "M5G 2M9", "Ontario", ("postal code", "city", "state")),
        ("Jena", "Germany", "Thuringia", None, "Thuringia", ("city", "state")),
        ("Jena", "Germany", "Thüringen", "07747", "Thuringia", ("postal code", "city", "state")),
        ("München", "Germany", "Bayern", "80331", "Bavaria", ("postal code", "city", "state")),
        ("Munich", "Germany", "Bavaria", None, "Bavaria", ("city", "state")),
        ("Perth", "Australia", "WA", None, "Western Australia", ("city", "state")),
        ("Newcastle", "Australia", "New South Wales", None, "New South Wales",
         ("city", "state")),
        ("Sydney", "Australia", "NSW", "2000", "New South Wales",
         ("postal code", "city", "state")),
        ("Barcelona", "Spain", "Cataluña", "08035", "Catalonia",
         ("postal code", "city", "state")),
        ("Santiago de Compostela", "Spain", "Galicia", None, "Galicia", ("city", "state")),
        ("Milano", "Italy", "Lombardia", None, "Lombardy", ("city", "state")),
        ("Bellinzona", "Switzerland", "Tessin", None, "Ticino", ("city", "state")),
        ("Lyon", "France", "Rhône", None, "Auvergne-Rhône-Alpes", ("city", "state")),
        ("Lyon", "France", "69", None, "Auvergne-Rhône-Alpes", ("city", "state")),
        ("Lyon", "France", "Auvergne-Rhone-Alpes", None, "Auvergne-Rhône-Alpes",
         ("city", "state")),
        ("Villejuif", "France", "Ile de France", "94805", "Île-de-France",
         ("postal code", "city", "state")),
        ("Villejuif", "France", "Val-de-Marne", None, "Île-de-France", ("city", "state")),
        ("Saint-Denis", "France", None, "93200", "Île-de-France", ("postal code", "city")),
        ("Saint-Denis", "Reunion", None, None, "La Réunion", ("city",)),
        ("Saint-Denis", "France", "La Réunion", None, "La Réunion", ("city", "state")),
        ("Lyon", "France", None, "F-69008", "Auvergne-Rhône-Alpes", ("postal code", "city")),
        ("Paris 20e", "France", None, None, "Île-de-France", ("postal code", "city")),
    ],
)
def test_match_site_where_the_fields_agree(gaz, city, country, state, postal_code, region,
                                           matched):
    """A site is placed where its city, state (name, code or alternate name) and postal code
    agree, and says which fields matched."""
    found = gaz.match_site(city, country, state, postal_code)
    assert found.reason is None
    assert found.place is not None
    assert (found.place.region, found.matched) == (region, matched)
    if "postal code" in matched and found.place.precision is Precision.POSTAL_CODE:
        assert found.place.postal_code


@pytest.mark.parametrize(
    ("city", "country", "state", "postal_code", "reason"),
    [
        ("Summit", "United States", "Wisconsin", None, "state differs"),
        ("Summit", "United States", "WI", None, "state differs"),
        ("Hollywood", "United States", "Wisconsin", None, "state differs"),
        ("Summit", "United States", None, None, "ambiguous"),
        ("Hollywood", "United States", None, None, "ambiguous"),
        ("Maywood", "USA", None, None, "ambiguous"),
        ("Springfield", "United States", None, None, "ambiguous"),
        ("Portland", "United States", None, None, "ambiguous"),
        ("Maywood", "United States", "Illinois", "90270", "state differs"),
        ("Hollywood", "United States", None, "53066", "postal code differs"),
        ("London", "Canada", "British Columbia", None, "state differs"),
        ("Jena", "Germany", "Bavaria", None, "state differs"),
        ("Perth", "Australia", "Queensland", None, "state differs"),
        ("Lyon", "France", "Île-de-France", None, "state differs"),
        ("Lyon", "France", "Finistère", None, "state differs"),
        ("Lyon", "France", "29", None, "state differs"),
        ("Saint-Denis", "France", None, None, "ambiguous"),
        ("Paris", "France", None, "69003", "postal code differs"),
        ("Lyon", "Atlantis", None, None, "country unknown"),
        ("Lyon", "", None, None, "country unknown"),
        ("Nowhere", "France", None, None, "not found"),
        ("", "France", None, None, "not found"),
        ("Zzyzxville", "United States", "California", None, "not found"),
    ],
)
def test_match_site_refuses_what_the_fields_do_not_settle(gaz, city, country, state,
                                                         postal_code, reason):
    """A namesake in another state, a postal code elsewhere, several places of the name and
    no state, an unknown country or town: no place, and a stable reason."""
    found = gaz.match_site(city, country, state, postal_code)
    assert (found.place, found.matched, found.reason) == (None, (), reason)
    assert reason in UNPLACED_REASONS


def test_a_village_the_index_lacks_is_placed_by_its_postal_code(gaz):
    """Summit, Wisconsin is in no source, but its postal code (Oconomowoc's, 53066) is, in
    Wisconsin: the site is placed there, matched on the postal code and the state."""
    found = gaz.match_site("Summit", "United States", "Wisconsin", "53066")
    assert found.place is not None
    assert (found.place.region, found.place.precision, found.matched) == (
        "Wisconsin", Precision.POSTAL_CODE, ("postal code", "state"))


def test_a_postal_code_in_another_state_is_refused(gaz):
    """53066 is in Wisconsin: with state Florida the site is not placed there."""
    assert gaz.match_site("Summit", "United States", "Florida", "53066").reason == (
        "state differs")


@pytest.mark.parametrize(
    ("state", "code"),
    [("Illinois", "IL"), ("Massachusetts", "MA"), ("Missouri", "MO"), ("Ohio", "OH")],
)
def test_state_name_and_code_place_the_same_town(gaz, state, code):
    """Each Springfield is placed in its own state, by the state's name or its code."""
    by_name = gaz.match_site("Springfield", "United States", state)
    by_code = gaz.match_site("Springfield", "United States", code)
    assert by_name.place is not None and by_name.place.region == state
    assert by_code.place == by_name.place


def test_the_four_springfields_are_far_apart(gaz):
    """The state decides between places hundreds of kilometres apart."""
    places = [gaz.match_site("Springfield", "US", s).place for s in ("IL", "MA", "MO", "OH")]
    assert all(p is not None for p in places)
    points = {(round(p.latitude), round(p.longitude)) for p in places if p}
    assert len(points) == 4


def test_locate_is_match_site_place(gaz):
    """locate() gives match_site()'s place, state included."""
    assert gaz.locate("Hollywood", "United States", None, "Florida") == gaz.match_site(
        "Hollywood", "United States", "Florida").place
    assert gaz.locate("Hollywood", "United States") is None


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["Lyon", "Springfield", "Paris"])),
    st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["France", "US", "Germany"])),
    st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["IL", "Bayern", "69"])),
    st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["69003", "62701", "F-75020"])),
)
def test_match_site_answers_any_fields(city, country, state, postal_code):
    """On any text, match_site places the site with matched fields, or gives a known reason;
    it never raises."""
    found = Gazetteer.bundled().match_site(city, country, state, postal_code)
    if found.place is None:
        assert found.reason in UNPLACED_REASONS and found.matched == ()
    else:
        assert found.reason is None
        assert found.matched and set(found.matched) <= {"postal code", "city", "state"}


@pytest.mark.parametrize(
    ("code", "country", "key"),
    [("53066-1234", "US", "53066"), ("02114", "US", "02114"), ("D-80331", "DE", "80331"),
     ("1234 AB", "NL", "1234"), ("K1H 8L6", "CA", "K1H"), ("k1h8l6", "CA", "K1H"),
     ("SW1A 1AA", "GB", "SW1A"), ("SW1A1AA", "GB", "SW1A"), ("M1 1AE", "GB", "M1"),
     ("EC1A", "GB", "EC1A"), ("D02 X285", "IE", "D02"), ("2000", "AU", "2000"),
     ("CH-8091", "CH", "8091"), ("abc", "US", None), ("123", "US", None),
     ("100-0001", "JP", None), ("", "US", None), (None, "US", None)],
)
def test_postal_key_forms(code, country, key):
    """Foreign postal codes are read as the index keeps them (digits, FSA, outward code);
    what is no code of a country the index has is None."""
    assert postal_key(code, country) == key


# ---------------------------------------------------------------- countries


@pytest.mark.parametrize(
    ("query", "site_country", "same"),
    [("Guadeloupe", "France", True), ("97133", "France", True), ("La Réunion", "France", True),
     ("Tahiti", "France", True), ("Lyon", "Guadeloupe", True), ("Lyon", "France", True),
     ("Monaco", "France", False), ("Lyon", "Spain", False), ("Boston", "USA", True),
     ("Boston", "United States", True), ("Lyon", "Atlantis", False), ("Lyon", "", False),
     ("Lyon", None, False)],
)
def test_same_country(gaz, query, site_country, same):
    """France and its overseas departments and collectivities are one country; others are
    their own; an unknown country is no country of the patient's."""
    assert same_country(resolve(gaz, query).place, site_country) is same


@pytest.mark.parametrize("place", ["Guadeloupe", "97133", "Tahiti", "Nouméa", "Mayotte"])
def test_an_overseas_patient_is_answered_with_the_sites_in_france(place):
    """A patient anywhere in overseas France gets the trial's French sites, however far:
    no distance limit applies, as for La Réunion."""
    from trialfinder.queries import nearest

    answer = nearest(place, "NCT02260505", None)
    assert answer.max_km is None
    assert answer.ranked and answer.ranked[0].distance_km is not None
    assert answer.ranked[0].distance_km > 1500


@pytest.mark.parametrize(
    ("country", "code"),
    [("France", "FR"), ("USA", "US"), ("United States", "US"), ("Korea, Republic of", "KR"),
     ("Allemagne", "DE"), ("Reunion", "RE"), ("de", "DE"), ("Atlantis", None), ("", None),
     (None, None)],
)
def test_country_code(gaz, country, code):
    """A country as records and people name it gives its ISO code (France: FR)."""
    assert gaz.country_code(country) == code


@pytest.mark.parametrize(
    ("country", "latitude", "longitude", "inside"),
    [("France", 45.75, 4.85, True), ("France", 40.71, -74.0, False),
     ("United States", 48.85, 2.35, False), ("United States", 40.71, -74.0, True),
     ("Reunion", -20.88, 55.45, True), ("France", -20.88, 55.45, True),
     ("Germany", 35.0, 139.0, False), ("Atlantis", 0.0, 0.0, None)],
)
def test_contains_catches_a_coordinate_on_another_continent(gaz, country, latitude, longitude,
                                                            inside):
    """A coordinate far outside a country's places is not in it; France includes overseas."""
    assert gaz.contains(country, latitude, longitude) is inside


def test_build_id_is_the_index_build_entry(gaz):
    """The index names its build (a digest of its content) in its meta table."""
    assert re.fullmatch(r"[0-9a-f]{12}", gaz.build_id)


# ---------------------------------------------------------------- suggestions as you type


def test_suggestions_most_likely_first_with_a_text_that_resolves(gaz: Gazetteer) -> None:
    """Prefixes of names and postal codes suggest the likeliest places first, each with the
    shortest text that resolves to it; one letter suggests nothing."""
    first = gaz.suggest("besan")[0]
    assert (first.text, first.place.label) == ("Besançon", "Besançon (25)")
    assert [s.text for s in gaz.suggest("saint d")][:2] == ["Saint-Denis", "Saint-Denis (974)"]
    assert [s.text for s in gaz.suggest("9740")] == ["97400 Saint-Denis"]
    assert gaz.suggest("Marseille")[0].place.precision is Precision.CITY  # not Marseille 13e
    assert gaz.suggest("b") == [] and gaz.suggest("zzzz") == [] and gaz.suggest("<>") == []
    assert len(gaz.suggest("sa", limit=3)) == 3


@settings(max_examples=40, deadline=None)
@given(prefix=st.text(alphabet="abcdefghijlmnoprstuvyzéè -'0123456789", min_size=2,
                      max_size=6))
def test_every_suggestion_resolves_back_to_its_place(prefix: str) -> None:
    """For any prefix, each suggested text resolves to the suggested place; digits suggest
    postal codes that start with them."""
    gazetteer = Gazetteer.bundled()
    for text, place in gazetteer.suggest(prefix):
        assert gazetteer.resolve(text).place == place
        if name_key(prefix).isdigit():
            assert (place.postal_code or "").startswith(name_key(prefix))


def test_a_town_with_its_country_named_in_french_is_found_in_every_country(
    gaz: Gazetteer
) -> None:
    """"Munich, Allemagne", "Brest, Biélorussie": every country the gazetteer has a town in,
    named as trialfinder names it in French (CLDR), takes the town there, not a namesake
    elsewhere; a record's country names are not widened so (they decide placing)."""
    from trialfinder.i18n import _territories, language

    towns = gaz._db.execute(
        "SELECT country, name, max(population) FROM place WHERE kind = ? GROUP BY country",
        (TOWN,)).fetchall()
    assert len(towns) > 200
    with language("fr"):
        for code, town, _population in towns:
            if code in FRENCH_TERRITORIES or code not in _territories("fr"):
                continue
            place = gaz.resolve(f"{town}, {_territories('fr')[code]}").place
            assert place.country == code, (town, code, place.label)
            assert place.label.endswith(_territories("fr")[code])
    assert gaz.country_code("Jamaïque") is None  # not a name the index holds: records keep
    assert gaz.resolve("Kingston, Jamaïque").place.country == "JM"  # to its names


def test_every_unplaced_reason_is_said_in_words() -> None:
    """Each code a site's `unplaced_reason` can take has its own phrase in every language."""
    from trialfinder.i18n import LANGUAGES, language
    from trialfinder.words import unplaced_words

    for lang in LANGUAGES:
        with language(lang):
            said = {unplaced_words(code) for code in UNPLACED_REASONS}
            assert len(said) == len(UNPLACED_REASONS)
            assert not any(f"({code})" in phrase for code in UNPLACED_REASONS
                           for phrase in said)
