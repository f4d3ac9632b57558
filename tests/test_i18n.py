"""Languages: selection, the catalogues (current, complete, compiled, shipped), dates and
numbers as each language writes them, and trialfinder in French everywhere a person reads
it: the command line, its errors, JSON prose, the web pages, maps and referral sheets."""

from __future__ import annotations

import dataclasses
import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from typer.testing import CliRunner

from trialfinder.cli import app
from trialfinder.freshness import age_words, as_of_words, date_words
from trialfinder.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    _,
    country_code,
    country_name,
    current_language,
    format_decimal,
    language,
    language_from_environment,
    negotiate,
    ngettext,
    pgettext,
    supported,
)
from trialfinder.mapping import make_map
from trialfinder.referral import build_referral, referral_html
from trialfinder.words import address_words, distance_words


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "en"),
    ({"LANG": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "en_GB.UTF-8", "LC_ALL": "fr_CA.UTF-8"}, "fr"),
    ({"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "de_DE.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8", "LANGUAGE": "de:fr:en"}, "fr"),
    ({"LANG": "C", "LANGUAGE": "fr"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LC_ALL": "", "LANG": "fr_BE"}, "fr"),
])
def test_language_from_environment_reads_it_as_gettext_does(
    environ: dict[str, str], expected: str
) -> None:
    assert language_from_environment(environ) == expected


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"), ("", "en"), ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("en-US,fr;q=0.5", "en"),
    ("de, fr;q=0.3", "fr"), ("fr;q=0, en", "en"), ("*", "en"), ("es, it", "en"),
    ("fr;q=abc, en;q=0.1", "en"),
])
def test_negotiate_accept_language(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_language_is_scoped_and_unknown_codes_are_english() -> None:
    assert current_language() == "en"
    with language("fr_FR.UTF-8") as chosen:
        assert chosen == "fr" and current_language() == "fr"
        with language("xx"):
            assert current_language() == "en"
        assert current_language() == "fr"
    assert current_language() == "en"
    assert supported("FR") == "fr" and supported("pt") is None


def test_english_is_the_source_text() -> None:
    assert _("Nearest recruiting sites") == "Nearest recruiting sites"
    assert ngettext("{n} site", "{n} sites", 1) == "{n} site"
    assert ngettext("{n} site", "{n} sites", 2) == "{n} sites"


def test_numbers_as_each_language_writes_them() -> None:
    assert format_decimal(1234.56) == "1,234.6"
    assert format_decimal(3.8) == "3.8"
    with language("fr"):
        assert format_decimal(3.8) == "3,8"
        assert format_decimal(1234.56).replace("\u202f", " ").replace("\xa0", " ") == "1 234,6"
        assert format_decimal(12.0, 0) == "12"


# -- the catalogues: current, complete, compiled, shipped -------------------------------------

ROOT = Path(__file__).resolve().parents[1]
NBSP = "\u00a0"


def french(text: str) -> str:
    """``text`` with French spacing: a no-break space before : ; ? ! and inside « »."""
    text = re.sub(r" ([:;?!])", NBSP + r"\1", text)
    return text.replace("« ", "«" + NBSP).replace(" »", NBSP + "»")


@pytest.fixture(scope="module")
def catalogues() -> ModuleType:
    """scripts/catalogues.py, the tool that keeps the catalogues current."""
    spec = importlib.util.spec_from_file_location("catalogues", ROOT / "scripts" /
                                                  "catalogues.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_IT = "run `python scripts/catalogues.py`, translate what it lists, run it again"


def test_the_template_holds_exactly_the_messages_the_code_uses(catalogues: ModuleType) -> None:
    """Every message of the code and the web templates is in trialfinder.pot, and nothing
    else is (extracted afresh with Babel and Python's syntax tree)."""
    assert catalogues.template_problems() == [], RUN_IT


def test_every_message_has_a_french_translation(catalogues: ModuleType) -> None:
    """The French catalogue translates every message of the template: none missing, empty or
    fuzzy, no stale entry, the same placeholders as the English."""
    assert catalogues.translation_problems("fr") == [], RUN_IT


def test_the_committed_mo_is_what_the_po_compiles_to(catalogues: ModuleType) -> None:
    """trialfinder.mo is byte for byte the compilation of trialfinder.po, so a fresh install
    reads the translations people wrote."""
    assert catalogues.compiled_problems("fr") == [], RUN_IT


def test_every_language_offered_has_a_catalogue(catalogues: ModuleType) -> None:
    """Each language --lang and the web accept, but English (the source), has a .po."""
    assert catalogues.languages() == [c for c in LANGUAGES if c != DEFAULT_LANGUAGE]


def test_the_installed_package_reads_its_catalogue() -> None:
    """The package as installed carries the compiled catalogue, and `_` finds it."""
    mo = resources.files("trialfinder") / "locale" / "fr" / "LC_MESSAGES" / "trialfinder.mo"
    assert mo.is_file()
    with language("fr"):
        assert _("Recruiting") == "Recrute"
        assert pgettext("precision", "city centre") == "centre-ville"
        assert ngettext("{n} site", "{n} sites", 2).format(n=2) == "2 centres"


def test_the_checker_finds_what_is_wrong_with_a_translation(catalogues: ModuleType) -> None:
    """Placeholders renamed or lost, fuzzy or empty translations, plural forms missing: each
    is reported (so the completeness test can fail)."""
    catalog = Catalog(locale="fr")
    catalog.mime_headers = [("Plural-Forms", "nplurals=2; plural=(n > 1);")]
    catalog.add("{a} and {b}", "{a} et {c}")
    catalog.add("Fuzzy", "Flou", flags=["fuzzy"])
    catalog.add("Empty", "")
    catalog.add(("{n} site", "{n} sites"), ("{n} centre", ""))
    catalog.add(("one {n}", "many {n}"), ("un", "{n} plusieurs"))
    catalog.add("{{literal}} {x}", "{{littéral}} {x}")
    found = [issue for m in catalog if m.id for issue in catalogues.message_problems(m, catalog)]
    assert found == [
        "'{a} and {b}': the translation has ['c'], the message does not",
        "'{a} and {b}': the translation lacks ['b']",
        "'Fuzzy' is marked fuzzy (check the translation, then remove the mark)",
        "'Empty' is not translated",
        "'{n} site' is not translated",
    ]


def test_extraction_sees_messages_babel_misses(catalogues: ModuleType, tmp_path: Path) -> None:
    """Messages inside f-strings, plural, with a context or marked N_ are all found."""
    (tmp_path / "m.py").write_text(
        "x = f\"<b>{_('Contact')}:</b> {e(_('Position'))}\"\n"
        "y = ngettext('{n} a', '{n} b', n)\n"
        "z = pgettext('precision', 'city')\n"
        "T = N_('marked')\n"
        "w = _(variable)\n",
        encoding="utf-8",
    )
    found = sorted(((message, context) for _f, _l, message, context
                    in catalogues.python_calls(tmp_path)), key=str)
    assert found == sorted([
        ("Contact", None), ("Position", None), (("{n} a", "{n} b"), None),
        ("city", "precision"), ("marked", None),
    ], key=str)


# -- dates, ages and numbers as each language writes them --------------------------------------


@pytest.mark.parametrize(("label", "en", "fr"), [
    ("2019-01", "January 2019", "janvier 2019"),
    ("2024-03-15", "15 March 2024", "15 mars 2024"),
    ("2024-03-01", "1 March 2024", "1er mars 2024"),
    ("2022-09-30T10:00:00Z", "30 September 2022", "30 septembre 2022"),
    ("2019", "2019", "2019"),
    ("", "an unknown date", "une date inconnue"),
    ("2019-13", "2019-13", "2019-13"),
])
def test_date_words_in_each_language(label: str, en: str, fr: str) -> None:
    """ISO dates as precise as the record gives them, in words; English unchanged."""
    assert date_words(label) == en
    with language("fr"):
        assert date_words(label) == fr


@pytest.mark.parametrize(("then", "en", "fr"), [
    (date(2026, 11, 20), "today", "aujourd'hui"),
    (date(2026, 11, 19), "yesterday", "hier"),
    (date(2026, 11, 17), "3 days ago", "il y a 3 jours"),
    (date(2026, 10, 30), "3 weeks ago", "il y a 3 semaines"),
    (date(2026, 5, 20), "6 months ago", "il y a 6 mois"),
    (date(2025, 11, 1), "about a year ago", "il y a environ un an"),
    (date(2025, 5, 1), "over a year ago", "il y a plus d'un an"),
    (date(2019, 1, 1), "almost 8 years ago", "il y a presque 8 ans"),
    (date(2022, 6, 1), "over 4 years ago", "il y a plus de 4 ans"),
    (date(2022, 9, 1), "about 4 years ago", "il y a environ 4 ans"),
    (date(2023, 11, 1), "about 3 years ago", "il y a environ 3 ans"),
    (date(2027, 1, 1), "in the future", "dans le futur"),
])
def test_age_words_in_each_language(then: date, en: str, fr: str) -> None:
    """How long ago, in plain words, with the plural each language needs."""
    today = date(2026, 11, 20)
    assert age_words(then, today) == en
    with language("fr"):
        assert age_words(then, today) == fr


def test_as_of_words_in_french() -> None:
    """"janvier 2019, il y a presque 8 ans", as the issue asks."""
    with language("fr"):
        assert as_of_words("2019-01", date(2019, 1, 1), date(2026, 11, 20)) == (
            "janvier 2019, il y a presque 8 ans")
    assert as_of_words("2019-01", date(2019, 1, 1), date(2026, 11, 20)) == (
        "January 2019, almost 8 years ago")


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)),
       st.integers(min_value=0, max_value=15_000))
def test_both_languages_say_the_same_age(then: date, days: int) -> None:
    """Whatever the dates, French says the same number of days, weeks, months or years as
    English, as "il y a …" (or today, yesterday), and names the month in French."""
    today = then + timedelta(days=days)
    english = age_words(then, today)
    with language("fr"):
        french_age = age_words(then, today)
        month = date_words(then.isoformat()[:7])
    assert re.findall(r"\d+", english) == re.findall(r"\d+", french_age)
    assert french_age in ("aujourd'hui", "hier") or french_age.startswith("il y a ")
    assert month.split()[0] in FRENCH_MONTHS and month.endswith(str(then.year))


FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre")


def test_distances_as_each_language_writes_them() -> None:
    """"3.8 km" / "3,8 km"; "1,234.0 km" / "1 234,0 km" (narrow no-break space)."""
    assert distance_words(3.84) == "3.8 km" and distance_words(1234) == "1,234.0 km"
    assert format_decimal(1234.4, 0, grouping=False) == "1234"
    with language("fr"):
        assert distance_words(3.84) == "3,8 km"
        assert distance_words(1234) == "1\u202f234,0 km"
        assert format_decimal(1234.4, 0, grouping=False) == "1\u202f234"


def test_babel_is_not_imported_for_english() -> None:
    """English output costs no Babel import: `nearest Lyon` in English stays cheap."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from trialfinder.cli import app\n"
        "r = CliRunner().invoke(app, ['nearest', 'Lyon'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(any(m == 'babel' or m.startswith('babel.') for m in sys.modules))\n"
    )
    env = {**os.environ, "LANG": "C.UTF-8"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.strip()
    assert out == "False"


# -- the command line in French -----------------------------------------------------------------

NEAREST_LYON_FR = french("""\
Centres les plus proches de Lyon (69), France, qui recrutaient à la date de la fiche (janvier 2019)
Essai NCT02260505 : Efficiency of Imatinib Treatment Maintenance or Interruption After 3 Years \
of Adjuvant Treatment in Patients With Gastrointestinal Stromal Tumours (GIST)

1. Centre Léon Bérard (Lyon, France) — à moins d'1 km
   Demandez : Jean-Yves BLAY, Pr (médecin investigateur)
2. Institut de cancérologie LUCIEN NEUWIRTH (Saint-priest-en-jarez, France) — 47,7 km
   Demandez : Olivier COLLARD, Dr (médecin investigateur)

Pas de téléphone ni d'e-mail dans la fiche pour ces centres : demandez à votre oncologue de \
contacter le médecin investigateur (page du registre ci-dessous).
Attention : Cette fiche est ancienne (janvier 2019, il y a environ 6 ans) ; le recrutement a \
pu changer depuis. Mettez-la à jour avec `trialfinder sync NCT02260505` (connexion Internet \
nécessaire) et confirmez auprès du centre.
Page du registre : https://clinicaltrials.gov/study/NCT02260505
2 centres affichés sur 16 ; --limit pour en voir plus.
""")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner with no store (the bundled record answers), in the test's English locale."""
    monkeypatch.setenv("TRIALFINDER_DB", str(tmp_path / "store.sqlite"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_nearest_lyon_with_lang_fr(runner: CliRunner) -> None:
    """`nearest Lyon --lang fr`: the whole plain answer in French, numbers and dates too."""
    result = runner.invoke(app, ["nearest", "Lyon", "--limit", "2", "--lang", "fr"])
    assert result.exit_code == 0, result.output
    assert result.output == NEAREST_LYON_FR


@pytest.mark.parametrize("environ", [
    {"LANG": "fr_FR.UTF-8"},
    {"LANG": "de_DE.UTF-8", "LC_MESSAGES": "fr_BE.UTF-8"},
    {"LANG": "en_GB.UTF-8", "LANGUAGE": "de:fr"},
    {"LC_ALL": "fr_CA.UTF-8", "LANG": "en_US.UTF-8"},
])
def test_nearest_lyon_in_a_french_locale(runner: CliRunner, environ: dict[str, str]) -> None:
    """Without --lang, the locale as gettext reads it: the same French answer."""
    result = runner.invoke(app, ["nearest", "Lyon", "--limit", "2"], env=environ)
    assert result.exit_code == 0, result.output
    assert result.output == NEAREST_LYON_FR


def test_lang_en_wins_and_the_language_does_not_outlive_the_command(runner: CliRunner) -> None:
    """--lang en under a French locale is the English answer, exactly as with no locale; a
    French command leaves the next one (same process) in its own language."""
    english = runner.invoke(app, ["nearest", "Lyon", "--limit", "2"]).output
    assert english.startswith("Nearest sites recorded as recruiting in January 2019, to Lyon")
    assert runner.invoke(app, ["nearest", "Lyon", "--limit", "2", "--lang", "en"],
                         env={"LANG": "fr_FR.UTF-8"}).output == english
    assert runner.invoke(app, ["nearest", "Lyon", "--limit", "2", "--lang", "fr"]).exit_code == 0
    assert runner.invoke(app, ["nearest", "Lyon", "--limit", "2"]).output == english
    assert runner.invoke(app, ["nearest", "Lyon", "--limit", "2"],
                         env={"LC_ALL": "C", "LANGUAGE": "fr"}).output == english


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "Error: Invalid value for '--lang': 'de' is not a language trialfinder speaks; "
         "choose one of: en, fr\n"),
    ({"LANG": "fr_FR.UTF-8"}, french(
        "Erreur : Invalid value for '--lang': 'de' n'est pas une langue de trialfinder ; "
        "choisissez parmi : en, fr\n")),
])
def test_an_unknown_lang_is_a_usage_error(runner: CliRunner, environ: dict[str, str],
                                          expected: str) -> None:
    """--lang de: exit 2, one line on stderr, nothing on stdout."""
    result = runner.invoke(app, ["nearest", "Lyon", "--lang", "de"], env=environ)
    assert result.exit_code == 2
    assert result.stdout == "" and result.stderr == expected


@pytest.mark.parametrize(("args", "code", "expected"), [
    (["nearest", "Xqzwv"], 1, "Erreur : Lieu inconnu « Xqzwv » : ni une commune française, ni "
     "un code postal français, ni une ville de plus de 15 000 habitants"),
    (["show", "NCT123"], 2, "Erreur : « NCT123 » n'est pas un identifiant ClinicalTrials.gov "
     "(attendu : NCT suivi de 8 chiffres, par exemple NCT02260505)"),
    (["show", "NCT09999999"], 1, "Erreur : Pas de fiche pour NCT09999999 ici ; "
     "téléchargez-la avec `trialfinder sync NCT09999999` (connexion Internet nécessaire)"),
    (["nearest", "Lyon", "--max-km", "5", "--trial", "NCT02260505", "--all"], 0, None),
])
def test_errors_in_french(runner: CliRunner, args: list[str], code: int,
                          expected: str | None) -> None:
    """Library errors are sentences too: one French line, the usual exit code."""
    result = runner.invoke(app, [*args, "--lang", "fr"])
    assert result.exit_code == code, result.output
    if expected is not None:
        assert result.stderr == french(expected) + "\n"


def test_show_in_french(runner: CliRunner, rules_store: Path) -> None:
    """`show` of a registry record whose status is unknown, in French: labels, the status
    rule's words, ages, record values (phase, roles, arm types) and the age lines."""
    result = runner.invoke(app, ["show", "NCT90000001", "--db", str(rules_store), "--lang",
                                 "fr"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for expected in [
        "Phase : Sans objet",
        "Statut de l'essai : Statut inconnu (dernier statut connu : recrute, non vérifié "
        "depuis septembre 2022)",
        "Nombre de participants : 240",
        "Centres : 16",
        "Source : registre ClinicalTrials.gov (date : 2022-09-14)",
        "Prudence : Dernière mise à jour ou vérification par le promoteur : 14 septembre 2022, "
        "il y a plus de 2 ans. Confirmez le recrutement auprès du centre.",
    ]:
        assert french(expected) in lines
    assert any(line.startswith("  - Brachytherapy (comparateur actif)\u00a0: ") for line in lines)
    assert "Qui peut participer" in lines and "Groupes et traitements" in lines


def test_where_in_french(runner: CliRunner) -> None:
    """`where` in French: labels, precision and 'none' by what it qualifies."""
    result = runner.invoke(app, ["where", "Lyon", "--lang", "fr"])
    assert result.exit_code == 0
    assert result.output == french("""\
« Lyon » correspond à Lyon (69)
Nom : Lyon
Région : Auvergne-Rhône-Alpes
Département : 69
Pays : France (FR)
Code postal : 69000
Position : 45.7491, 4.8479 (centre-ville)
Autres possibilités : aucune
""")


PROSE = {"status_words", "status_source", "position", "copy_age", "sponsor_age", "warnings",
         "place_notes", "phase", "notes", "label", "place_alternatives", "alternatives"}
"""JSON fields a person reads: they follow the language (a place's label names its country
as the language does: "Brest, Biélorussie"); every other key and value does not (the
place's `name`, `country` code and `country_name` stay)."""


def _leaves(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, (*path, str(index)))
    else:
        yield path, data


@pytest.mark.parametrize("args", [
    ["nearest", "Paris", "--trial", "NCT90000004", "--all", "--json"],
    ["nearest", "Lyon", "--trial", "NCT03830788", "--json"],
    ["sites", "--trial", "NCT90000001", "--json"],
    ["show", "NCT90000003", "--json"],
    ["show", "NCT90000002", "--json"],
    ["where", "Saint-Denis", "--json"],
    ["search", "--near", "Lyon", "--status", "all", "--json"],
])
def test_json_keys_and_values_stay_english(runner: CliRunner, rules_store: Path,
                                           args: list[str]) -> None:
    """--json in French has the same keys and the same values as in English, but for the
    prose a person reads (status words, positions, ages, warnings, notes), which is French."""
    extra = [] if args[0] == "where" else ["--db", str(rules_store)]
    english = json.loads(runner.invoke(app, [*args, *extra]).output)
    in_french = json.loads(runner.invoke(app, [*args, *extra, "--lang", "fr"]).output)
    en_leaves, fr_leaves = dict(_leaves(english)), dict(_leaves(in_french))
    assert en_leaves.keys() == fr_leaves.keys()
    differ = {path for path in en_leaves if en_leaves[path] != fr_leaves[path]}
    assert differ, "nothing was translated"
    names = {[p for p in path if not p.isdigit()][-1] for path in differ}
    assert names <= PROSE, names - PROSE


def test_csv_headers_and_values_for_programs_stay(runner: CliRunner) -> None:
    """`sites --csv` is for programs: its header is the same in French; prose cells
    (status words, position) follow the language."""
    english = runner.invoke(app, ["sites", "--csv"]).output.splitlines()
    in_french = runner.invoke(app, ["sites", "--csv", "--lang", "fr"]).output.splitlines()
    assert english[0] == in_french[0]
    assert len(english) == len(in_french) == 17
    assert "approximative (centre-ville)" in in_french[1]


def test_every_command_that_prints_for_a_person_takes_lang() -> None:
    """One shared --lang option on every command but `serve` (whose pages follow each
    request's language)."""
    import typer.main

    group: Any = typer.main.get_command(app)
    for name, command in group.commands.items():
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert ("--lang" in options) == (name != "serve"), name


# -- the web in French ------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    from trialfinder.web.app import Settings, create_app

    with TestClient(create_app(Settings(db_path=tmp_path / "absent.sqlite"))) as test_client:
        yield test_client


def _text(page: str) -> str:
    page = re.sub(r'srcdoc="[^"]*"|<script.*?</script>|<style.*?</style>', "", page,
                  flags=re.S)
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.parametrize(("request_kwargs"), [
    {"url": "/nearest?place=Besancon&lang=fr"},
    {"url": "/nearest?place=Besancon", "headers": {"accept-language": "fr-FR,fr;q=0.9,en;q=0.5"}},
])
def test_the_answer_page_in_french(client: TestClient, request_kwargs: dict[str, Any]) -> None:
    """?lang=fr or Accept-Language: the answer page in French, record values and sources
    included, for a patient (no terminal advice)."""
    response = client.get(**request_kwargs)
    assert response.status_code == 200
    assert '<html lang="fr">' in response.text
    text = _text(response.text)
    for expected in [
        "Centres les plus proches de Besançon (25), France",
        "Le centre le plus proche qui recrute pour cet essai est CHRU de Besançon - Hôpital "
        "Minjoz, à Besançon, France : à moins d'1 km de Besançon (25), France.",
        "Demandez : Elsa KALBACHER, Doctor (médecin investigateur)",
        "Cette fiche est ancienne (janvier 2019, il y a environ 6 ans) ; le recrutement a pu "
        "changer depuis. Confirmez auprès du centre avant de vous déplacer.",
        "157,5 km",
        "Source : page d'annonce de type CenterWatch (date : janvier 2019, il y a environ 6 ans).",
        "Compris comme Besançon (25), France — position approximative (centre-ville).",
    ]:
        assert french(expected) in text
    assert "trialfinder sync" not in text and "Ask for" not in text


def test_the_trial_page_in_french(client: TestClient) -> None:
    """The oncologist's page in French: what the listing record lacks is named in French."""
    text = _text(client.get("/trial/NCT02260505?lang=fr").text)
    assert french("Absent de cette fiche (une page d'annonce) : phase, promoteur, maladies "
                  "étudiées, groupes de traitement, critères de participation, contacts.") in text
    assert "16 centres" in text and "Fiche d'adressage" in text


@pytest.mark.parametrize(("url", "status", "error"), [
    ("/api/nearest?place=Xqzwv&lang=fr", 422, "Lieu inconnu « Xqzwv » : ni une commune "
     "française, ni un code postal français, ni une ville de plus de 15 000 habitants"),
    ("/api/nearest?place=Lyon&trial=NCT09999999&lang=fr", 404,
     "Ce serveur n'a pas de fiche pour l'essai NCT09999999."),
])
def test_api_errors_in_french(client: TestClient, url: str, status: int, error: str) -> None:
    """The API's errors are 4xx with one message in the request's language."""
    response = client.get(url)
    assert response.status_code == status
    assert response.json() == {"error": french(error)}


def test_an_overlong_address_is_refused_in_the_browsers_language(client: TestClient) -> None:
    """The 414 answer (the query string is not read) follows Accept-Language."""
    url = "/nearest?place=" + "x" * 10_000
    assert client.get(url, headers={"accept-language": "fr"}).text == (
        "L'adresse est trop longue.\n")
    assert client.get(url).text == "The address is too long.\n"


# -- maps and referral sheets in French --------------------------------------------------------


def test_map_legend_and_popups_in_french(tmp_path: Path) -> None:
    """A map made in French: <html lang="fr">, the legend, popups and source box in French."""
    with language("fr"):
        result = make_map("NCT02260505", None, place_query="Besancon",
                          output=tmp_path / "map.html")
    page = result.path.read_text(encoding="utf-8")  # popups: HTML in JSON in a script
    page = html.unescape(re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), page))
    assert '<html lang="fr">' in page
    for expected in ["Votre lieu : Besançon (25)", "Centre qui recrute le plus proche : ",
                     "Statut :", "Position :", "Distance :", "à vol d'oiseau",
                     "Contours : Natural Earth (domaine public)",
                     "Source : page d'annonce de type CenterWatch (date : janvier 2019)."]:
        assert french(expected) in page, expected
    assert "Your place" not in page and "Nearest recruiting" not in page


def test_referral_sheet_in_french(tmp_path: Path) -> None:
    """A referral sheet made in French: headings, facts and the footer in French."""
    with language("fr"):
        sheet = build_referral("NCT02260505", "Besancon", None)
        page = html.unescape(referral_html(sheet))
    assert '<html lang="fr">' in page
    for expected in ["Principaux critères de participation",
                     "Centres qui recrutent les plus proches de Besançon (25), France",
                     "13 autres centres qui recrutent, plus loin : voir le registre.",
                     "Statut : « Open » (selon la page d'annonce)"]:
        assert french(expected) in page, expected
    assert "Key eligibility" not in page


# -- sync, status and changes: what is for scripts stays English, what is for people is not ----


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sync_log_lines_stay_english_its_verdict_is_french(tmp_path: Path) -> None:
    """Under a French locale, sync's stdout lines (read by scripts) keep their English
    words; only the failure's reason, and the verdict on stderr, are for people: French."""
    db = tmp_path / "store.sqlite"
    url = f"http://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(app, ["sync", "--db", str(db), "--registry-url", url],
                                env={"LANG": "fr_FR.UTF-8", "TRIALFINDER_REGISTRY_GIVE_UP": "1"})
    assert result.exit_code == 1
    line, summary = result.stdout.splitlines()
    assert line.startswith("NCT02260505 failed: Impossible de joindre ClinicalTrials.gov à ")
    assert summary == "sync: 1 asked, 0 new, 0 updated, 0 unchanged, 1 failed (1 trial by id)"
    assert result.stderr.startswith(french(
        "Erreur : 1 essai sur 1 en échec ; NCT02260505 : Impossible de joindre "))
    assert result.stderr.count("\n") == 1


def test_status_and_changes_in_french(tmp_path: Path) -> None:
    """`status` and `changes` are for people: French with --lang fr; their JSON keeps its
    keys and kinds, the change's description follows the language."""
    from conftest import shared_trial
    from trialfinder.models import Status
    from trialfinder.store import Store

    db = tmp_path / "store.sqlite"
    runner = CliRunner()
    never = runner.invoke(app, ["status", "--db", str(db), "--max-age", "24", "--lang", "fr"])
    assert never.exit_code == 1
    assert never.stdout == french(
        f"Pas encore de base à {db} ; remplissez-la avec `trialfinder sync`.\n")
    assert never.stderr == french("Erreur : aucune synchronisation réussie dans cette base\n")
    trial = shared_trial()
    with Store(db) as store:
        store.save_trial(trial, None, now="2025-02-27T03:00:00+00:00")
        closed = trial.replace(sites=(dataclasses.replace(trial.sites[0],
                                                          status=Status.COMPLETED),
                                      *trial.sites[1:]))
        store.save_trial(closed, None, now="2025-02-28T03:00:00+00:00")
    lines = runner.invoke(app, ["changes", "--db", str(db), "--lang", "fr"]).stdout.splitlines()
    assert lines == [
        "2025-02-27 NCT90000004: " + french("essai ajouté (Recrute)"),
        "2025-02-28 NCT90000004: " + french("Hôpital Saint-Louis : Recrute → Terminé"),
    ]
    data = json.loads(runner.invoke(app, ["changes", "--db", str(db), "--json", "--lang",
                                          "fr"]).stdout)
    assert [c["kind"] for c in data] == ["trial_added", "site_status_changed"]
    assert data[1]["description"] == lines[1]
    status = runner.invoke(app, ["status", "--db", str(db), "--lang", "fr"]).stdout
    assert french("Dernière synchronisation réussie : jamais") in status.splitlines()


# -- country names ---------------------------------------------------------------------------


def test_country_names_follow_the_language_and_keep_what_cldr_does_not_know() -> None:
    """A country is named as the language names it (CLDR, through Babel), from its code or
    its English name; English, and names CLDR does not know, are kept as written."""
    assert country_name("Germany") == "Germany"  # English: the record's own words
    with language("fr"):
        assert [country_name(n) for n in ("Germany", "United States", "Belgium", "France")] \
            == ["Allemagne", "États-Unis", "Belgique", "France"]
        assert country_name("Belarus", "BY") == "Biélorussie"
        assert country_name("Korea, Republic of") == "Korea, Republic of"  # the registry's
        assert country_name("") == ""
        assert address_words("Boston", "United States", zip_code="02115",
                             state="Massachusetts") == "Boston, 02115, Massachusetts, États-Unis"
        assert address_words("Lyon", None) == "Lyon"
        # The registry's ISO forms that CLDR lacks are read by the gazetteer's names.
        assert address_words("Seoul", "Korea, Republic of") == "Seoul, Corée du Sud"
        assert address_words("Moscow", "Russian Federation") == "Moscow, Russie"
        assert address_words("Nowhere", "Atlantis") == "Nowhere, Atlantis"
    assert address_words("Seoul", "Korea, Republic of") == "Seoul, Korea, Republic of"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_country_name_written_reads_back(lang: str) -> None:
    """Whatever name `country_name` writes for a country, `country_code` reads it back as
    that country, accents and case aside."""
    from trialfinder.i18n import _territories

    names = _territories(lang)
    assert len(names) > 240
    for code, name in names.items():
        assert country_code(name) == code or country_name(name) != name, (code, name)
        assert country_code(name.upper()) == country_code(name)


def test_places_abroad_are_named_in_french_and_the_example_given_reads_back(
    runner: CliRunner
) -> None:
    """In French, a place abroad names its country in French, in the answer and in the
    example a note gives to choose another place; that example resolves to that place."""
    result = runner.invoke(app, ["nearest", "München", "-n", "1", "--lang", "fr"])
    assert result.output.splitlines()[0] == french(
        "Centres les plus proches de Munich, Allemagne, qui recrutaient à la date de la fiche "
        "(janvier 2019)")
    english = runner.invoke(app, ["nearest", "München", "-n", "1"]).output.splitlines()[0]
    assert english == "Nearest sites recorded as recruiting in January 2019, to Munich, Germany"
    brest = runner.invoke(app, ["where", "Brest", "--lang", "fr"]).output
    example = "Brest, Biélorussie"
    assert french(f"(par exemple « {example} »)") in brest
    again = runner.invoke(app, ["where", example, "--json"])
    assert json.loads(again.output)["place"]["country"] == "BY"


def test_sizes_are_written_as_the_language_writes_numbers() -> None:
    """Size limits in messages use the language's units and digit grouping: "1 073 741 824
    octets", "256 Mo", "0,2 Mo" in French; English unchanged."""
    from trialfinder.listing import _megabytes
    from trialfinder.registry import _size_words

    sizes = (20_000_000, 250_000, 1_234)
    assert [_megabytes(n) for n in sizes] == ["20 MB", "0.2 MB", "1,234 bytes"]
    assert [_size_words(n) for n in (256_000_000, 64_000, 1 << 30)] == [
        "256 MB", "64 kB", "1,073,741,824 bytes"]
    with language("fr"):
        assert [_megabytes(n) for n in sizes] == ["20 Mo", "0,2 Mo", "1\u202f234 octets"]
        assert [_size_words(n) for n in (256_000_000, 64_000, 1 << 30)] == [
            "256 Mo", "64 ko", "1\u202f073\u202f741\u202f824 octets"]
