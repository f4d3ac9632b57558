"""The bundled gazetteer: what a patient types, and what registries write, become places."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialfinder.errors import UnknownPlace
from trialfinder.gazetteer import Gazetteer, Place, Resolution, department_of, name_key
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
        ("Saint-Denis", "France", None, "Saint-Denis", "93"),
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
    """Foreign sites are located by city and country name or code."""
    valencia = gaz.locate("Valencia", "Spain")
    boston = gaz.locate("Boston", "US", "02114")
    assert valencia is not None and valencia.country == "ES"
    assert boston is not None and (boston.region, boston.precision) == ("Massachusetts",
                                                                         Precision.CITY)


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
