"""The command line as a user meets it: exact output, one-line errors, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from trialfinder.cli import app
from trialfinder.models import Trial

FIXTURES = Path(__file__).parent / "fixtures"
SEED = FIXTURES / "seed" / "000_6aeb1dc53d5a47c7.txt"
SEED_HTML = FIXTURES / "seed" / "NCT02260505-listing.html"
STALE = (
    "Warning: This record dates from January 2019, about 6 years ago: recruitment may have "
    "changed since. Refresh it with `trialfinder sync NCT02260505` (needs network) and confirm "
    "with the site."
)
TITLE = (
    "Efficiency of Imatinib Treatment Maintenance or Interruption After 3 Years of Adjuvant "
    "Treatment in Patients With Gastrointestinal Stromal Tumours (GIST)"
)
HEADER = [
    f"NCT02260505: {TITLE}",
    "Trial status: “Open” (as the listing page says)",
    "Source: CenterWatch-style listing page, as of January 2019",
    STALE,
]
NO_CONTACT_THESE = (
    "No phone or e-mail in the record for these centres: ask your oncologist to contact the "
    "investigator (registry page below)."
)


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
    """`nearest Lyon` answers offline from the bundled record: the plain answer first (site,
    distance, whom to ask for, how to reach them, how old the information is)."""
    result = invoke(runner, "nearest", "Lyon", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Nearest sites recorded as recruiting in January 2019, to Lyon (69), France",
        f"Trial NCT02260505: {TITLE}",
        "",
        "1. Centre Léon Bérard (Lyon, France) — less than 1 km",
        "   Ask for: Jean-Yves BLAY, Pr (investigator)",
        "2. Institut de cancérologie LUCIEN NEUWIRTH (Saint-priest-en-jarez, France) — 47.7 km",
        "   Ask for: Olivier COLLARD, Dr (investigator)",
        "",
        NO_CONTACT_THESE,
        STALE,
        "Registry page: https://clinicaltrials.gov/study/NCT02260505",
        "Showing 2 of 16; use --limit to see more.",
    ]
    assert result.stderr == ""


def test_nearest_details_say_where_statuses_and_positions_come_from(runner: CliRunner) -> None:
    """`nearest --details` adds the provenance, each status's source and each position."""
    result = invoke(runner, "nearest", "Lyon", "--limit", "1", "--details")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Nearest sites recorded as recruiting in January 2019, to Lyon (69), France",
        *HEADER,
        "",
        "1. Centre Léon Bérard — Lyon, France — 0.0 km",
        "   Investigator: Jean-Yves BLAY, Pr",
        "   Status: “Open” (as the listing page says)",
        "   Position: city centre (city; bundled gazetteer)",
        "",
        "Registry page: https://clinicaltrials.gov/study/NCT02260505",
        "Showing 1 of 16; use --limit to see more.",
    ]


def test_nearest_postal_code_42000_puts_saint_priest_first(runner: CliRunner) -> None:
    """A Saint-Étienne postal code finds the Saint-Priest-en-Jarez centre first."""
    result = invoke(runner, "nearest", "42000", "-n", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Nearest sites recorded as recruiting in January 2019, to Saint-Étienne (42), 42000, "
        "France"
    )
    assert lines[3] == (
        "1. Institut de cancérologie LUCIEN NEUWIRTH (Saint-priest-en-jarez, France) — 4.6 km"
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
    assert "1. Equally near, 8,776.5 km: 2 sites placed at one point, the centre of Marseille " \
        "(the record gives no street address)" in result.stdout.splitlines()


def test_max_km_reaches_farther(runner: CliRunner) -> None:
    """--max-km widens the reach for a patient far away."""
    result = invoke(runner, "nearest", "Atlantis", "--max-km", "10000", "-n", "1")
    assert result.exit_code == 0
    assert "1. Equally near, 8,650.0 km" in result.stdout
    # --limit 1 fell in a group of two equally near sites: both are shown, and it is said.
    assert "The limit of 1 fell among equally near sites: all 2 are shown." in result.stdout


def test_nearest_json_contract(runner: CliRunner) -> None:
    """`nearest --json` prints one object with place, trial and sites nearest first."""
    result = invoke(runner, "nearest", "Lyon", "--json", "--limit", "16")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"name", "country", "latitude", "longitude"} <= data["place"].keys()
    assert data["place"]["name"] == "Lyon" and data["place"]["country"] == "FR"
    assert data["trial"]["nct_id"] == "NCT02260505"
    # The bundled listing's status is the page's own words, not a registry status.
    assert (data["trial"]["status"], data["trial"]["status_text"]) == (None, "Open")
    assert data["trial"]["standing"] == "recruiting"
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
    assert sites[0]["standing"] == "recruiting" and sites[0]["status_from"] == "page"
    ranks = [s["rank"] for s in sites]
    assert ranks == sorted(ranks) and ranks[0] == 1
    # Paris (2), Marseille (2): sites at one city centre share one rank.
    shared = [s for s in sites if s["equally_near"] > 1]
    assert {s["city"] for s in shared} == {"Paris", "Marseille"}
    for site in shared:
        assert [s["rank"] for s in shared if s["city"] == site["city"]] == [site["rank"]] * 2


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


def test_no_arguments_print_the_help(runner: CliRunner) -> None:
    """`trialfinder` alone: the help on stdout, exit 0, nothing on stderr."""
    result = invoke(runner)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith("Usage: trialfinder [OPTIONS] COMMAND [ARGS]...")
    assert "nearest" in result.stdout


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

    result = invoke(runner, "nearest", "Lyon", "--db", str(db), "-n", "1", "--details")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    source = next(line for line in lines if line.startswith("Source: "))
    assert source.startswith("Source: ClinicalTrials.gov API v2, as of 2023-05-02 (fetched ")
    assert lines[0] == "Nearest recruiting sites to Lyon (69), France"
    # Fetched just now, but the sponsor's last update is old: no "sync again", a caution.
    assert (
        "Caution: Last updated or verified by the sponsor: 2 May 2023, almost 2 years ago. "
        "Confirm recruitment with the site."
    ) in lines
    first = lines.index("") + 1
    assert lines[first].startswith("1. Centre Léon Bérard — Lyon, France")
    assert "   Status: Recruiting (the site's own status)" in lines

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
    assert lines[first + 1] == "   Ask for: Olivier Collard, MD (investigator)"
    result = invoke(runner, "nearest", "Lyon", "--db", str(db), "-n", "1", "--all")
    assert "Active, not recruiting" in result.stdout

    result = invoke(runner, "changes", "--db", str(db), "--json")
    assert result.exit_code == 0
    kinds = {(c["kind"], c["facility"]) for c in json.loads(result.stdout)}
    assert ("site_status_changed", "Centre Léon Bérard") in kinds
    assert ("site_removed", "Hôpital Saint-Antoine") in kinds


# --- files the commands write (trialfinder.files) -----------------------------------------------


@pytest.fixture
def no_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a refused output gets as far as a write (real devices are at stake)."""
    from trialfinder import files

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"write attempted: {args!r}")

    monkeypatch.setattr(files, "_replace", forbidden)


def _store(path: Path) -> Path:
    from trialfinder.store import Store

    with Store(path):
        pass
    return path


def _one_error(result, code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    assert (result.exit_code, result.stdout, result.stderr) == (code, "", f"Error: {message}\n")


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", ".lock"])
def test_map_never_replaces_the_store(
    runner: CliRunner, tmp_path: Path, suffix: str, no_write: None
) -> None:
    """`map --db S --output S` (or S-wal, S-shm, S.lock): exit 2, one line, the store intact."""
    from trialfinder.store import Store

    db = _store(tmp_path / "s.sqlite")
    out = f"{db}{suffix}"
    result = invoke(runner, "map", "--db", str(db), "--output", out)
    _one_error(result, 2, f"Will not write {out}: it is the trialfinder store, or a file the "
               "store keeps beside it")
    with Store(db) as store:
        assert store.schema_version >= 3


@pytest.mark.parametrize(
    ("command", "option"),
    [(["map"], "--output"), (["referral", "NCT02260505", "--near", "Lyon"], "--output"),
     (["nearest", "Lyon"], "--map-output")],
)
def test_every_command_refuses_a_device_a_fifo_and_a_folder(
    runner: CliRunner, tmp_path: Path, command: list[str], option: str, no_write: None
) -> None:
    """map, referral and nearest --map: same refusals, same words, exit 2, nothing printed."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, what in [("/dev/null", "a character device"), (str(fifo), "a named pipe (FIFO)"),
                         (str(tmp_path), "a folder")]:
        result = invoke(runner, *command, option, target)
        _one_error(result, 2, f"Will not write {target}: it is {what}, not a file")


def test_an_output_in_a_missing_folder_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """A mistyped folder is not created: one line naming it, exit 2."""
    out = tmp_path / "Dcuments" / "map.html"
    result = invoke(runner, "map", "--output", str(out))
    _one_error(result, 2, f"Will not write {out}: the folder {out.parent} does not exist "
               "(create it first)")
    assert not out.parent.exists()


def test_map_through_a_symlink_replaces_its_target(runner: CliRunner, tmp_path: Path) -> None:
    """`--output link` writes the link's target (keeping its mode) and prints the link."""
    target = tmp_path / "shared" / "map.html"
    target.parent.mkdir()
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "latest.html"
    link.symlink_to(target)
    result = invoke(runner, "map", "--output", str(link))
    assert (result.exit_code, result.stdout) == (0, f"{link}\n")
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_files_naming_the_patients_place_are_private(runner: CliRunner, tmp_path: Path) -> None:
    """Maps with the patient's place and referral sheets are 0600; a map of the sites alone
    follows the umask."""
    old = os.umask(0o022)
    try:
        written = {
            name: Path(invoke(runner, *args).stdout.splitlines()[-1].removeprefix("Map: "))
            for name, args in {
                "map": ["map"],
                "map --near": ["map", "--near", "Lyon"],
                "map --near -o": ["map", "--near", "Lyon", "-o", "chosen.html"],
                "nearest --map": ["nearest", "Lyon", "--map-output", "nearest.html"],
                "referral": ["referral", "NCT02260505", "--near", "Lyon"],
            }.items()
        }
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((tmp_path / path).stat().st_mode)
             for name, path in written.items()}
    assert modes == {"map": 0o644, "map --near": 0o600, "map --near -o": 0o600,
                     "nearest --map": 0o600, "referral": 0o600}


# --- registry text never drives the terminal (trialfinder.terminal) ----------------------------

C0 = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]
CONTROLS = frozenset(C0 + [chr(c) for c in range(0x7F, 0xA0)]
                     + [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))])
ATTACKS = ["\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\x9b31m", "good\rEVIL", "\u202eLIVE\u202c",
           "\u2066x\u2069", "\x1bP+q\x1b\\", "\x00\x7f\x85", "\x1b[31m"]
HOSTILE_NCT = "NCT09999999"


def hostile_trial(text: str, status: str = "RECRUITING") -> Trial:
    """A record whose every text field carries ``text``, its sites placed around Lyon."""
    from trialfinder.models import Arm, Contact, Eligibility, Precision, Site, Source, Status

    def words(n: int) -> str:
        return f"{text} {n}{text}"

    contacts = (
        Contact(name=words(1), role="PRINCIPAL_INVESTIGATOR", title=words(2)),
        Contact(name=words(3), role="CONTACT", phone=words(4), email=words(5),
                affiliation=words(6)),
    )
    sites = tuple(
        Site(facility=words(10 + i), city=words(20 + i), country=words(30 + i),
             status=Status(status) if i else None, state=words(40 + i), zip=words(50 + i),
             latitude=45.75 + i / 100, longitude=4.85, precision=Precision.CITY,
             coordinate_source=words(60 + i), contacts=contacts, facility_raw=words(70 + i))
        for i in range(3)
    )
    return Trial(
        nct_id=HOSTILE_NCT, title=words(80), brief_title=words(81), acronym=words(82),
        source=Source(kind="registry", description=words(83), as_of="2025-01",
                      url=words(84), retrieved="2025-02-01T00:00:00+00:00"),
        status=Status.RECRUITING, brief_summary=words(85), detailed_description=words(86),
        last_update="2025-01-15", phases=(words(87),), sponsor=words(88),
        conditions=(words(89),), keywords=(words(90),),
        arms=(Arm(label=words(91), type=words(92), description=words(93),
                  interventions=(words(94),)),),
        eligibility=Eligibility(criteria=f"{words(95)}\nInclusion criteria:\n* {words(96)}\n"
                                         f"Exclusion criteria:\n* {words(97)}\n",
                                minimum_age=words(98), maximum_age=words(99), sex=words(100)),
        central_contacts=contacts, officials=contacts, secondary_ids=(words(101),),
        start_date="2024-01", verified_date="2025-01", study_type=words(102),
        sites=sites,
    )


def _commands(db: Path, text: str) -> list[list[str]]:
    d = ["--db", str(db)]
    t = ["--trial", HOSTILE_NCT]
    return [
        ["nearest", "Lyon", *t, *d, "--all"], ["nearest", "Lyon", *t, *d, "--all", "--json"],
        ["sites", *t, *d], ["sites", *t, *d, "--json"], ["sites", *t, *d, "--csv"],
        ["show", HOSTILE_NCT, *d], ["show", HOSTILE_NCT, *d, "--json"],
        ["changes", *d], ["changes", *d, "--json"],
        ["geocode", *t, *d], ["geocode", *t, *d, "--json"],
        ["search", "--near", "Lyon", "--status", "all", *d],
        ["search", "--near", "Lyon", "--status", "all", *d, "--json"],
        # the text typed by the user comes back in errors
        ["nearest", text, *t, *d], ["where", text], ["sites", "--trial", text, *d],
        ["nearest", "Lyon", "--limit", text], [text],
    ]


def _assert_clean(result, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    for name, out in (("stdout", result.stdout), ("stderr", result.stderr)):
        leaked = sorted(CONTROLS & set(out))
        assert not leaked, f"{args[:2]} {name} holds {leaked!r}: {out[:300]!r}"
    assert "Traceback" not in result.output


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.lists(st.one_of(st.sampled_from(ATTACKS), st.sampled_from(sorted(CONTROLS)),
                               st.text(max_size=4)), min_size=1, max_size=8).map("".join))
def test_no_output_of_any_command_holds_a_control_character(
    runner: CliRunner, tmp_path: Path, text: str
) -> None:
    """A record full of control characters, escape sequences and bidi overrides: no command's
    stdout or stderr (errors included) carries one; JSON keeps the exact text. The runner
    does not strip ANSI codes (color=True, as on a terminal): only our filter stands."""
    from trialfinder.store import Store

    db = tmp_path / "hostile.sqlite"
    with Store(db) as store:
        store.save_trial(hostile_trial(text, "RECRUITING"), None)
        store.save_trial(hostile_trial(text, "COMPLETED"), None)  # a change to show
    for args in _commands(db, text):
        result = runner.invoke(app, args, color=True)
        _assert_clean(result, args)
        if "--json" in args and args[0] in ("nearest", "sites"):
            assert result.exit_code == 0, result.output
            facilities = {s["facility"] for s in json.loads(result.stdout)["sites"]}
            assert facilities == {site.facility for site in hostile_trial(text).sites}


def test_the_terminal_title_attack_is_neutralised(runner: CliRunner, tmp_path: Path) -> None:
    """The reported attack, exactly: OSC 0 in a facility name shows as U+FFFD, not a title."""
    from trialfinder.store import Store

    db = tmp_path / "hostile.sqlite"
    with Store(db) as store:
        store.save_trial(hostile_trial("\x1b]0;pwned\x07"), None)
    result = runner.invoke(app, ["sites", "--trial", HOSTILE_NCT, "--db", str(db)], color=True)
    assert result.exit_code == 0
    assert "\ufffd]0;pwned\ufffd 10\ufffd]0;pwned\ufffd" in result.stdout
    csv_out = runner.invoke(app, ["sites", "--trial", HOSTILE_NCT, "--db", str(db), "--csv"])
    rows = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert rows[0]["facility"] == "\ufffd]0;pwned\ufffd 10\ufffd]0;pwned\ufffd"


def test_a_hostile_listing_page_is_shown_harmless(runner: CliRunner, tmp_path: Path) -> None:
    """`listing` of a page whose facility names carry escape sequences prints none."""
    page = tmp_path / "page.txt"
    page.write_text(SEED.read_text(encoding="utf-8").replace(
        "Centre L", "Centre \x1b]0;pwned\x07\x1b[2J\u202eL"), encoding="utf-8")
    for args in (["listing", str(page)], ["listing", str(page), "--json"]):
        result = runner.invoke(app, args, color=True)
        assert result.exit_code == 0, result.output
        _assert_clean(result, args)


def test_changes_of_an_empty_trial_is_bad_input(runner: CliRunner) -> None:
    """`changes --trial ''` names no trial: exit 2 in one line (it used to list them all)."""
    _one_error(invoke(runner, "changes", "--trial", ""), 2, "'' is not a ClinicalTrials.gov "
               "identifier (expected NCT and 8 digits, e.g. NCT02260505)")
    assert invoke(runner, "changes", "--trial", "  ").exit_code == 2


# --- the process as a shell runs it: pipes closed early, Ctrl-C ---------------------------------

CLI_IN_CHILD = """
import datetime, sys
from trialfinder import clock
clock.today = lambda: datetime.date(2025, 3, 1)  # as tests/conftest.py
from trialfinder.cli import main
sys.argv = ["trialfinder", *sys.argv[1:]]
main()
"""
FR16 = FIXTURES / "ctgov" / "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json"


def _held(arrived: threading.Event, release: threading.Event, body: str):  # type: ignore[no-untyped-def]
    """A registry answer that waits for the test's word before it is sent."""

    def handler(request: Request) -> Response:
        arrived.set()
        release.wait(30)
        return Response(body, content_type="application/json")

    return handler


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI_IN_CHILD, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sync_into_a_pipe_closed_early_is_not_a_failure(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """`sync A B | head -1`: the reader leaves after line 1; the sync still stores B, records
    the run as ok, says nothing on stderr and exits 0."""
    from trialfinder.store import Store

    db = tmp_path / "s.sqlite"
    arrived, release = threading.Event(), threading.Event()
    httpserver.expect_request("/api/v2/studies/NCT03830788").respond_with_data(
        FR16.read_text(encoding="utf-8"), content_type="application/json")
    httpserver.expect_request("/api/v2/studies/NCT02260505").respond_with_handler(_held(
        arrived, release,
        (FIXTURES / "ctgov" / "built_NCT02260505_v1.json").read_text(encoding="utf-8")))
    child = _child("sync", "NCT03830788", "NCT02260505", "--db", str(db),
                   "--registry-url", httpserver.url_for("/api/v2"))
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "NCT03830788 new: 16 sites\n"
        assert arrived.wait(30)
        child.stdout.close()  # `head -1` exits: the next line meets a closed pipe
    finally:
        release.set()
    assert child.wait(60) == 0
    assert child.stderr is not None and child.stderr.read() == ""
    with Store(db) as store:
        assert store.trial_ids() == ["NCT02260505", "NCT03830788"]
        assert store.last_sync()[3] == "ok"  # type: ignore[index]


def test_ctrl_c_says_interrupted_and_exits_130(httpserver: HTTPServer, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) during a sync: one line, `Error: interrupted`, exit 130, run aborted."""
    from trialfinder.store import Store

    db = tmp_path / "s.sqlite"
    arrived, release = threading.Event(), threading.Event()
    httpserver.expect_request("/api/v2/studies/NCT02260505").respond_with_handler(
        _held(arrived, release, "{}"))
    child = _child("sync", "--db", str(db), "--registry-url", httpserver.url_for("/api/v2"))
    try:
        assert arrived.wait(30)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        release.set()
    assert (child.returncode, out, err) == (130, "", "Error: interrupted\n")
    with Store(db) as store:
        assert store.last_sync()[3] == "aborted"  # type: ignore[index]


def test_csv_cells_are_clean_before_any_stream() -> None:
    """render.sites_csv itself (what a download would serve, no terminal in between) holds no
    control character; a cell that then starts like a formula still gets its apostrophe."""
    from trialfinder import render
    from trialfinder.queries import TrialView

    trial = hostile_trial("\r=HYPERLINK(\"x\")\x1b[2J")
    text = render.sites_csv(TrialView(trial=trial))
    assert not CONTROLS & set(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["facility"].startswith("\ufffd=HYPERLINK")
    assert render.csv_safe("=1+1") == "'=1+1" and render.csv_safe(4.5) == 4.5


def test_an_answer_from_the_bundled_record_loads_no_store_code(tmp_path: Path) -> None:
    """With no store file, `nearest` answers from the bundled record without loading the
    store's module (SQLite schema, hashing): start-up is what a patient waits for. With a
    store, it is read."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from trialfinder.cli import app\n"
        "result = CliRunner().invoke(app, ['nearest', 'Lyon', '-n', '1', '--db', sys.argv[1]])\n"
        "print(result.exit_code, 'trialfinder.store' in sys.modules)\n"
    )
    missing = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none.sqlite")],
                             capture_output=True, text=True, check=True).stdout.split()
    assert missing == ["0", "False"]
    from trialfinder.store import Store

    with Store(tmp_path / "s.sqlite"):
        pass
    present = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.sqlite")],
                             capture_output=True, text=True, check=True).stdout.split()
    assert present == ["0", "True"]
