"""Dropped-accent repair on names that are not in the seed listing."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialfinder.repair import CityRepair, Repair, Vocabulary, repair_city, repair_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Centre Hospitalier R gional d'Orl ans", "Centre Hospitalier Régional d'Orléans"),
        ("H pital Piti -Salp tri re", "Hôpital Pitié-Salpêtrière"),
        ("Universit  de Montr al", "Université de Montréal"),
        ("CHU de Nantes - H tel Dieu", "CHU de Nantes - Hôtel Dieu"),
        ("Clinique Sainte-Th r se", "Clinique Sainte-Thérèse"),
        ("Centre Fran ois Baclesse", "Centre François Baclesse"),
        ("Pr fecture", "Préfecture"),
        ("H pital Lariboisi re", "Hôpital Lariboisière"),
        ("Centre Eug ne Marquis", "Centre Eugène Marquis"),
        ("Centre Georges-Fran ois Leclerc", "Centre Georges-François Leclerc"),
        ("CHU de Saint- tienne", "CHU de Saint-Étienne"),
        ("H pital  douard Herriot", "Hôpital Édouard Herriot"),
        ("ICO Ren  Gauducheau", "ICO René Gauducheau"),
        ("Service de M decine Nucl aire", "Service de Médecine Nucléaire"),
        ("HIA B gin", "HIA Bégin"),
        ("Hpital Tenon", "Hôpital Tenon"),
    ],
)
def test_repairs_names_outside_the_seed(raw: str, expected: str) -> None:
    """Lost letters come back, as a space or dropped, in names the seed never showed."""
    repair = repair_name(raw)
    assert repair.text == expected
    assert repair.raw == raw
    assert repair.changed
    assert repair.unrepaired == ()


@pytest.mark.parametrize(
    "name",
    [
        "Le Mans",
        "Centre Hospitalier du Mans",
        "Hospices Civils de Lyon",
        "Centre Oscar Lambret",
        "Institut Godinot",
        "Gustave Roussy",
        "Institut Paoli-Calmettes",
        "Centre Hospitalier Universitaire La Timone",
        "Massachusetts General Hospital",
        "Mass General Cancer Center",
        "Dana-Farber Cancer Institute",
        "Memorial Sloan Kettering Cancer Center",
        "Institut J Paoli",
        "de but",
        "de  Lyon",
        "Hôpital Européen Georges Pompidou",
        "Institut de Cancérologie de l'Ouest",
        "Saint-priest-en-jarez",
        "",
    ],
)
def test_leaves_sound_names_alone(name: str) -> None:
    """Correct French, English and proper names, and two real words, are not 'repaired'."""
    repair = repair_name(name)
    assert repair == Repair(text=name, raw=name, changed=False, unrepaired=())


def test_keeps_the_case_pattern() -> None:
    """All-capitals words get capital accents; lower-case words stay lower case."""
    assert repair_name("CENTRE L ON B RARD").text == "CENTRE LÉON BÉRARD"
    assert repair_name("Institut de canc rologie LUCIEN").text == "Institut de cancérologie LUCIEN"
    assert repair_name("h pital").text == "hôpital"


def test_reports_damage_it_cannot_repair() -> None:
    """A lone letter glued to a non-word, or a non-word before a dangling hyphen, is reported."""
    repair = repair_name("Centre X qzt")
    assert repair.text == "Centre X qzt"
    assert not repair.changed
    assert repair.unrepaired == ("X", "qzt")
    assert repair_name("Clinique Zorglub -Nord").unrepaired == ("Zorglub",)
    assert repair_name("Centre Debr Fabr").unrepaired == ("Fabr",)


def test_a_vocabulary_can_be_given() -> None:
    """Tests and callers may pass their own word list, with frequencies deciding ties."""
    vocab = Vocabulary.from_words({"léon": 4.0, "lèon": 2.0, "le": 7.0, "on": 7.0})
    assert repair_name("Centre L on", vocab).text == "Centre Léon"
    assert "Léon" in vocab
    assert vocab.zipf("LÉON") == 4.0
    assert vocab.zipf("leon") is None


def test_bundled_vocabulary_is_small_and_fast() -> None:
    """The bundled list loads lazily, once, well under 30 ms, and knows the hospital names."""
    from trialfinder import repair

    repair._bundled.cache_clear()
    start = time.perf_counter()
    vocab = Vocabulary.bundled()
    elapsed = time.perf_counter() - start
    assert elapsed < 0.1  # 15-20 ms here; generous for slow CI machines
    assert Vocabulary.bundled() is vocab
    assert 50_000 < len(vocab) < 200_000
    for word in ("hôpital", "bergonié", "bérard", "besançon", "salpêtrière", "orléans"):
        assert word in vocab


FRENCH_WORDS = [
    "Hôpital", "Centre", "Régional", "Université", "Besançon", "Bergonié", "Cancérologie",
    "Institut", "de", "la", "Lutte", "contre", "le", "Cancer", "Saint-Étienne", "Léon",
    "Bérard", "Paris", "Lyon", "Clinique", "Pitié-Salpêtrière", "Européen", "Georges",
]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_never_raises(raw: str) -> None:
    """Any text at all gives a Repair, whatever it holds."""
    repair = repair_name(raw)
    assert repair.raw == raw
    assert repair.changed == (repair.text != raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRENCH_WORDS), min_size=1, max_size=6))
def test_correct_french_names_are_unchanged(words: list[str]) -> None:
    """A name made of correct French words, single-spaced, comes back as it was."""
    name = " ".join(words)
    repair = repair_name(name)
    assert repair.text == name
    assert repair.unrepaired == ()


@pytest.mark.parametrize("text", ["alert(1)", "<img src=x onerror=alert(1)>", "x=Bergoni"])
def test_code_and_markup_get_no_dropped_letter_guess(text):
    """Words glued to code-like punctuation are not 'repaired' ("alert(1)" stays)."""
    assert repair_name(text).text == text


# --- cities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("N mes", "France", "Nîmes"),
        ("Bziers", "France", "Béziers"),
        ("Cr teil", "France", "Créteil"),
        ("Besan on", "France", "Besançon"),
        ("Saint- tienne", "France", "Saint-Étienne"),
        ("Montb liard", "France", "Montbéliard"),
        ("Ch teauroux", "France", "Châteauroux"),
        ("Vitry-le-Fran ois", "France", "Vitry-le-François"),
        ("Ch lons-en-Champagne", "France", "Châlons-en-Champagne"),
        ("Saint-Andr", "France", "Saint-André"),
        ("N?mes", "France", "Nîmes"),
        ("N\ufffdmes", "France", "Nîmes"),
        ("Pointe- -Pitre", "Guadeloupe", "Pointe-à-Pitre"),
        ("Pointe- -Pitre", "France", "Pointe-à-Pitre"),
        ("Z rich", "Switzerland", "Zürich"),
        ("Li ge", "Belgium", "Liège"),
        ("Alcal  de Henares", "Spain", "Alcalá de Henares"),
        ("A Coru a", "Spain", "A Coruña"),
        ("CR TEIL", "France", "CRÉTEIL"),
        ("cr teil", "france", "créteil"),
    ],
)
def test_repairs_cities_against_the_gazetteer(raw: str, country: str, expected: str) -> None:
    """A city that lost letters (as a space, a '?', U+FFFD or nothing) gets them back from the
    country's place names, in the case it was written in."""
    repair = repair_city(raw, country)
    assert (repair.text, repair.raw, repair.changed, repair.candidates) == (
        expected, raw, True, ()
    )


@pytest.mark.parametrize(
    ("city", "country"),
    [
        ("Lyon", "France"),
        ("Besançon", "France"),
        ("Nimes", "France"),  # unaccented but known: not damaged
        ("Le Mans", "France"),
        ("Saint-priest-en-jarez", "France"),
        ("Vandoeuvre-les-Nancy", "France"),
        ("Xyzzyville", "France"),  # unknown town
        ("N mes", "Atlantis"),  # unknown country
        ("N mes", ""),
        ("M nchen", "Germany"),  # the gazetteer knows it as Munich only
        ("Ly", "France"),  # too short to tell
        ("Boston", "United States"),
        ("", "France"),
    ],
)
def test_leaves_cities_alone_when_sound_or_unknown(city: str, country: str) -> None:
    """Known names, unknown towns and countries, and scraps are left exactly as given."""
    assert repair_city(city, country) == CityRepair(text=city, raw=city, changed=False)


def test_ambiguous_cities_name_their_candidates_and_postal_codes_decide() -> None:
    """'Boc' may be Bocé (49150) or Boëcé (61560): no pick, unless a postal code says which."""
    repair = repair_city("Boc", "France")
    assert (repair.text, repair.changed, repair.candidates) == ("Boc", False, ("Bocé", "Boëcé"))
    assert repair_city("Boc", "France", postal_code="61560").text == "Boëcé"
    assert repair_city("Boc", "France", postal_code="49150").text == "Bocé"


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["France", "Germany", "Spain", "", "Nowhere", "FR"]),
)
def test_city_repair_never_raises_and_only_restores_letters(city: str, country: str) -> None:
    """Any text gives a CityRepair; a repair only adds letters the text had lost."""
    repair = repair_city(city, country)
    assert repair.raw == city
    if repair.changed:
        plain = "".join(c for c in city.lower() if c.isascii() and c.isalnum())
        assert "".join(c for c in repair.text.lower() if c.isascii() and c.isalnum()) == plain
        assert len(repair.text) >= len(city)
