"""The command line as a user meets it: exact output, one-line errors, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from trialfinder.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
SEED = FIXTURES / "seed" / "000_6aeb1dc53d5a47c7.txt"
SEED_HTML = FIXTURES / "seed" / "NCT02260505-listing.html"
STALE = (
    "Warning: This record dates from January 2019, more than six months ago: recruitment may "
    "have changed. Refresh it with `trialfinder sync NCT02260505` (needs network) and confirm "
    "with the site."
)
HEADER = [
    "NCT02260505: Efficiency of Imatinib Treatment Maintenance or Interruption After 3 Years of "
    "Adjuvant Treatment in Patients With Gastrointestinal Stromal Tumours (GIST)",
    "Recorded trial status: Recruiting",
    "Source: CenterWatch-style listing page, as of January 2019",
    STALE,
]
TRIAL_STATUS = "Recruiting (the trial's status; the record gives none for this site)"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner with no store (so the bundled record answers) and no network settings."""
    monkeypatch.setenv("TRIALFINDER_DB", str(tmp_path / "store.sqlite"))
    monkeypatch.delenv("TRIALFINDER_ONLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_nearest_lyon_lists_centre_leon_berard_first(runner: CliRunner) -> None:
    """`nearest Lyon` answers offline from the bundled record, with source, date and warning."""
    result = invoke(runner, "nearest", "Lyon", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Nearest sites recorded as recruiting in January 2019, to Lyon (69), France",
        *HEADER,
        "",
        "1. Centre Léon Bérard — Lyon, France — 0.0 km",
        "   Investigator: Jean-Yves BLAY, Pr",
        f"   Status: {TRIAL_STATUS}",
        "   Position: city centre (bundled gazetteer)",
        "2. Institut de cancérologie LUCIEN NEUWIRTH — Saint-priest-en-jarez, France — 47.7 km",
        "   Investigator: Olivier COLLARD, Dr",
        f"   Status: {TRIAL_STATUS}",
        "   Position: city centre (bundled gazetteer)",
        "",
        "Showing 2 of 16; use --limit to see more.",
    ]
    assert result.stderr == ""


def test_nearest_postal_code_42000_puts_saint_priest_first(runner: CliRunner) -> None:
    """A Saint-Étienne postal code finds the Saint-Priest-en-Jarez centre first."""
    result = invoke(runner, "nearest", "42000", "-n", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Nearest sites recorded as recruiting in January 2019, to Saint-Étienne (42), 42000, "
        "France"
    )
    assert lines[6] == (
        "1. Institut de cancérologie LUCIEN NEUWIRTH — Saint-priest-en-jarez, France — 4.6 km"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["nearest", "Atlantis"],
            1,
            "Error: No recruiting site of NCT02260505 within 1,500 km of Atlantis, South Africa: "
            "the nearest, Centre Hospitalier Universitaire La Timone (Marseille), is 8,650 km "
            "away. Check the place with `trialfinder where`, or use --max-km to look farther.",
        ),
        (
            ["nearest", "Zzyzxville"],
            1,
            None,
        ),
        (
            ["nearest", "   "],
            1,
            "Error: No place given: type a town (e.g. Lyon), a French postal code (e.g. 69003) "
            "or both",
        ),
        (
            ["nearest", "Lyon", "--trial", "NCT123"],
            2,
            "Error: 'NCT123' is not a ClinicalTrials.gov identifier (expected NCT and 8 digits, "
            "e.g. NCT02260505)",
        ),
        (
            ["nearest", "Lyon", "--trial", "NCT99999999"],
            1,
            "Error: No record of NCT99999999 here; fetch it with `trialfinder sync NCT99999999` "
            "(needs network)",
        ),
        (
            ["nearest", "Lyon", "--limit", "0"],
            2,
            "Error: Invalid value for '--limit' / '-n': 0 is not in the range x>=1.",
        ),
        (["nearest", "Lyon", "--limit", "many"], 2, None),
        (
            ["nearest", "Lyon", "--max-km", "nan"],
            2,
            "Error: --max-km must be a positive number of kilometres, not nan",
        ),
        (["nearest"], 2, "Error: Missing argument 'PLACE'."),
        (["nearest", "Lyon", "--bogus"], 2, "Error: No such option: --bogus"),
        (["sites", "--json", "--csv"], 2, None),
        (["listing", "/nonexistent/page.html"], 2, None),
    ],
)
def test_bad_input_gets_one_line_and_an_exit_code(
    runner: CliRunner, args: list[str], code: int, message: str | None
) -> None:
    """Bad input: one `Error: …` line on stderr, nothing on stdout, no traceback."""
    result = invoke(runner, *args)
    assert result.exit_code == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    if message is not None:
        assert lines[0] == message


def test_overseas_patients_are_shown_the_trials_french_centres(runner: CliRunner) -> None:
    """No distance limit in a country where the trial has sites: La Réunion is France."""
    result = invoke(runner, "nearest", "97400", "-n", "1")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].endswith("to Saint-Denis (974), 97400, France")
    assert "— Marseille, France — 8776.5 km" in result.stdout


def test_max_km_reaches_farther(runner: CliRunner) -> None:
    """--max-km widens the reach for a patient far away."""
    result = invoke(runner, "nearest", "Atlantis", "--max-km", "10000", "-n", "1")
    assert result.exit_code == 0
    assert "— 8650.0 km" in result.stdout


def test_nearest_json_contract(runner: CliRunner) -> None:
    """`nearest --json` prints one object with place, trial and sites nearest first."""
    result = invoke(runner, "nearest", "Lyon", "--json", "--limit", "16")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"name", "country", "latitude", "longitude"} <= data["place"].keys()
    assert data["place"]["name"] == "Lyon" and data["place"]["country"] == "FR"
    assert data["trial"]["nct_id"] == "NCT02260505"
    assert data["trial"]["status"] == "RECRUITING"
    assert data["trial"]["as_of"] == "2019-01"
    assert data["trial"]["source"] == "CenterWatch-style listing page"
    sites = data["sites"]
    assert len(sites) == 16
    required = {"facility", "city", "country", "status", "distance_km", "latitude", "longitude",
                "precision", "investigator"}
    assert all(required <= s.keys() for s in sites)
    distances = [s["distance_km"] for s in sites]
    assert distances == sorted(distances)
    assert sites[0]["facility"] == "Centre Léon Bérard"
    assert sites[0]["investigator"] == "Jean-Yves BLAY, Pr"
    assert sites[0]["precision"] == "city centre"
    assert data["warnings"][0].startswith("This record dates from January 2019")


def test_sites_json_and_csv_list_every_site(runner: CliRunner) -> None:
    """`sites` lists all 16 centres, as JSON and as CSV that reads back with accents intact."""
    result = invoke(runner, "sites", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert len(data["sites"]) == 16
    assert all("distance_km" not in s for s in data["sites"])
    besancon = next(s for s in data["sites"] if s["city"] == "Besançon")
    assert besancon["facility"] == "CHRU de Besançon - Hôpital Minjoz"
    assert besancon["facility_raw"] == "CHRU de Besan on - H pital Minjoz"

    result = invoke(runner, "sites", "--csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 16
    assert rows[12]["facility"] == "Centre Léon Bérard"
    assert rows[12]["investigators"] == "Jean-Yves BLAY, Pr"
    assert rows[12]["precision"] == "city centre"


def test_sites_text_says_source_and_counts(runner: CliRunner) -> None:
    """The text listing starts with the provenance and the number of sites."""
    result = invoke(runner, "sites")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:4] == HEADER
    assert lines[4] == "16 sites"


@pytest.mark.parametrize("page", [SEED, SEED_HTML])
def test_listing_json_is_the_record_scrape_stores(runner: CliRunner, page: Path) -> None:
    """`listing PATH --json` prints the record: the page's status words, 16 sites with names
    repaired (raw kept) and placed, the file's name as source."""
    result = invoke(runner, "listing", str(page), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["nct_id"] == "NCT02260505"
    assert (data["status"], data["status_text"]) == (None, "Open")
    assert data["source"]["as_of"] == "2019-01"
    assert data["source"]["url"] == page.name
    assert len(data["sites"]) == 16
    lyon = next(s for s in data["sites"] if s["city"] == "Lyon")
    assert (lyon["facility"], lyon["facility_raw"]) == ("Centre Léon Bérard", "Centre L on B rard")
    assert (lyon["latitude"], lyon["precision"]) == (pytest.approx(45.75, abs=0.01), "city centre")


def test_listing_of_the_bundled_source_prints_the_bundled_record(runner: CliRunner) -> None:
    """The bundled record is exactly what `listing` prints for its source: no special case."""
    root = Path(__file__).resolve().parents[1]
    result = invoke(runner, "listing",
                    str(root / "data" / "sources" / "NCT02260505-listing-2019-01.txt"), "--json")
    assert result.exit_code == 0
    committed = (root / "data" / "trials" / "NCT02260505.json").read_text(encoding="utf-8")
    assert result.stdout == committed


def test_listing_text_starts_with_the_trial(runner: CliRunner) -> None:
    """`listing PATH` prints the trial's sites as `sites` does."""
    result = invoke(runner, "listing", str(SEED_HTML))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == HEADER[0]
    assert "16 sites" in lines


def test_listing_a_url(runner: CliRunner, httpserver: HTTPServer) -> None:
    """`listing URL` fetches the page and prints the same record, the URL as its source."""
    httpserver.expect_request("/trial").respond_with_data(
        SEED_HTML.read_bytes(), content_type="text/html; charset=utf-8"
    )
    result = invoke(runner, "listing", httpserver.url_for("/trial"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"]["url"] == httpserver.url_for("/trial")
    assert data["source"]["retrieved"] is not None
    assert [s["city"] for s in data["sites"]][:3] == ["Marseille", "Marseille", "Besançon"]


def test_listing_refuses_bad_sources_in_one_line(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a listing, binary, too large, unreadable: exit 2; a URL that fails: exit 1.
    One line each, nothing on stdout."""
    httpserver.expect_request("/gone").respond_with_data("no such page", status=404)
    not_listing = tmp_path / "page.txt"
    not_listing.write_text("Hello\n<script>alert(1)</script>\n", encoding="utf-8")
    pdf = tmp_path / "page.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + bytes(range(256)))
    cases = [
        ([str(not_listing)], 2, "Error: page.txt is not a trial listing page: it has no "
         "ClinicalTrials.gov identifier (expected 'Clinical Study Identifier: NCT' and 8 digits)"),
        ([str(pdf)], 2, f"Error: {pdf} is a PDF document, not a listing page: save the page as "
         "HTML or as text"),
        (["/dev/zero"], 2, "Error: /dev/zero is larger than 20 MB, the limit for a listing page "
         "(set TRIALFINDER_LISTING_MAX_BYTES to read larger pages)"),
        ([str(tmp_path)], 2, f"Error: Cannot read {tmp_path}: Is a directory"),
        ([httpserver.url_for("/gone")], 1,
         f"Error: The listing page {httpserver.url_for('/gone')} answered HTTP 404 NOT FOUND"),
        (["ftp://example.org/x"], 2, "Error: ftp://example.org/x is not an http(s) URL: give a "
         "page's web address or a saved file"),
    ]
    for args, code, message in cases:
        result = invoke(runner, "listing", *args)
        assert (result.exit_code, result.stdout, result.stderr) == (code, "", message + "\n")
    monkeypatch.setenv("TRIALFINDER_LISTING_MAX_BYTES", "1000")
    result = invoke(runner, "listing", str(SEED))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {SEED} is larger than 1,000 bytes, the limit")
    monkeypatch.setenv("TRIALFINDER_LISTING_MAX_BYTES", "a lot")
    result = invoke(runner, "listing", str(SEED))
    assert (result.exit_code, result.stderr) == (
        2, "Error: TRIALFINDER_LISTING_MAX_BYTES='a lot' is not a positive number of bytes "
        "(e.g. 20000000)\n",
    )


def test_help_mentions_privacy(runner: CliRunner) -> None:
    """The top-level help says the patient's place stays on the machine."""
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "nothing about you leaves it unless a command is given --online" in " ".join(
        result.stdout.split()
    )


def test_sync_then_nearest_skips_a_closed_site_and_changes_show_it(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """End to end: sync → nearest answers from the registry → a changed record → changes."""
    base = httpserver.url_for("/api/v2")
    db = tmp_path / "synced.sqlite"
    v1 = (FIXTURES / "ctgov" / "built_NCT02260505_v1.json").read_text(encoding="utf-8")
    v2 = (FIXTURES / "ctgov" / "built_NCT02260505_v2.json").read_text(encoding="utf-8")

    httpserver.expect_oneshot_request("/api/v2/studies/NCT02260505").respond_with_data(
        v1, content_type="application/json")
    result = invoke(runner, "sync", "--db", str(db), "--registry-url", base)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("NCT02260505 new")

    result = invoke(runner, "nearest", "Lyon", "--db", str(db), "-n", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    source = next(line for line in lines if line.startswith("Source: "))
    assert source.startswith("Source: ClinicalTrials.gov API v2, as of 2023-05-02 (fetched ")
    assert lines[0] == "Nearest recruiting sites to Lyon (69), France"
    # Fetched just now, but the sponsor's last update is old: no "sync again", a caution.
    assert "Warning: The registry record was last updated on 2023-05-02" in result.stdout
    first = lines.index("") + 1
    assert lines[first].startswith("1. Centre Léon Bérard — Lyon, France")
    assert "   Status: Recruiting" in lines

    httpserver.expect_oneshot_request("/api/v2/studies/NCT02260505").respond_with_data(
        v2, content_type="application/json")
    result = invoke(runner, "sync", "--db", str(db), "--registry-url", base)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("NCT02260505 updated")

    result = invoke(runner, "nearest", "Lyon", "--db", str(db), "-n", "1")
    lines = result.stdout.splitlines()
    first = lines.index("") + 1
    # Centre Léon Bérard no longer recruits: the next one, 47 km away, comes first.
    assert lines[first].startswith("1. Institut de Cancérologie Lucien Neuwirth")
    result = invoke(runner, "nearest", "Lyon", "--db", str(db), "-n", "1", "--all")
    assert "Active, not recruiting" in result.stdout

    result = invoke(runner, "changes", "--db", str(db), "--json")
    assert result.exit_code == 0
    kinds = {(c["kind"], c["facility"]) for c in json.loads(result.stdout)}
    assert ("site_status_changed", "Centre Léon Bérard") in kinds
    assert ("site_removed", "Hôpital Saint-Antoine") in kinds
