"""The listing parser on the seed page (text and built HTML) and on synthetic variants."""

from __future__ import annotations

import codecs
import json
import logging
from pathlib import Path

import pytest

from trialfinder.errors import ListingError
from trialfinder.listing import USER_AGENT, decode_listing, fetch_listing, parse_listing
from trialfinder.models import Contact, Status, trial_from_jsonable

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "seed"
SEED_TEXT = (FIXTURES / "000_6aeb1dc53d5a47c7.txt").read_text(encoding="utf-8")
SEED_HTML = (FIXTURES / "NCT02260505-listing.html").read_text(encoding="utf-8")

# (investigator, title, facility as repaired, city)
SEED_SITES = [
    ("François BERTUCCI", "Pr", "Institut Paoli-Calmettes", "Marseille"),
    ("Florence DUFFAUD", "Pr", "Centre Hospitalier Universitaire La Timone", "Marseille"),
    ("Elsa KALBACHER", "Doctor", "CHRU de Besançon - Hôpital Minjoz", "Besançon"),
    ("Antoine ITALIANO", "Dr", "Institut Bergonié", "Bordeaux"),
    ("Rosine GUIMBAUD", "Pr", "Centre Hospitalier Universitaire Toulouse Purpan", "Toulouse"),
    ("Didier CUPISSOL", "Dr", "Centre Régional de Lutte contre le Cancer de Montpellier",
     "Montpellier"),
    ("Bruno LANDI", "Dr", "AP-HP Hôpital Européen Georges Pompidou", "Paris"),
    ("Elisabeth BOMPAS", "Dr", "Institut de Cancérologie de l'Ouest", "Saint-Herblain"),
    ("Olivier COLLARD", "Dr", "Institut de cancérologie LUCIEN NEUWIRTH",
     "Saint-priest-en-jarez"),
    ("Olivier BOUCHE", "Pr", "Centre Hospitalier universitaire Robert Debré", "Reims"),
    ("Maria RIOS", "Dr", "Institut de Cancérologie de Lorraine", "Vandoeuvre-les-Nancy"),
    ("Nicolas PENEL", "Dr", "Centre Oscar Lambret", "Lille"),
    ("Jean-Yves BLAY", "Pr", "Centre Léon Bérard", "Lyon"),
    ("Axel LE CESNE", "Dr", "Institut de Cancérologie Gustave Roussy", "Villejuif"),
    ("Isabelle TROUILLOUD", "Dr", "AP-HP Hôpital Saint-Antoine", "Paris"),
    ("Jean-Emmanuel KURTZ", "Pr", "CHRU Strasbourg - Hôpital Hautepierre", "Strasbourg"),
]


def test_seed_trial_fields() -> None:
    """The seed page gives the identifier, title, month, status and source."""
    trial = parse_listing(SEED_TEXT, source_url="https://example.org/listing")
    assert trial.nct_id == "NCT02260505"
    assert trial.title.startswith("Efficiency of Imatinib Treatment Maintenance or Interruption")
    assert trial.title.endswith("Gastrointestinal Stromal Tumours (GIST)")
    assert trial.status is Status.RECRUITING
    assert trial.last_update == "2019-01"
    assert trial.source.kind == "listing"
    assert trial.source.description == "CenterWatch-style listing page"
    assert trial.source.as_of == "2019-01"
    assert trial.source.url == "https://example.org/listing"


def test_seed_descriptions_keep_paragraphs_and_the_list() -> None:
    """Brief and detailed descriptions keep their paragraphs and the numbered list, no chrome."""
    trial = parse_listing(SEED_TEXT)
    brief = trial.brief_summary or ""
    assert brief.startswith("This is a 2 arms study concerning patients with primary GIST")
    assert brief.count("\n\n") == 2
    detailed = trial.detailed_description or ""
    paragraphs = detailed.split("\n\n")
    assert paragraphs[0].startswith("Gastrointestinal stromal tumours (GISTs) are rare")
    assert paragraphs[4] == (
        "1. prolonged use of adjuvant imatinib beyond 3 years may enable to reduce the risk of "
        "GIST recurrence and to improve overall survival, and\n"
        "2. imatinib rechallenge is efficient for treating recurrence after completion of "
        "3-year adjuvant imatinib therapy."
    )
    assert paragraphs[-1].endswith("(NCCN) risk classification.")
    for chrome in ("Start Over", "Connect", "Receive Emails", "Sign up", "NCT02260505"):
        assert chrome not in brief + detailed


def test_seed_sites_investigators_and_repaired_centres() -> None:
    """16 sites, each with its investigator, title, repaired centre, city and France."""
    trial = parse_listing(SEED_TEXT)
    got = [
        (s.contacts[0].name, s.contacts[0].title, s.facility, s.city) for s in trial.sites
    ]
    assert got == SEED_SITES
    for site in trial.sites:
        assert site.country == "France"
        assert site.status is None
        assert site.latitude is None
        assert site.unrepaired == ()
        assert len(site.contacts) == 1
        assert site.contacts[0].role == "PRINCIPAL_INVESTIGATOR"
    by_facility = {s.facility: s for s in trial.sites}
    assert by_facility["Centre Léon Bérard"].facility_raw == "Centre L on B rard"
    assert by_facility["Institut Bergonié"].facility_raw == "Institut Bergoni"
    assert by_facility["Institut de Cancérologie de l'Ouest"].city == "Saint-Herblain"
    assert by_facility["Centre Oscar Lambret"].facility_raw is None
    assert trial.sites[0].contacts == (
        Contact(name="François BERTUCCI", title="Pr", role="PRINCIPAL_INVESTIGATOR"),
    )


def test_html_form_gives_the_same_trial() -> None:
    """The built HTML rendering of the seed parses to exactly the Trial of the text form."""
    assert parse_listing(SEED_HTML) == parse_listing(SEED_TEXT)


def test_crlf_nbsp_and_extra_blank_lines() -> None:
    """Windows line ends, non-breaking spaces and doubled blank lines change nothing."""
    variant = SEED_TEXT.replace("\n\n", "\n\n\n").replace("\n", "\r\n").replace(" ", "\u00a0", 40)
    assert parse_listing(variant) == parse_listing(SEED_TEXT)


OTHER = """\
Last updated on March 2023

A Study of Something Important in Adults

Brief description of study

One paragraph only.

Clinical Study Identifier: nct01234567

Contact Investigators or Research Sites near you

Start Over

Jane DOE, MD, PhD
Massachusetts General Hospital
Boston, Massachusetts, United States
Connect >>

Hôpital Universitaire de Genève
Genève, Switzerland
Connect &raquo;

Tom <b>SMITH</b>, Dr
<script>alert("x")</script> Clinic & Co
Toronto, Ontario, Canada
  Connect »

Recruitment Status: Closed
"""


def test_another_listing_with_other_countries() -> None:
    """Other countries, a state, sites without an investigator, other 'Connect' spellings."""
    trial = parse_listing(OTHER)
    assert trial.nct_id == "NCT01234567"
    assert trial.title == "A Study of Something Important in Adults"
    assert trial.last_update == "2023-03"
    assert trial.status is Status.COMPLETED
    assert trial.brief_summary == "One paragraph only."
    assert trial.detailed_description is None
    boston, geneva, toronto = trial.sites
    assert (boston.facility, boston.city, boston.state, boston.country) == (
        "Massachusetts General Hospital", "Boston", "Massachusetts", "United States",
    )
    assert boston.contacts == (
        Contact(name="Jane DOE", title="MD, PhD", role="PRINCIPAL_INVESTIGATOR"),
    )
    assert (geneva.facility, geneva.city, geneva.country) == (
        "Hôpital Universitaire de Genève", "Genève", "Switzerland",
    )
    assert geneva.contacts == ()
    assert toronto.country == "Canada"


def test_hostile_text_stays_text() -> None:
    """Markup in names is kept as characters, in the text form and in the HTML form."""
    toronto = parse_listing(OTHER).sites[2]
    assert toronto.contacts[0].name == "Tom <b>SMITH</b>"
    assert toronto.facility == '<script>alert("x")</script> Clinic & Co'
    html = (
        "<html><body><h1>T</h1><p>Clinical Study Identifier: NCT01234567</p>"
        "<h2>Contact Investigators or Research Sites near you</h2>"
        "<div><div>&lt;img src=x onerror=alert(1)&gt; Clinic</div><div>Oslo, Norway</div>"
        "<a>Connect &raquo;</a></div><script>document.write('Evil, Evilland')</script>"
        "</body></html>"
    )
    (site,) = parse_listing(html).sites
    assert site.facility == "<img src=x onerror=alert(1)> Clinic"
    assert (site.city, site.country) == ("Oslo", "Norway")


def test_missing_status_and_date() -> None:
    """No status line gives status None; no date gives no last_update."""
    text = "A Title\n\nClinical Study Identifier: NCT00000001\n"
    trial = parse_listing(text)
    assert trial.status is None
    assert trial.last_update is None
    assert trial.title == "A Title"
    assert trial.sites == ()


def test_page_without_identifier_is_a_listing_error() -> None:
    """A page with no NCT identifier says so clearly."""
    with pytest.raises(ListingError, match=r"no ClinicalTrials\.gov identifier"):
        parse_listing(SEED_TEXT.replace("NCT02260505", "unknown"))


def test_bundled_record_is_what_the_parser_produces() -> None:
    """data/trials/NCT02260505.json is current: rerun scripts/build_bundled_record.py if not."""
    source = (ROOT / "data" / "sources" / "NCT02260505-listing-2019-01.txt").read_text("utf-8")
    trial = parse_listing(source)
    committed = (ROOT / "data" / "trials" / "NCT02260505.json").read_text(encoding="utf-8")
    assert trial_from_jsonable(json.loads(committed)) == trial
    from trialfinder.models import to_jsonable

    assert committed == json.dumps(to_jsonable(trial), ensure_ascii=False, indent=2) + "\n"


def test_fetch_listing_sends_a_user_agent(httpserver) -> None:  # type: ignore[no-untyped-def]
    """fetch_listing identifies itself, parses the page and records when it was retrieved."""
    httpserver.expect_request(
        "/trial", headers={"User-Agent": USER_AGENT}
    ).respond_with_data(SEED_HTML, content_type="text/html; charset=utf-8")
    trial = fetch_listing(httpserver.url_for("/trial"))
    assert trial.nct_id == "NCT02260505"
    assert trial.source.url == httpserver.url_for("/trial")
    assert trial.source.retrieved is not None
    assert len(trial.sites) == 16


def test_fetch_listing_http_error(httpserver) -> None:  # type: ignore[no-untyped-def]
    """An HTTP error answer becomes a ListingError naming the status."""
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    with pytest.raises(ListingError, match="HTTP 404"):
        fetch_listing(httpserver.url_for("/gone"))


def test_fetch_listing_unreachable() -> None:
    """A refused connection becomes a ListingError."""
    with pytest.raises(ListingError, match="Could not fetch"):
        fetch_listing("http://127.0.0.1:9/listing", timeout=2)


# --- encodings ------------------------------------------------------------------------------

LATIN1_HTML = SEED_HTML.replace('<meta charset="utf-8">', '<meta charset="iso-8859-1">')
CP1252_HTML = SEED_HTML.replace(
    '<meta charset="utf-8">',
    '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SEED_TEXT.encode("utf-8"), id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + SEED_TEXT.encode("utf-8"), id="utf-8-bom"),
        pytest.param(SEED_TEXT.encode("utf-16"), id="utf-16-bom"),
        pytest.param(codecs.BOM_UTF16_BE + SEED_TEXT.encode("utf-16-be"), id="utf-16-be-bom"),
        pytest.param(SEED_TEXT.encode("utf-16-le"), id="utf-16-le-no-bom"),
        pytest.param(SEED_TEXT.encode("latin-1"), id="latin-1-text"),
        pytest.param(SEED_TEXT.encode("cp1252"), id="cp1252-text"),
        pytest.param(LATIN1_HTML.encode("latin-1"), id="meta-charset-iso-8859-1"),
        pytest.param(CP1252_HTML.encode("cp1252"), id="meta-http-equiv-windows-1252"),
        # A page re-saved as UTF-8 that kept its old <meta>: the valid UTF-8 wins.
        pytest.param(LATIN1_HTML.encode("utf-8"), id="stale-meta-utf-8-bytes"),
    ],
)
def test_any_encoding_gives_the_seed_trial(data: bytes) -> None:
    """BOM, declared charset, UTF-8 or cp1252: all 16 sites, accents intact, none lost."""
    expected = parse_listing(SEED_TEXT)
    text = decode_listing(data)
    assert "Connect »" in text
    assert "\ufffd" not in text
    assert parse_listing(text) == expected
    assert parse_listing(data) == expected  # bytes are decoded the same way


def test_decode_listing_details() -> None:
    """cp1252 punctuation, the declared charset beats a guess, undecodable bytes never raise."""
    assert decode_listing("l’hôpital – Connect »".encode("cp1252")) == "l’hôpital – Connect »"
    koi8 = '<html><head><meta charset="koi8-r"></head><body>Москва</body></html>'
    assert "Москва" in decode_listing(koi8.encode("koi8-r"))
    assert decode_listing(b"") == ""
    assert isinstance(decode_listing(bytes(range(256)) * 4), str)
    assert decode_listing(b'<meta charset="no-such-charset">caf\xc3\xa9') == (
        '<meta charset="no-such-charset">café'
    )


def test_fetch_listing_without_a_header_charset_uses_the_meta(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A Latin-1 page served without a charset is read by its <meta charset>."""
    httpserver.expect_request("/latin").respond_with_data(
        LATIN1_HTML.encode("latin-1"), content_type="text/html"
    )
    trial = fetch_listing(httpserver.url_for("/latin"))
    assert [s.facility for s in trial.sites] == [s.facility for s in parse_listing(SEED_TEXT).sites]


# --- a sites section that yields nothing ------------------------------------------------------

HEAD = "A Title\n\nClinical Study Identifier: NCT00000001\n\n"


def test_unreadable_sites_section_is_an_error() -> None:
    """Site blocks exist but none reads as a site: an error, not a trial with 0 sites."""
    page = HEAD + (
        "Contact Investigators or Research Sites near you\n\n"
        "Jane DOE, MD\nSome Hospital\nConnect »\n\nAnother Hospital\nConnect »\n"
    )
    with pytest.raises(ListingError, match=r"no site blocks could be read \(2 block"):
        parse_listing(page)


def test_empty_sites_section_is_an_error() -> None:
    """A sites heading with nothing under it (a truncated save) is an error too."""
    page = HEAD + "Contact Investigators or Research Sites near you\n\nStart Over\n"
    with pytest.raises(ListingError, match="no site blocks could be read"):
        parse_listing(page + "\nRecruitment Status: Open\n")


def test_connect_markers_without_the_heading_is_an_error() -> None:
    """'Connect »' markers show sites were there even when the heading was lost."""
    page = HEAD + "Jane DOE, MD\nSome Hospital\nBoston, United States\nConnect »\n"
    with pytest.raises(ListingError, match="no site blocks could be read"):
        parse_listing(page)


def test_mangled_connect_marker_still_splits_sites() -> None:
    """'Connect Â»' (UTF-8 read as Latin-1) or 'Connect \ufffd' still ends a site block."""
    mangled = SEED_TEXT.replace("Connect »", "Connect Â»", 8).replace("Connect »", "Connect \ufffd")
    assert parse_listing(mangled) == parse_listing(SEED_TEXT)


def test_skipped_blocks_warn_briefly(caplog: pytest.LogCaptureFixture) -> None:
    """Each skipped block is one short line; after a few, a count instead of more lines."""
    bad = ("Nowhere Clinic " + "x" * 3000 + "\nConnect »\n\n") * 10
    page = HEAD + (
        "Contact Investigators or Research Sites near you\n\n" + bad
        + "Good Clinic\nOslo, Norway\nConnect »\n"
    )
    with caplog.at_level(logging.WARNING, logger="trialfinder.listing"):
        (site,) = parse_listing(page).sites
    assert site.city == "Oslo"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    assert all("\n" not in m and len(m) < 200 for m in messages)
    assert "Skipped 7 more site blocks" in messages[-1]


# --- investigator titles ----------------------------------------------------------------------


def _block(*lines: str) -> str:
    return HEAD + (
        "Contact Investigators or Research Sites near you\n\n" + "\n".join(lines)
        + "\nConnect »\n"
    )


@pytest.mark.parametrize(
    ("line", "name", "title"),
    [
        ("Hans MÜLLER, Prof. Dr.", "Hans MÜLLER", "Prof. Dr."),
        ("Ana GARCÍA, Dra", "Ana GARCÍA", "Dra"),
        ("Ana GARCÍA, Dra.", "Ana GARCÍA", "Dra."),
        ("Jean-Yves BLAY, Pr", "Jean-Yves BLAY", "Pr"),
        ("Marie DUPONT, Pr.", "Marie DUPONT", "Pr."),
        ("Jane DOE, MD PhD", "Jane DOE", "MD PhD"),
        ("Jane DOE, M.D., Ph.D.", "Jane DOE", "M.D., Ph.D."),
        ("Jane DOE, MD/PhD", "Jane DOE", "MD/PhD"),
        ("john smith, mbbs, frcp", "john smith", "mbbs, frcp"),
        ("Claire MARTIN, Docteur", "Claire MARTIN", "Docteur"),
        ("Anna ROSSI, Dott.ssa", "Anna ROSSI", "Dott.ssa"),
        ("João SILVA, Prof. Dr.ª", "João SILVA", "Prof. Dr.ª"),
        ("Klaus WEBER, Univ.-Prof. Dr. med.", "Klaus WEBER", "Univ.-Prof. Dr. med."),
        ("Pat LEE, RN", "Pat LEE", "RN"),
        ("Sam KIM, PharmD", "Sam KIM", "PharmD"),
        ("Mary JONES, Mrs", "Mary JONES", "Mrs"),
        ("Olga IVANOVA, K.M.N.", "Olga IVANOVA", "K.M.N."),  # unknown title, shaped like one
        ("Prof. Dr. Hans Müller", "Hans Müller", "Prof. Dr."),  # title first
    ],
)
def test_investigator_titles(line: str, name: str, title: str) -> None:
    """Titles in several languages and combinations end (or start) an investigator line."""
    (site,) = parse_listing(_block(line, "Klinikum rechts der Isar", "München, Germany")).sites
    assert site.contacts == (Contact(name=name, title=title, role="PRINCIPAL_INVESTIGATOR"),)
    assert site.facility == "Klinikum rechts der Isar"


@pytest.mark.parametrize(
    "first",
    [
        "Boston University, MA",  # an organisation with a state, not a person
        "Hôpital Nord, AP-HM",
        "Centre Léon Bérard, Dr",
        "Dr. Horst Schmidt Kliniken",
        "Building 4, Floor 2",
        "Klinikum Süd",
    ],
)
def test_facility_lines_are_not_investigators(first: str) -> None:
    """A first line naming a place stays part of the facility, even before a title."""
    (site,) = parse_listing(_block(first, "Oncology Department", "Lyon, France")).sites
    assert site.contacts == ()
    assert site.facility == f"{first} Oncology Department"


def test_two_line_block_keeps_its_facility() -> None:
    """'Name, Title' then 'City, Country' alone is a facility, not an investigator."""
    (site,) = parse_listing(_block("Hans MÜLLER, Prof. Dr.", "München, Germany")).sites
    assert site.facility == "Hans MÜLLER, Prof. Dr."
    assert site.contacts == ()
