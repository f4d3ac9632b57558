"""`trialfinder show` and the eligibility Markdown; `sites --csv/--json` for referrals."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from referral_fixtures import fill_store
from seed_listing import seed_listing_trial
from trialfinder.cli import app
from trialfinder.models import Contact, Precision, Site, Status
from trialfinder.queries import load_view
from trialfinder.store import Store
from trialfinder.summary import NOT_IN_RECORD, summary_json

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    fill_store(path)
    return path


def test_show_text_on_a_recorded_record(db: Path) -> None:
    """The clinician's summary gives phase, status, sponsor, criteria as lists and contacts."""
    result = runner.invoke(app, ["show", "NCT03830788", "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("NCT03830788: Erectile Dysfunction") and "(TEMPOS)" in lines[0]
    for expected in (
        "Phase: Not applicable",
        "Overall status: Recruiting",
        "Sponsor: Center Eugene Marquis",
        "Conditions: Prostate Cancer",
        "  Sex: Male · Minimum age: 18 Years · Healthy volunteers: no",
        "  Main inclusion criteria:",
        "    - Biopsy proven prostate adenocarcinoma,",
        "  Main exclusion criteria:",
        "    - Androgen deprivation therapy,",
        "  - Martine Gestin, PhD, +33(0)299253036, m.gestin@rennes.unicancer.fr",
        "Registry: https://clinicaltrials.gov/study/NCT03830788",
        "Source: ClinicalTrials.gov API v2, as of 2024-02-07",
    ):
        assert expected in lines, expected
    assert "PSA <10 ng/ml" in result.output and "\\<" not in result.output
    # A copy with no fetch date is as old as its date: a warning, in plain words.
    assert (
        "Warning: This record dates from 7 February 2024, about a year ago: recruitment may "
        "have changed since. Refresh it with `trialfinder sync NCT03830788` (needs network) "
        "and confirm with the site."
    ) in lines


def test_show_json_contract(db: Path) -> None:
    """show --json carries the keys other tools rely on."""
    result = runner.invoke(app, ["show", "NCT06620835", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["nct_id"] == "NCT06620835"
    assert data["status"] == "RECRUITING"
    assert data["phase"] == "Phase 2"
    assert data["sponsor"] == "Groupe Francais De Pneumo-Cancerologie"
    assert data["conditions"] == ["NSCLC"]
    assert set(data["eligibility"]) >= {"criteria", "inclusion", "exclusion", "minimum_age", "sex"}
    assert data["eligibility"]["minimum_age"] == "18 Years"
    assert data["eligibility"]["inclusion"][0] == "Age 18 years or older at diagnosis."
    assert data["eligibility"]["exclusion"]
    assert data["contacts"] and data["contacts"][0]["name"]
    assert data["as_of"] == "2025-07-29"
    assert data["source"] == "ClinicalTrials.gov API v2"


def test_listing_record_says_what_it_lacks(tmp_path: Path) -> None:
    """A listing record has no phase or criteria: say so and point to sync, not a blank."""
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.save_trial(seed_listing_trial(), None)
    result = runner.invoke(app, ["show", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Phase: {NOT_IN_RECORD}" in result.output.splitlines()
    assert f"Eligibility: {NOT_IN_RECORD}" in result.output.splitlines()
    data = summary_json(load_view("NCT02260505", path, today=date(2019, 2, 1)))
    assert "eligibility" in data["not_in_record"] and data["eligibility"]["criteria"] is None
    assert data["stale"] is False


def test_show_unknown_trial_is_one_line_error(tmp_path: Path) -> None:
    """A trial nobody stored is an error on one line with exit 1."""
    result = runner.invoke(app, ["show", "NCT09999999", "--db", str(tmp_path / "x.sqlite")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: No record of NCT09999999")


def test_sites_csv_reads_back_with_accents_contacts_one_row_a_site(db: Path) -> None:
    """The CSV opens as one row a site with accents, investigators, phones and e-mails."""
    result = runner.invoke(app, ["sites", "-t", "NCT06620835", "--csv", "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 27
    by_facility = {r["facility"]: r for r in rows}
    assert "Centre Leon Bérard" in by_facility
    statuses = {r["status"] for r in rows}
    assert "WITHDRAWN" in statuses
    assert all(r["nct_id"] == "NCT06620835" for r in rows)
    with_phone = [r for r in rows if r["contact_phones"]]
    assert with_phone and all(r["contacts"] for r in with_phone)
    assert all(set(r) >= {"facility", "city", "state", "zip", "country", "status",
                          "investigators", "contact_names", "contact_phones",
                          "contact_emails", "latitude", "longitude", "precision"} for r in rows)


def test_sites_csv_neutralises_formulas(tmp_path: Path) -> None:
    """Cells a spreadsheet would run as formulas start with an apostrophe; numbers do not."""
    trial = seed_listing_trial()
    hostile = Site(
        facility='=HYPERLINK("http://evil.example","click")', city="Lyon", country="France",
        status=Status.RECRUITING, latitude=44.84, longitude=-0.58, precision=Precision.FACILITY,
        contacts=(Contact("@Dr Evil", role="CONTACT", phone="+33 4 78 00 00 00"),),
    )
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.save_trial(trial.replace(sites=(hostile,)), None)
    result = runner.invoke(app, ["sites", "--csv", "--db", str(path)])
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(io.StringIO(result.output)))
    assert row["facility"] == "'" + hostile.facility
    assert row["contact_names"] == "'@Dr Evil"
    assert row["contact_phones"] == "'+33 4 78 00 00 00"
    assert row["longitude"] == "-0.58"
