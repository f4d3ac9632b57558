"""What every output says, checked through the CLI on a store of records of every kind: the
plain answer word for word, and the agreement of text, JSON, CSV, map and sheet."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import (
    LISTING_ID,
    RECORDED_ID,
    SHARED_ID,
    UNKNOWN_ID,
    UNVERIFIED_ID,
    shared_trial,
)
from trialfinder import mapping
from trialfinder.cli import app
from trialfinder.queries import trial_view
from trialfinder.referral import referral_sheet

ALL_KINDS = [RECORDED_ID, UNKNOWN_ID, UNVERIFIED_ID, LISTING_ID, SHARED_ID]


@pytest.fixture
def run(rules_store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the CLI on the rules store; the result's exit code is checked by the caller."""
    monkeypatch.delenv("TRIALFINDER_ONLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [*args, "--db", str(rules_store)])

    return invoke


def run_json(run, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- the plain answer, word for word --------------------------------------------------------


def test_plain_answer_for_equally_near_sites(run) -> None:  # type: ignore[no-untyped-def]
    """Two sites at the centre of Paris are one rank, said so; --limit 1 does not split them;
    a recruiting site with no position follows, outside the limit; whom to ask for and how to
    reach them (the site's own contact, else the trial's); the age in plain words."""
    result = run("nearest", "75005", "-t", SHARED_ID, "-n", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Nearest recruiting sites to Paris (75), 75005, France",
        "Trial NCT90000004: Equally near sites",
        "",
        "1. Equally near, less than 1 km: 2 sites placed at one point, the centre of Paris (the "
        "record gives no street address)",
        "   Hôpital Cochin (Paris, France)",
        "      Ask for: Dr Luc Bon (investigator)",
        "      Contact (for the whole trial): Trial desk, +33 1 00 00 00 00, desk@example.org",
        "   Hôpital Saint-Louis (Paris, France)",
        "      Ask for: Dr Zoé Roux (investigator)",
        "      Contact: Unité essais, +33 1 42 49 00 00, essais@sls.example",
        "",
        "Position unknown — may be near you:",
        "   Hôpital Inconnu (Lieu-Inconnu, France)",
        "      Ask for: Dr Anne Petit (investigator)",
        "      Contact (for the whole trial): Trial desk, +33 1 00 00 00 00, desk@example.org",
        "",
        "Information fetched from the registry on 28 February 2025, yesterday; last updated by "
        "the sponsor: 10 February 2025, 3 weeks ago.",
        "Registry page: https://clinicaltrials.gov/study/NCT90000004",
        "The limit of 1 fell among equally near sites: all 2 are shown.",
        "Showing 2 of 3; use --limit to see more.",
    ]
    assert result.stderr == ""


def test_details_say_where_each_status_and_position_comes_from(run) -> None:  # type: ignore[no-untyped-def]
    """--details: the trial's provenance, then each site's status with its source and its
    position with its precision and why it is unknown."""
    result = run("nearest", "Lyon", "-t", SHARED_ID, "--details", "-n", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Nearest recruiting sites to Lyon (69), France",
        "NCT90000004: Equally near sites",
        "Trial status: Recruiting",
        "Source: ClinicalTrials.gov API v2, as of 2025-02-10 (fetched 2025-02-28)",
        "Information fetched from the registry on 28 February 2025, yesterday; last updated by "
        "the sponsor: 10 February 2025, 3 weeks ago.",
        "",
        "1. Centre Léon Bérard — Lyon, France — 0.1 km",
        "   Status: Recruiting (the site's own status)",
        "   Position: city centre (registry geoPoint)",
        "",
        "Position unknown — may be near you:",
        "   - Hôpital Inconnu — Lieu-Inconnu, France",
        "     Investigator: Dr Anne Petit",
        "     Status: Recruiting (the site's own status)",
        "     Position: position unknown (the city is not in the gazetteer)",
        "",
        "Registry page: https://clinicaltrials.gov/study/NCT90000004",
        "Showing 1 of 3; use --limit to see more.",
    ]


@pytest.mark.parametrize("nct_id", [UNKNOWN_ID, UNVERIFIED_ID])
def test_an_unknown_trial_is_not_offered_as_recruiting(run, nct_id: str) -> None:  # type: ignore[no-untyped-def]
    """The registry's UNKNOWN, or a status unverified for two years: no site is offered;
    its wording names the last known status and the verification date."""
    result = run("nearest", "Lyon", "-t", nct_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        "No site of this trial is offered as recruiting. Status unknown (last known: "
        "recruiting, not verified since September 2022)."
    ) in lines
    assert "Use --all to see its sites." in lines
    assert not any(re.match(r"\d+\. ", line) for line in lines)


def test_with_all_an_unknown_trials_sites_say_status_unknown(run) -> None:  # type: ignore[no-untyped-def]
    """--all shows them, each with its last known status; the sponsor's old word is a caution
    (the copy itself is fresh)."""
    result = run("nearest", "Lyon", "-t", UNKNOWN_ID, "--all", "-n", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:11] == [
        "Nearest sites to Lyon (69), France, whatever their status",
        "Trial NCT90000001: Erectile Dysfunction in Good Prognosis Prostate Cancer: a Phase III "
        "Medico-economic Study Comparing Brachytherapy to Stereotactic Body Radiotherapy",
        "",
        "1. CH Lyon Sud (Lyon, France) — less than 1 km",
        "   Status unknown (last known: not yet recruiting, not verified since September 2022)",
        "   Ask for: Olivier CHAPET (investigator)",
        "   Contact: Sonia Gaudioz, sonia.gaudioz@chu-lyon.fr",
        "2. Hôpital Lyon Sud (Pierre-Bénite, France) — 5.6 km",
        "   Status unknown (last known: recruiting, not verified since September 2022)",
        "   Ask for: Olivier Chapet, Pr (investigator)",
        "   Contact (for the whole trial): Martine Gestin, PhD, +33(0)299253036, "
        "m.gestin@rennes.unicancer.fr",
    ]
    assert (
        "Caution: Last updated or verified by the sponsor: 14 September 2022, over 2 years ago. "
        "Confirm recruitment with the site."
    ) in result.stdout.splitlines()


def test_a_listing_pages_status_words_are_shown_as_the_page_gave_them(run) -> None:  # type: ignore[no-untyped-def]
    """'Open' is recruiting for the rule, and said as the page words it."""
    result = run("nearest", "Lyon", "-t", LISTING_ID, "--details", "-n", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[2] == "Trial status: “Open” (as the listing page says)"
    assert "   Status: “Open” (as the listing page says)" in lines
    assert lines[4] == (
        "Warning: This record dates from January 2019, about 6 years ago: recruitment may have "
        "changed since. Refresh it with `trialfinder sync NCT90000003` (needs network) and "
        "confirm with the site.")
    data = run_json(run, "nearest", "Lyon", "-t", LISTING_ID)
    assert data["trial"]["status"] is None and data["trial"]["status_text"] == "Open"
    assert data["trial"]["standing"] == "recruiting" and data["trial"]["status_from"] == "page"


def test_nearest_json_ranks_equally_near_sites_together(run) -> None:  # type: ignore[no-untyped-def]
    """One rank for the group, its size, null distance and rank for the unplaced site."""
    data = run_json(run, "nearest", "75005", "-t", SHARED_ID, "-n", "1")
    sites = [(s["facility"], s["rank"], s["equally_near"], s["distance_km"])
             for s in data["sites"]]
    assert sites == [
        ("Hôpital Cochin", 1, 2, 1.0), ("Hôpital Saint-Louis", 1, 2, 1.0),
        ("Hôpital Inconnu", None, 0, None),
    ]
    assert data["sites_matching"] == 3 and data["sites_unplaced"] == 1 and data["limit"] == 1
    unplaced = data["sites"][-1]
    assert unplaced["position"] == "position unknown (the city is not in the gazetteer)"
    assert unplaced["unplaced_reason"] == "not found"


def test_a_closed_site_at_a_shared_position_is_not_in_the_recruiting_group(run) -> None:  # type: ignore[no-untyped-def]
    """Hôpital Fermé shares the Paris position but is completed: only --all ranks it, with
    the others at that position."""
    data = run_json(run, "nearest", "75005", "-t", SHARED_ID, "--all")
    paris = [(s["facility"], s["rank"], s["equally_near"], s["standing"])
             for s in data["sites"] if s["city"] == "Paris"]
    assert paris == [
        ("Hôpital Cochin", 1, 3, "recruiting"), ("Hôpital Saint-Louis", 1, 3, "recruiting"),
        ("Hôpital Fermé", 1, 3, "not_recruiting"),
    ]


# -- every output agrees ------------------------------------------------------------------


def _key(site: dict) -> tuple[str, str]:
    return (site["facility"], site["city"])


RULE_FIELDS = ("status", "standing", "status_from", "status_words", "recruiting")


@pytest.mark.parametrize("nct_id", ALL_KINDS)
def test_outputs_agree_on_statuses_and_age(run, rules_store: Path, nct_id: str) -> None:  # type: ignore[no-untyped-def]
    """show, show --json, sites --json/--csv/text, nearest --json --all and the map give the
    same statuses, standings and staleness, trial and sites alike."""
    show = run_json(run, "show", nct_id)
    sites = run_json(run, "sites", "-t", nct_id)
    near = run_json(run, "nearest", "Lyon", "-t", nct_id, "--all", "-n", "1000")
    for field in (*RULE_FIELDS, "stale", "freshness"):
        assert show[field] == sites["trial"][field] == near["trial"][field], field
    assert show["warnings"] == sites["warnings"] == near["warnings"]

    show_text = run("show", nct_id).stdout.splitlines()
    assert f"Overall status: {show['status_words']}" in show_text
    assert [line for line in show_text if line.startswith("Warning: ")] == [
        f"Warning: {w}" for w in show["warnings"] if not w.startswith("Last updated")]

    listed = {_key(s): s for s in sites["sites"]}
    ranked = {_key(s): s for s in near["sites"]}
    assert listed.keys() == ranked.keys()
    for key, site in listed.items():
        assert {f: site[f] for f in RULE_FIELDS} == {f: ranked[key][f] for f in RULE_FIELDS}

    rows = list(csv.DictReader(io.StringIO(run("sites", "-t", nct_id, "--csv").stdout)))
    assert [(r["standing"], r["status"], r["status_words"]) for r in rows] == [
        (s["standing"], s["status"] or "", s["status_words"]) for s in sites["sites"]]

    sites_text = run("sites", "-t", nct_id).stdout
    for site in sites["sites"]:
        assert f"   {site['status_words']}" in sites_text or \
            f"   Status: {site['status_words']}" in sites_text

    view = trial_view(nct_id, rules_store)
    page = mapping.build_map(view)
    drawn = json.loads(re.search(r"^var tfData = (.*);$", page, re.MULTILINE).group(1))
    placed = [s for s in sites["sites"] if s["latitude"] is not None]
    assert [d["category"] for d in drawn["sites"]] == [s["standing"] for s in placed]


@pytest.mark.parametrize("nct_id", ALL_KINDS)
def test_the_plain_answer_lists_exactly_the_recruiting_sites(run, nct_id: str) -> None:  # type: ignore[no-untyped-def]
    """The text answer names the sites --json ranks, in the same ranks, and the unplaced
    ones under 'Position unknown'."""
    near = run_json(run, "nearest", "Lyon", "-t", nct_id, "-n", "1000")
    text = run("nearest", "Lyon", "-t", nct_id, "-n", "1000").stdout
    assert all(s["recruiting"] for s in near["sites"])
    for site in near["sites"]:
        name = f"{site['facility']} ({site['city']}, {site['country']})"
        assert name in text
        if site["rank"] is not None and site["equally_near"] == 1:
            assert f"{site['rank']}. {name} — " in text
    unplaced = [s for s in near["sites"] if s["rank"] is None]
    assert ("Position unknown — may be near you:" in text) == bool(unplaced)


@pytest.mark.parametrize("nct_id", [RECORDED_ID, SHARED_ID, UNKNOWN_ID])
def test_outputs_agree_on_criteria(run, rules_store: Path, nct_id: str) -> None:  # type: ignore[no-untyped-def]
    """show --json's lists, show's text and the referral sheet come from the one parser."""
    show = run_json(run, "show", nct_id)
    eligibility = show["eligibility"]
    assert eligibility["inclusion"] and eligibility["exclusion"]
    text = run("show", nct_id).stdout
    for item in eligibility["inclusion"] + eligibility["exclusion"]:
        first_words = " ".join(item.split(":")[0].split()[:4])
        assert first_words in " ".join(text.split()), item
    assert "\\<" not in text and "\\>" not in text
    sheet = html.unescape(referral_sheet(nct_id, "Lyon", rules_store))
    for item in eligibility["inclusion"][:5] + eligibility["exclusion"][:5]:
        assert item[:200].rstrip() in sheet, item
    sections = [(s["kind"], len(s["items"])) for s in eligibility["sections"]]
    assert sum(n for kind, n in sections if kind == "inclusion") >= len(eligibility["inclusion"])


def test_criteria_of_our_own_wording_in_show(run) -> None:  # type: ignore[no-untyped-def]
    """'Patients to include' / '### Non-inclusion criteria' / 'a)' under '2. … :'."""
    data = run_json(run, "show", SHARED_ID)
    assert data["eligibility"]["inclusion"] == ["Age >= 18", "GIST (resected)"]
    assert data["eligibility"]["exclusion"] == [
        "Pregnancy", "Prior imatinib: more than 3 years; stopped for toxicity"]
    lines = run("show", SHARED_ID).stdout.splitlines()
    start = lines.index("  Patients to include:")
    assert lines[start:start + 8] == [
        "  Patients to include:",
        "    - Age >= 18",
        "    - GIST (resected)",
        "  Non-inclusion criteria:",
        "    - Pregnancy",
        "    - Prior imatinib:",
        "        - more than 3 years",
        "        - stopped for toxicity",
    ]


def test_the_referral_sheet_says_equally_near_and_position_unknown(rules_store: Path) -> None:
    """The sheet's sites: one rank for the Paris pair, said; the unplaced one named."""
    sheet = html.unescape(referral_sheet(SHARED_ID, "75005", rules_store))
    assert re.findall(r"<h3>(\d)\. ([^<]+)</h3>", sheet) == [
        ("1", "Hôpital Cochin"), ("1", "Hôpital Saint-Louis"), ("2", "Centre Léon Bérard")]
    assert sheet.count("Equally near: 2 sites placed at one point, the centre of Paris") == 2
    assert "Position unknown — may be near you: Hôpital Inconnu (Lieu-Inconnu)." in sheet
    unknown = html.unescape(referral_sheet(UNKNOWN_ID, "Lyon", rules_store))
    assert ("No site of this trial is offered as recruiting. Status unknown (last known: "
            "recruiting, not verified since September 2022).") in unknown


def test_the_day_decides_the_two_year_rule() -> None:
    """The same record is recruiting in 2025 and status unknown in 2027: the rules read
    `today`, never the date the record was saved."""
    from trialfinder.queries import TrialView

    trial = shared_trial()
    assert TrialView(trial, today=date(2025, 3, 1)).recruitment.recruiting
    later = TrialView(trial, today=date(2027, 3, 2))
    assert later.recruitment.standing.value == "unknown" and later.stale


def test_presentation_does_not_import_the_http_client() -> None:
    """render, summary, referral, mapping and queries never load registry.py (or requests)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import trialfinder.render, trialfinder.summary, trialfinder.referral\n"
        "import trialfinder.mapping, trialfinder.queries, trialfinder.criteria\n"
        "print('trialfinder.registry' in sys.modules, 'requests' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False False"
