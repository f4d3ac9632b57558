"""`trialfinder search`: every stored trial ranked by its nearest matching site."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from referral_fixtures import fill_store
from trialfinder import clock
from trialfinder import search as search_module
from trialfinder.cli import app
from trialfinder.errors import BadInput
from trialfinder.geocode import placing_version
from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.nearest import haversine_km
from trialfinder.recruitment import site_recruitment
from trialfinder.search import SearchAnswer, nearest_trials, search
from trialfinder.store import Store
from trialfinder.terms import condition_words, fts_phrase, searchable_text, text_matches, words

runner = CliRunner()
LYON = (45.75, 4.85)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    fill_store(path)
    return path


def _search(db: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["search", *args, "--json", "--db", str(db)])
    return result.exit_code, (json.loads(result.output) if result.exit_code == 0 else {})


def _trial(nct: int, *sites: Site, title: str = "A study", conditions: tuple[str, ...] = (),
           terms: tuple[str, ...] = (), status: Status | None = Status.RECRUITING,
           verified: str | None = "2025-01", kind: str = "registry") -> Trial:
    return Trial(
        nct_id=f"NCT{nct:08d}", title=title,
        source=Source(kind, "ClinicalTrials.gov API v2", "2025-02-01",
                      retrieved="2025-02-20T10:00:00+00:00"),
        status=status, conditions=conditions, condition_terms=terms, verified_date=verified,
        sites=tuple(sites), placed_by=placing_version(),  # the positions the rules decide
    )


def _site(name: str, lat: float | None, lon: float | None, status: Status | None = None,
          country: str = "France") -> Site:
    return Site(name, f"{name} city", country, status=status, latitude=lat, longitude=lon,
                precision=Precision.CITY if lat is not None else Precision.UNKNOWN)


def _store(path: Path, *trials: Trial) -> Path:
    with Store(path) as store:
        for trial in trials:
            store.save_trial(trial, None)
    return path


# -- the command ------------------------------------------------------------------------


def test_json_contract_and_ranking_by_nearest_recruiting_site(db: Path) -> None:
    """Nearest trial first, each with its nearest recruiting site, its standing and where
    its status comes from, as the status rule reads them."""
    code, data = _search(db, "--near", "Lyon")
    assert code == 0
    assert data["place"]["name"] == "Lyon"
    assert [(t["nct_id"], t["site"]["facility"]) for t in data["trials"]] == [
        ("NCT03830788", "Hôpital Lyon Sud"),
        ("NCT06620835", "CLCC Antoine Lacassagne"),
        ("NCT06323538", "Max Rubner-Institut"),
    ]
    first = data["trials"][0]
    assert first["standing"] == "recruiting" and first["status"] == "RECRUITING"
    site = first["site"]
    assert {k: site[k] for k in ("facility", "city", "country", "status", "standing",
                                  "status_from", "recorded_status", "distance_km",
                                  "record_position")} == {
        "facility": "Hôpital Lyon Sud", "city": "Pierre-Bénite", "country": "France",
        "status": "RECRUITING", "standing": "recruiting", "status_from": "site",
        "recorded_status": "RECRUITING", "distance_km": 5.6, "record_position": 7,
    }
    assert set(first) >= {"as_of", "stale", "freshness", "registry_url", "status_words"}
    assert set(site) >= {"latitude", "longitude", "precision", "position", "contacts"}
    assert data["index"]["method"] == "tree" and data["notes"] == []
    assert data["unplaced_trials"] == [] and data["unplaced_total"] == 0
    distances = [t["site"]["distance_km"] for t in data["trials"]]
    assert distances == sorted(distances)


def test_a_nearer_withdrawn_or_not_yet_site_does_not_count(db: Path) -> None:
    """The site's own status wins: Centre Léon Bérard (Lyon) is WITHDRAWN for NCT06620835 and
    CH Lyon Sud is NOT_YET_RECRUITING for NCT03830788, although both trials recruit."""
    _, recruiting = _search(db, "--near", "Lyon", "--condition", "nsclc")
    (hit,) = [t for t in recruiting["trials"] if t["nct_id"] == "NCT06620835"]
    assert hit["site"]["city"] == "Nice" and hit["site"]["distance_km"] > 250
    _, everything = _search(db, "--near", "Lyon", "--status", "all")
    by_id = {t["nct_id"]: t["site"] for t in everything["trials"]}
    assert by_id["NCT06620835"]["facility"] == "Centre Leon Bérard"
    assert by_id["NCT06620835"]["standing"] == "not_recruiting"
    assert by_id["NCT06620835"]["status"] == "WITHDRAWN"
    assert by_id["NCT03830788"]["facility"] == "CH Lyon Sud"
    assert by_id["NCT03830788"]["standing"] == "not_yet_recruiting"


def test_radius_and_condition_ignore_case_and_accents(db: Path) -> None:
    """--radius drops farther trials; --condition ignores case and accents."""
    _, near = _search(db, "--near", "Lyon", "--radius", "50")
    assert [t["nct_id"] for t in near["trials"]] == ["NCT03830788"]
    _, prostate = _search(db, "--near", "Lyon", "--condition", "PROSTATE")
    assert [t["nct_id"] for t in prostate["trials"]] == ["NCT03830788"]
    _, diet = _search(db, "--near", "Lyon", "--condition", "plânt-based")
    assert [t["nct_id"] for t in diet["trials"]] == ["NCT06323538"]
    _, none = _search(db, "--near", "Lyon", "--condition", "melanoma")
    assert none["trials"] == [] and none["trials_matching"] == 0


def test_text_output(db: Path) -> None:
    """The text names the place, the scope, each trial's status and age, and its site."""
    result = runner.invoke(app, ["search", "--near", "Lyon", "--radius", "50", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Trials with recruiting sites near Lyon (69), France, within 50 km",
        "3 trials in the store",
        "",
        "1. NCT03830788: Erectile Dysfunction in Good Prognosis Prostate Cancer: a Phase III "
        "Medico-economic Study Comparing Brachytherapy to Stereotactic Body Radiotherapy",
        "   Trial status: Recruiting; record as of 7 February 2024, about a year ago",
        "   Nearest site: Hôpital Lyon Sud — Pierre-Bénite, France — 5.6 km — Recruiting",
        "",
        "Warning: 1 of these records is a copy more than six months old (the oldest: 7 "
        "February 2024, about a year ago): recruitment may have changed. Refresh it with "
        "`trialfinder sync` (needs network) and confirm with the site.",
    ]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_no_store_or_empty_store_says_to_sync(tmp_path: Path, make: str) -> None:
    """Without trials the user is told, on one line, how to fill the store."""
    path = tmp_path / "store.sqlite"
    if make == "empty":
        Store(path).close()
    result = runner.invoke(app, ["search", "--near", "Lyon", "--db", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: No trials in the store at {path}; fill it first with "
        "`trialfinder sync --condition …` (needs network)\n"
    )
    assert path.exists() == (make == "empty")  # searching never creates a store


@pytest.mark.parametrize(("args", "message"), [
    (["--status", "open"], "Error: --status must be one of recruiting, all, not 'open'\n"),
    (["--condition", " -- ; "], "Error: --condition has no letters or digits to look for\n"),
    (["--radius", "0"], "Error: --radius must be a positive number of kilometres\n"),
])
def test_bad_options_are_usage_errors(db: Path, args: list[str], message: str) -> None:
    """A bad option value is one line and exit 2."""
    result = runner.invoke(app, ["search", "--near", "Lyon", *args, "--db", str(db)])
    assert (result.exit_code, result.output) == (2, message)


def test_search_takes_an_open_store(db: Path) -> None:
    """The library call accepts an open Store as well as a path, and leaves it open."""
    with Store(db) as store:
        answer = search("Lyon", store, limit=1)
        assert store.trial_ids()  # still open
    assert [h.nct_id for h in answer.hits] == ["NCT03830788"]


# -- conditions: whole words, phrases, MeSH terms -------------------------------------------


def test_condition_matches_whole_words_only(tmp_path: Path) -> None:
    """RET does not find "Retrospective", MET neither "Metastatic" nor "Pemetrexed"; the
    genes themselves are found, whatever their case."""
    path = _store(
        tmp_path / "s.sqlite",
        _trial(1, _site("A", 45.7, 4.8), title="A retrospective study of metastatic disease"),
        _trial(2, _site("B", 45.8, 4.9), title="Pemetrexed in lung cancer"),
        _trial(3, _site("C", 46.0, 5.0), title="Selpercatinib", conditions=("RET fusion",)),
        _trial(4, _site("D", 46.1, 5.1), title="Tepotinib", conditions=("MET-amplified NSCLC",)),
    )
    found = {c: [h.nct_id for h in search("Lyon", path, condition=c).hits]
             for c in ("RET", "met", "Retrospective", "metastatic disease")}
    assert found == {"RET": ["NCT00000003"], "met": ["NCT00000004"],
                     "Retrospective": ["NCT00000001"], "metastatic disease": ["NCT00000001"]}


def test_cancer_neoplasm_and_tumour_are_one_word_and_mesh_terms_count(tmp_path: Path) -> None:
    """"lung cancer" finds a trial whose conditions only say NSCLC through its MeSH ancestor
    "Lung Neoplasms"; "lung tumour" and "pulmonary neoplasms" find what says so; a phrase
    never runs from one field into the next."""
    path = _store(
        tmp_path / "s.sqlite",
        _trial(1, _site("A", 45.7, 4.8), title="Brigatinib", conditions=("NSCLC",),
               terms=("Carcinoma, Non-Small-Cell Lung", "Lung Neoplasms")),
        _trial(2, _site("B", 45.8, 4.9), title="Screening", conditions=("Lung", "Cancer")),
        _trial(3, _site("C", 45.9, 4.9), title="Pulmonary tumours in children"),
    )

    def found(condition: str) -> list[str]:
        return [h.nct_id for h in search("Lyon", path, condition=condition).hits]

    assert found("lung cancer") == ["NCT00000001"]
    assert found("Lung Tumors") == ["NCT00000001"]
    assert found("pulmonary neoplasms") == ["NCT00000003"]
    assert found("cancer") == ["NCT00000001", "NCT00000002", "NCT00000003"]
    assert found("non small cell lung carcinoma") == []  # MeSH says it the other way round


def test_a_store_without_mesh_terms_says_so_and_how_to_refresh(tmp_path: Path) -> None:
    """When most registry records lack MeSH terms (synced before trialfinder read them), a
    condition search says so and names the command that refreshes them; not otherwise."""
    old = _store(tmp_path / "old.sqlite", _trial(1, _site("A", 45.7, 4.8), conditions=("NSCLC",)),
                 _trial(2, _site("B", 45.8, 4.9), conditions=("Asthma",)))
    code, data = _search(old, "--near", "Lyon", "--condition", "lung cancer")
    assert code == 0 and data["trials"] == []
    assert data["index"]["records_without_condition_terms"] == 2
    assert data["notes"] == [
        "2 of the 2 registry records in the store have no MeSH condition terms (they were "
        "synced before trialfinder read them), so a broader condition (\"lung cancer\" for "
        "\"NSCLC\") may miss them. Refresh them with `trialfinder sync --full …` (needs "
        "network)."]
    text = runner.invoke(app, ["search", "--near", "Lyon", "--condition", "asthma", "--db",
                               str(old)]).output
    assert "Note: 2 of the 2 registry records in the store have no MeSH" in text
    new = _store(tmp_path / "new.sqlite",
                 _trial(1, _site("A", 45.7, 4.8), conditions=("NSCLC",), terms=("Lung Neoplasms",)),
                 _trial(2, _site("B", 45.8, 4.9), conditions=("Asthma",), terms=("Asthma",)),
                 _trial(3, _site("C", 45.8, 4.9), conditions=("Healthy",)))
    code, data = _search(new, "--near", "Lyon", "--condition", "lung cancer")
    assert data["notes"] == [] and data["index"]["records_without_condition_terms"] is None
    assert [t["nct_id"] for t in data["trials"]] == ["NCT00000001"]


def test_a_store_placed_by_another_version_says_so_and_how_to_place_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trials placed by another version of the placing rules or gazetteer (an earlier one,
    a later one, or none stamped) are counted in a note, text and JSON, that names the
    commands placing them again; the answer itself is ranked as stored. None once every
    trial is current."""
    from trialfinder import geocode

    current = placing_version()
    path = _store(tmp_path / "s.sqlite",
                  _trial(1, _site("A", 45.7, 4.8)),
                  _trial(2, _site("B", 45.8, 4.9)).replace(placed_by="rules 0; gazetteer x"),
                  _trial(3, _site("C", 45.9, 4.9)).replace(placed_by=None),
                  _trial(4, _site("D", 46.0, 4.9)).replace(placed_by=current + "z"))
    code, data = _search(path, "--near", "Lyon")
    assert code == 0 and len(data["trials"]) == 4
    assert data["index"]["trials_placed_by_another_version"] == 3
    assert data["notes"] == [
        "3 trials in the store were placed by another version of trialfinder's placing rules "
        "or gazetteer, so their positions may be out of date. Place them again with "
        "`trialfinder geocode --refresh` (offline), or the next `trialfinder sync` will."]
    with Store(path) as store:
        store.rewrite_trials([t.replace(placed_by=current) for t in store.iter_trials()
                              if t.nct_id != "NCT00000002"])
    text = runner.invoke(app, ["search", "--near", "Lyon", "--db", str(path)]).output
    assert text.splitlines()[1:3] == [
        "4 trials in the store",
        "Note: 1 trial in the store was placed by another version of trialfinder's placing "
        "rules or gazetteer, so its positions may be out of date. Place it again with "
        "`trialfinder geocode --refresh` (offline), or the next `trialfinder sync` will."]
    french = runner.invoke(app, ["search", "--near", "Lyon", "--lang", "fr", "--db",
                                 str(path)]).output
    assert french.splitlines()[2] == (
        "Remarque\u00a0: 1 essai de la base a été placé par une autre version des règles de "
        "placement ou de la liste de lieux de trialfinder\u00a0: ses positions ne sont "
        "peut-être plus à jour. Placez-le à nouveau avec `trialfinder geocode --refresh` (hors "
        "ligne), ou la prochaine synchronisation (`trialfinder sync`) le fera.")
    rules = geocode.PLACING_RULES
    monkeypatch.setattr(geocode, "PLACING_RULES", "99")  # an upgrade: all four are outdated
    assert search("Lyon", path).placed_otherwise == 4
    monkeypatch.setattr(geocode, "PLACING_RULES", rules)
    with Store(path) as store:
        store.rewrite_trials([t.replace(placed_by=current) for t in store.iter_trials()])
    code, data = _search(path, "--near", "Lyon")
    assert data["notes"] == [] and data["index"]["trials_placed_by_another_version"] == 0


def test_an_older_store_read_as_it_is_searches_without_the_placing_note(
    tmp_path: Path
) -> None:
    """A schema-5 store opened read-only lacks the index that counts trials placed by
    another version: the search answers without that note rather than read every record."""
    from test_store import _as_version

    path = _store(tmp_path / "s.sqlite",
                  _trial(1, _site("A", 45.7, 4.8)).replace(placed_by="rules 0"))
    _as_version(path, 5)
    with Store(path, mode="read") as store:
        answer = search("Lyon", store)
    assert [h.nct_id for h in answer.hits] == ["NCT00000001"]
    assert answer.placed_otherwise == 0


@settings(deadline=None)
@given(st.text(max_size=40))
def test_any_condition_is_searched_or_refused_cleanly(condition: str) -> None:
    """Hostile text (quotes, FTS5 operators, control characters) is only ever words: the
    search answers, or refuses with a usage error when there is no word at all."""
    with Store(":memory:") as store:
        store.save_trial(_trial(1, _site("A", 45.7, 4.8), title='NEAR("x" OR y*) AND -z'), None)
        try:
            ranking = nearest_trials(store, *LYON, condition=condition)
        except BadInput:
            assert not words(condition)
            return
    assert ranking.matching in (0, 1)


# -- statuses, days and unplaced sites ------------------------------------------------------


def test_a_status_unverified_for_two_years_stops_counting_on_its_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial verified in March 2023 recruits until its verification runs out (2025-03-01)
    and is "status unknown" the day after: the index filters on the day of the search."""
    path = _store(tmp_path / "s.sqlite",
                  _trial(1, _site("A", 45.7, 4.8, Status.RECRUITING), verified="2023-03"),
                  _trial(2, _site("B", 48.0, 2.0, Status.RECRUITING)))
    assert [h.nct_id for h in search("Lyon", path).hits] == ["NCT00000001", "NCT00000002"]
    monkeypatch.setattr(clock, "today", lambda: datetime.date(2025, 3, 2))
    assert [h.nct_id for h in search("Lyon", path).hits] == ["NCT00000002"]
    result = runner.invoke(app, ["search", "--near", "Lyon", "--status", "all", "--db",
                                 str(path)])
    lines = result.output.splitlines()
    assert lines[4:6] == [
        "   Trial status: Status unknown (last known: recruiting, not verified since March "
        "2023); record as of 20 February 2025, 10 days ago",
        "   Nearest site: A — A city, France — 6.6 km — Status unknown (last known: "
        "recruiting, not verified since March 2023) (the trial's status is unknown: the "
        "site's own is not verified either)",
    ]


def test_trials_whose_matching_sites_have_no_position_come_last(tmp_path: Path) -> None:
    """A trial whose only recruiting sites are unplaced is listed after the placed ones,
    not counted in --limit, those with such a site in the place's country first."""
    path = _store(
        tmp_path / "s.sqlite",
        _trial(1, _site("Near", 45.7, 4.8, Status.RECRUITING)),
        _trial(2, _site("Far", 48.0, 2.0, Status.RECRUITING)),
        _trial(3, _site("Closed", 45.7, 4.8, Status.COMPLETED),
               _site("Somewhere", None, None, Status.RECRUITING, country="Germany")),
        _trial(4, _site("Anywhere", None, None, Status.RECRUITING)),
        _trial(5, _site("Nowhere", None, None, Status.COMPLETED)),
    )
    code, data = _search(path, "--near", "Lyon", "--limit", "1")
    assert code == 0 and [t["nct_id"] for t in data["trials"]] == ["NCT00000001"]
    assert [(t["nct_id"], t["site"]["distance_km"]) for t in data["unplaced_trials"]] == [
        ("NCT00000004", None)]
    assert data["unplaced_total"] == 2
    result = runner.invoke(app, ["search", "--near", "Lyon", "--limit", "1", "--db", str(path)])
    lines = result.output.splitlines()
    at = lines.index("Trials whose matching sites have no known position (they may be near "
                     "you):")
    assert lines[at + 1] == "2. NCT00000004: A study"
    assert lines[at + 3] == ("   Site: Anywhere — Anywhere city, France — position unknown, "
                             "may be near you — Recruiting")
    assert lines[at + 4] == "1 more such trial; use --limit to see more."
    _, everything = _search(path, "--near", "Lyon", "--status", "all")
    assert [t["nct_id"] for t in everything["trials"]] == [
        "NCT00000001", "NCT00000003", "NCT00000002"]
    assert [t["nct_id"] for t in everything["unplaced_trials"]] == ["NCT00000004",
                                                                    "NCT00000005"]
    indexed = [search("Lyon", path, status=s, limit=1) for s in ("recruiting", "all")]
    with _unindexed(path):
        scanned = [search("Lyon", path, status=s, limit=1) for s in ("recruiting", "all")]
    assert [(_answer(a), a.unplaced_total, a.method) for a in scanned] == [
        (_answer(a), a.unplaced_total, "scan") for a in indexed]


def test_many_sites_sharing_one_position_tie_by_identifier(tmp_path: Path) -> None:
    """Sixty trials with sites on the same city centre, one of them huge: equally near,
    so they come in identifier order, each by its first site in the record."""
    trials = [_trial(100 - i, *[_site(f"S{i}-{p}", 45.76, 4.84, Status.RECRUITING)
                                for p in range(400 if i == 7 else 3)]) for i in range(60)]
    path = _store(tmp_path / "s.sqlite", *trials)
    with Store(path) as store:
        ranking = nearest_trials(store, *LYON, limit=25)
    assert [n for _d, n, _p in ranking.ranked] == sorted(t.nct_id for t in trials)[:25]
    assert {p for _d, _n, p in ranking.ranked} == {0}
    assert len({d for d, _n, _p in ranking.ranked}) == 1



def test_trials_at_one_position_share_a_rank_and_a_cut_group_is_said(tmp_path: Path) -> None:
    """Trials whose nearest sites share one position (the registry's city centre) are equally
    near: one rank and one heading in text, one `rank` with its group's size in JSON; a
    `--limit` that cuts such a group says that more are as near, in identifier order."""
    path = _store(tmp_path / "s.sqlite",
                  *(_trial(n, _site("Centre", 45.75, 4.85)) for n in (3, 1, 2)),
                  _trial(4, _site("Far", 46.2, 6.1)), _trial(5, _site("Farther", 48.9, 2.3)))
    text = runner.invoke(app, ["search", "--near", "Lyon", "--db", str(path)]).output
    lines = text.splitlines()
    start = lines.index("1. Equally near, 0.2 km: 3 trials whose nearest sites are placed at "
                        "one point, the centre of Centre city (the records give no street "
                        "address)")
    assert lines[start + 1:start + 4] == [
        "   - NCT00000001: A study",
        "     Trial status: Recruiting; record as of 20 February 2025, 9 days ago",
        "     Nearest site: Centre — Centre city, France — 0.2 km — Recruiting (the trial's "
        "status; the record gives none for this site)"]
    numbered = [line.split(":")[0] for line in lines if line.split(". ")[0].isdigit()]
    assert numbered == [
        "1. Equally near, 0.2 km", "2. NCT00000004", "3. NCT00000005"]
    code, data = _search(path, "--near", "Lyon")
    assert code == 0
    assert [(t["nct_id"], t["rank"], t["equally_near"]) for t in data["trials"]] == [
        ("NCT00000001", 1, 3), ("NCT00000002", 1, 3), ("NCT00000003", 1, 3),
        ("NCT00000004", 2, 1), ("NCT00000005", 3, 1)]
    assert data["more_equally_near"] is False

    cut = runner.invoke(app, ["search", "--near", "Lyon", "--limit", "2", "--db", str(path)])
    assert "1. Equally near, 0.2 km: 2 trials whose nearest sites are placed at one point, " \
        "the centre of Centre city (the records give no street address)" in cut.output
    assert ("More trials are as near as the last ones shown (listed by identifier, not by "
            "distance); use --limit to see more.") in cut.output.splitlines()
    code, data = _search(path, "--near", "Lyon", "--limit", "2")
    assert code == 0
    assert [(t["nct_id"], t["rank"]) for t in data["trials"]] == [
        ("NCT00000001", 1), ("NCT00000002", 1)]
    assert data["more_equally_near"] is True
    french = runner.invoke(app, ["search", "--near", "Lyon", "--limit", "2", "--lang", "fr",
                                 "--db", str(path)]).output.splitlines()
    start = french.index(
        "1. À égale distance, 0,2 km\u00a0: 2 essais dont les centres les plus proches "
        "sont placés au même point, le centre-ville de Centre city (les fiches ne donnent pas "
        "d'adresse précise)")
    assert french[start + 1] == "   - NCT00000001\u00a0: A study"
    for limit in ("3", "4"):
        _code, data = _search(path, "--near", "Lyon", "--limit", limit)
        assert data["more_equally_near"] is False


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([(45.75, 4.85), (45.76, 4.84), (46.2, 6.1), (43.3, 5.4)]),
                min_size=1, max_size=9), st.integers(min_value=1, max_value=10))
def test_ranks_are_shared_exactly_by_trials_at_one_position(
    positions: list[tuple[float, float]], limit: int
) -> None:
    """For any trials and limit: ranks never fall, two trials share one exactly when their
    nearest sites share a position, each rank's group size is what the answer shows of it,
    and `more_equally_near` is said exactly when a hidden trial is as near as the last."""
    with Store(":memory:") as store:
        for n, (lat, lon) in enumerate(positions):
            store.save_trial(_trial(n, _site(f"S{n}", lat, lon)), None)
        answer = search("Lyon", store, limit=limit)
        everything = search("Lyon", store, limit=len(positions))
    shown = [((h.site.latitude, h.site.longitude), h.rank, h.equally_near) for h in answer.hits]
    assert len(shown) == min(limit, len(positions))
    for (here, rank, _size), (there, next_rank, _s) in itertools.pairwise(shown):
        assert next_rank == rank + (here != there)
    for _here, rank, size in shown:
        assert size == sum(1 for _h, r, _s in shown if r == rank)
    hidden = [(h.site.latitude, h.site.longitude) for h in everything.hits[len(shown):]]
    assert answer.more_equally_near == bool(hidden and hidden[0] == shown[-1][0])


# -- the index -------------------------------------------------------------------------------


def test_index_follows_later_writes(db: Path) -> None:
    """After the index exists, a re-saved trial (a site now recruiting, a new keyword) is
    searched as saved."""
    with Store(db) as store:
        trial = store.get_trial("NCT06620835")
        assert trial is not None and store.search_index_ready
        sites = tuple(s.__class__(**{**{f: getattr(s, f) for f in s.__slots__},
                                     "status": Status.RECRUITING})
                      if s.facility == "Centre Leon Bérard" else s for s in trial.sites)
        store.save_trial(trial.replace(sites=sites, keywords=("Mésothéliome",)), None)
        ranking = nearest_trials(store, 45.75, 4.85, limit=1, condition="mesotheliome")
        hits = search("Lyon", store, condition="mesotheliome").hits
    assert [h.site.facility for h in hits] == ["Centre Leon Bérard"]
    assert ranking.ranked[0][1] == "NCT06620835"


def test_an_older_index_is_replaced_on_the_first_writable_open(db: Path) -> None:
    """A store carrying the previous design's index (its triggers still on `sites`) gets this
    one when opened, and searches the same."""
    raw = sqlite3.connect(db)
    for name in ("search_site_added", "search_site_changed", "search_site_removed",
                 "search_trial_added", "search_trial_changed", "search_trial_removed"):
        raw.execute(f"DROP TRIGGER {name}")
    raw.execute("DROP TABLE search_meta")
    raw.execute("CREATE VIRTUAL TABLE search_site_rtree USING rtree(id, a, b, c, d)")
    raw.execute("CREATE TRIGGER search_sites_ai AFTER INSERT ON sites BEGIN "
                "INSERT INTO search_site_rtree VALUES (new.rowid, 0, 0, 0, 0); END")
    raw.commit()
    raw.close()
    with Store(db) as store:
        names = {r[0] for r in store.connection.execute("SELECT name FROM sqlite_master")}
        assert store.search_index_ready and "search_site_rtree" not in names
        assert "search_sites_ai" not in names
    assert [h.nct_id for h in search("Lyon", db).hits][:1] == ["NCT03830788"]


@contextmanager
def _unindexed(db: Path) -> Iterator[None]:
    """The store as one that lacks its index and cannot build it now (another process
    writes; a read-only file is the same to the store)."""
    raw = sqlite3.connect(db)
    raw.execute("DROP TABLE search_meta")  # as if the index had never been built
    raw.commit()
    raw.close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _answer(answer: SearchAnswer) -> list[tuple[str, int, float | None, str]]:
    return [(h.nct_id, h.position, h.distance_km, h.site_recruitment.standing.value)
            for h in answer.hits + answer.unplaced]


def test_building_the_index_recomputes_the_searchable_text(db: Path) -> None:
    """Texts written by another version (here: nonsense) are recomputed from the records when
    the index is built, so conditions match what this version indexes (MeSH terms too)."""
    raw = sqlite3.connect(db)
    raw.execute("DROP TABLE search_meta")
    raw.execute("UPDATE trials SET search_text = 'nothing to see'")
    raw.commit()
    raw.close()
    with Store(db) as store:
        assert store.search_index_ready
        assert store.search_matching(fts_phrase(["lung", "cancer"])) != set()
        texts = dict(store.connection.execute("SELECT nct_id, search_text FROM trials"))
        trial = store.get_trial("NCT06620835")
    assert trial is not None and texts["NCT06620835"] == searchable_text(trial)
    assert [h.nct_id for h in search("Lyon", db, condition="thoracic neoplasms").hits] == [
        "NCT06620835"]


def test_a_store_that_cannot_be_indexed_now_is_scanned_with_the_same_answer(db: Path) -> None:
    """Without its index, and unable to build it (another process writes, or the file is
    read-only), the store is searched by reading every site: same answer, and a note."""
    indexed = search("Lyon", db, condition="cancer", status="all")
    with _unindexed(db):
        with Store(db) as store:
            assert not store.search_index_ready
            scanned = search("Lyon", store, condition="cancer", status="all")
        code, data = _search(db, "--near", "Lyon")
    assert scanned.method == "scan" and indexed.method != "scan"
    assert _answer(scanned) == _answer(indexed)
    assert code == 0 and data["index"]["method"] == "scan"
    assert data["notes"][0].startswith("This store has no search index and cannot be written")


# -- the index against brute force -----------------------------------------------------------

latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
statuses = st.sampled_from([Status.RECRUITING, Status.NOT_YET_RECRUITING, Status.WITHDRAWN,
                            None])
VOCABULARY = ["Lung", "cancer", "Néoplasme", "tumours", "côlon", "Asthma", "RET", "retro",
              "non-small", "cell", "MET", "Type-2 diabetes"]
texts = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(" ".join)


@st.composite
def stores(draw: st.DrawFn) -> list[Trial]:
    shared = draw(st.lists(st.tuples(latitudes, longitudes), min_size=1, max_size=4))
    trials = []
    for t in range(draw(st.integers(0, 8))):
        sites = []
        for p in range(draw(st.integers(0, 7))):
            placed = draw(st.integers(0, 9)) > 0
            lat, lon = draw(st.one_of(st.sampled_from(shared), st.tuples(latitudes, longitudes)))
            sites.append(_site(f"Site {p}", lat if placed else None, lon if placed else None,
                               draw(statuses)))
        trials.append(_trial(
            10_000_000 + t, *sites, title=draw(texts),
            conditions=tuple(draw(st.lists(texts, max_size=2))),
            terms=tuple(draw(st.lists(texts, max_size=2))),
            status=draw(st.sampled_from([Status.RECRUITING, Status.COMPLETED, None])),
            verified=draw(st.sampled_from(["2022-01", "2024-06", None])),
        ))
    return trials


def brute_force(trials: list[Trial], lat: float, lon: float, limit: int, radius: float | None,
                recruiting: bool, condition: str | None) -> list[tuple[str, float, int]]:
    """Every site of every trial, the status rule asked directly."""
    best = {}
    for trial in trials:
        if condition and not text_matches(condition_words(condition), searchable_text(trial)):
            continue
        for position, site in enumerate(trial.sites):
            if not site.has_position:
                continue
            if recruiting and not site_recruitment(site, trial).recruiting:
                continue
            d = haversine_km(lat, lon, site.latitude, site.longitude)  # type: ignore[arg-type]
            if radius is not None and d > radius:
                continue
            if trial.nct_id not in best or (d, position) < best[trial.nct_id]:
                best[trial.nct_id] = (d, position)
    ranked = sorted((d, nct, pos) for nct, (d, pos) in best.items())
    return [(nct, d, pos) for d, nct, pos in ranked[:limit]]


@contextmanager
def _saved(trials: list[Trial], folded: int) -> Iterator[Store]:
    """A store holding these trials: the first ``folded`` in the tree, the others saved
    during a sync that has not finished (their sites fresh, outside the tree)."""
    with Store(":memory:") as store:
        for trial in trials[:folded]:
            store.save_trial(trial, None)
        if folded < len(trials):
            store.start_sync()
            for trial in trials[folded:]:
                store.save_trial(trial, None)
            assert store.search_has_fresh() == any(
                s.has_position for t in trials[folded:] for s in t.sites)
        yield store


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stores(), latitudes, longitudes, st.integers(1, 5),
    st.one_of(st.none(), st.floats(min_value=1, max_value=25000)),
    st.booleans(), st.one_of(st.none(), texts),
    st.sampled_from([None, "tree", "direct", "scan", "fallback", "one by one"]),
    st.integers(0, 8),
)
def test_every_method_equals_brute_force(
    trials, lat, lon, limit, radius, recruiting, condition, method, folded
):
    """On random stores (sites sharing positions, unplaced ones, some written during a sync
    and not yet in the tree, any place on Earth, random words), the best-first walk, the
    direct ranking, the scan and the automatic choice (with a walk that gives up at once and
    hands over to the direct ranking, and with the condition checked trial by trial) all
    give exactly the brute force's trials, distances and sites: ties by identifier, then
    record order."""
    assume(method != "direct" or condition is not None)
    saved = search_module.DIRECT_SITES, search_module.TREE_BUDGET, search_module.KEYS_AT_ONCE
    if method == "fallback":
        method = None
        search_module.DIRECT_SITES, search_module.TREE_BUDGET = 0, 0
    elif method == "one by one":
        method = None
        search_module.KEYS_AT_ONCE = 0
    try:
        with _saved(trials, folded) as store:
            ranking = nearest_trials(store, lat, lon, limit=limit, radius_km=radius,
                                     recruiting_only=recruiting, condition=condition,
                                     method=method)
    finally:
        search_module.DIRECT_SITES, search_module.TREE_BUDGET, search_module.KEYS_AT_ONCE = \
            saved
    got = [(nct, d, pos) for d, nct, pos in ranking.ranked]
    assert got == brute_force(trials, lat, lon, limit, radius, recruiting, condition)


def brute_force_unplaced(trials: list[Trial], country: str, recruiting: bool,
                         condition: str | None) -> list[tuple[str, int, bool]]:
    """Trials with matching sites, none placed: (nct_id, first such site, one in the
    country), those in the country first, then by identifier."""
    found = []
    for trial in trials:
        if condition and not text_matches(condition_words(condition), searchable_text(trial)):
            continue
        matching = [(p, s) for p, s in enumerate(trial.sites)
                    if not recruiting or site_recruitment(s, trial).recruiting]
        if matching and not any(s.has_position for _p, s in matching):
            found.append((trial.nct_id, matching[0][0],
                          any(s.country.lower() == country.lower() for _p, s in matching)))
    return sorted(found, key=lambda f: (not f[2], f[0]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stores(), st.sampled_from(["France", "Spain"]), st.booleans(),
       st.one_of(st.none(), texts), st.integers(0, 8), st.booleans())
def test_unplaced_trials_equal_brute_force(trials, country, recruiting, condition, folded,
                                           indexed):
    """The trials whose matching sites are all unplaced, as the index's tally finds them and
    as the store finds them without its index, are exactly the brute force's."""
    trials = [t.replace(sites=tuple(
        s if p % 3 else dataclasses.replace(s, country="Spain") for p, s in enumerate(t.sites)))
        for t in trials]
    day = clock.today() if recruiting else None
    with _saved(trials, folded) as store:
        if indexed:
            phrase = fts_phrase(condition_words(condition)) if condition else None
            got = store.search_unplaced(day, country, phrase=phrase)
        else:
            store._search_ready = False
            ids = None if condition is None else [
                n for n, t in store.search_texts()
                if text_matches(condition_words(condition), t)]
            got = store.search_unplaced(day, country, nct_ids=ids)
    assert got == brute_force_unplaced(trials, country, recruiting, condition)


def test_a_sync_folds_its_sites_into_the_tree_once(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """During a sync, written sites wait outside the tree (a search still finds them), are
    folded into it when they outnumber it, and all of them when the sync finishes; a write
    outside a sync folds at once; a deferred run of writes folds once, at its end."""
    import trialfinder.store as store_module

    monkeypatch.setattr(store_module, "SEARCH_FOLD_MIN", 3)
    trials = [_trial(n, _site(f"S{n}", 45.0 + n / 10, 4.8)) for n in range(1, 9)]

    def counts(store: Store) -> tuple[int, int]:
        cell, fresh = (store.connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                       for t in ("search_cell", "search_fresh"))
        return cell, fresh

    with Store(tmp_path / "fold.sqlite") as store:
        store.save_trial(trials[0], None)
        assert counts(store) == (1, 0)
        sync_id = store.start_sync()
        for trial in trials[1:4]:
            store.save_trial(trial, None)
        assert counts(store) == (1, 3)
        ranking = nearest_trials(store, 45.32, 4.8, limit=2)
        assert [n for _d, n, _p in ranking.ranked] == ["NCT00000003", "NCT00000004"]
        store.save_trial(trials[4], None)  # 4 fresh: more than 3 and than the tree's 1
        assert counts(store) == (5, 0)
        for trial in trials[5:]:
            store.save_trial(trial, None)
        assert counts(store) == (5, 3)
        store.finish_sync(sync_id, "success")
        assert counts(store) == (8, 0)
        with store.search_deferred():  # e.g. `geocode --refresh`
            store.rewrite_trials(trials[:2])
            assert counts(store) == (6, 2)
        assert counts(store) == (8, 0)


def test_a_dead_sync_leaves_its_sites_found_and_the_next_folds_them(tmp_path: Path) -> None:
    """A sync that dies before it finishes leaves its sites outside the tree: searches still
    find them, and the next `sync` or `status` (which marks the run aborted) folds them."""
    path = tmp_path / "dead.sqlite"
    with Store(path) as store:
        store.start_sync()
        store.save_trial(_trial(1, _site("Lyon", *LYON)), None)
    with Store(path) as store:
        assert store.search_has_fresh()
        assert [n for _d, n, _p in nearest_trials(store, *LYON).ranked] == ["NCT00000001"]
        assert store.abandon_unfinished() == 1
        assert not store.search_has_fresh()
        assert [n for _d, n, _p in nearest_trials(store, *LYON).ranked] == ["NCT00000001"]


def test_a_site_row_is_never_replaced_in_place(db: Path) -> None:
    """The index's triggers need a site's old values: a REPLACE of a row of `sites` is
    refused (the store deletes, then inserts), and the index stays whole."""
    with Store(db) as store:
        row = store.connection.execute(
            "SELECT trial, position FROM sites WHERE latitude IS NOT NULL").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="search index needs its values"):
            store.connection.execute(
                "INSERT OR REPLACE INTO sites (trial, position, site_key, facility, city, "
                "country, status, precision) VALUES (?, ?, 'k', 'f', 'c', 'France', "
                "'RECRUITING', 'city')", row)


@settings(deadline=None)
@given(st.lists(texts, min_size=1, max_size=4), texts)
def test_fts_and_the_python_matcher_agree(fields: list[str], condition: str) -> None:
    """The index (FTS5) and the matcher used without it answer the same for any fields."""
    trial = _trial(1, title=fields[0], conditions=tuple(fields[1:]))
    phrase = condition_words(condition)
    with Store(":memory:") as store:
        store.save_trial(trial, None)
        indexed = store.search_matching(fts_phrase(phrase))
    assert bool(indexed) == text_matches(phrase, searchable_text(trial))
