"""The listing reader: the seed page (text and built HTML), HTML variants of it, pages of our own
making, bounded reading, status words, city repair and placing, and fetching over HTTP."""

from __future__ import annotations

import codecs
import gzip
import html
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug import Request, Response

from seed_listing import SEED_SITES as TYPED_SEED_SITES
from trialfinder.errors import BadInput, ListingFetchError, UnusableListing
from trialfinder.geocode import placing_version
from trialfinder.listing import (
    DEFAULT_MAX_BYTES,
    USER_AGENT,
    deadline_seconds,
    decode_listing,
    fetch_listing,
    finish_listing,
    html_to_text,
    load_listing,
    max_bytes,
    parse_listing,
    read_listing_bytes,
)
from trialfinder.models import Contact, Precision, Trial, to_jsonable, trial_from_jsonable
from trialfinder.recruitment import Standing, page_standing, trial_recruitment

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "seed"
SEED_TEXT = (FIXTURES / "000_6aeb1dc53d5a47c7.txt").read_text(encoding="utf-8")
SEED_HTML = (FIXTURES / "NCT02260505-listing.html").read_text(encoding="utf-8")
BUNDLED_SOURCE = ROOT / "data" / "sources" / "NCT02260505-listing-2019-01.txt"
BUNDLED_RECORD = ROOT / "data" / "trials" / "NCT02260505.json"

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
    """The seed page gives the identifier, title, month, the page's status words and source."""
    trial = parse_listing(SEED_TEXT, source_url="https://example.org/listing")
    assert trial.nct_id == "NCT02260505"
    assert trial.title.startswith("Efficiency of Imatinib Treatment Maintenance or Interruption")
    assert trial.title.endswith("Gastrointestinal Stromal Tumours (GIST)")
    assert trial.status is None
    assert trial.status_text == "Open"
    assert trial_recruitment(trial).standing is Standing.RECRUITING
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


# --- HTML variants of the seed, made here --------------------------------------------------


def _blocks(lines: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            out[-1].append(line.strip())
        elif out[-1]:
            out.append([])
    return [b for b in out if b]


def _seed_parts() -> dict:
    """The seed's parts, read here with plain string operations (not with the parser)."""
    lines = SEED_TEXT.split("\n")

    def at(prefix: str) -> int:
        return next(k for k, ln in enumerate(lines) if ln.strip().startswith(prefix))

    detailed = []
    for block in _blocks(lines[at("Detailed Study Description") + 1 : at("Clinical Study")]):
        items = [re.sub(r"^\d+\.\s*", "", ln) for ln in block if re.match(r"^\d+\.", ln)]
        detailed.append(items if len(items) == len(block) else " ".join(block))
    return {
        "title": _blocks(lines[at("Last updated") + 1 :])[0][0],
        "brief": [" ".join(b) for b in _blocks(
            lines[at("Brief description of study") + 1 : at("Detailed Study Description")]
        )],
        "detailed": detailed,
        # (investigator line, facility as scraped, "City, Country")
        "sites": [
            (f"{name}, {title}", raw or facility, f"{city}, France")
            for name, title, facility, raw, city in TYPED_SEED_SITES
        ],
    }


PARTS = _seed_parts()
e = html.escape


def _description_html(tag: str = "p") -> tuple[str, str]:
    brief = "".join(f"<{tag}>{e(p)}</{tag}>" for p in PARTS["brief"])
    detailed = ""
    for part in PARTS["detailed"]:
        if isinstance(part, list):
            detailed += "<ol>" + "".join(f"<li>{e(item)}</li>" for item in part) + "</ol>"
        else:
            detailed += f"<{tag}>{e(part)}</{tag}>"
    return brief, detailed


def _table_variant() -> str:
    """Sites as table rows, identifier and status as a definition list, a dated <time>."""
    brief, detailed = _description_html()
    rows = "".join(
        f"<tr><td><strong>{e(inv)}</strong></td><td>{e(fac)}</td><td>{e(place)}</td>"
        f"<td><a href='#c'>Connect &raquo;</a></td></tr>"
        for inv, fac, place in PARTS["sites"]
    )
    return (
        "<!doctype html><html><head><title>x</title><style>td{color:red}</style></head><body>"
        "<p>Last updated on <time datetime='2019-01'>January 2019</time></p>"
        f"<h1>{e(PARTS['title'])}</h1>"
        f"<h2>Brief description of study</h2>{brief}"
        f"<h2>Detailed Study Description</h2>{detailed}"
        "<dl><dt>Clinical Study Identifier:</dt><dd>NCT02260505</dd></dl>"
        "<h2>Contact Investigators or Research Sites near you</h2>"
        f"<table><thead><tr><th>Start Over</th></tr></thead><tbody>{rows}</tbody></table>"
        "<dl><dt>Recruitment Status</dt><dd>Open</dd></dl>"
        "</body></html>"
    )


def _cards_variant() -> str:
    """The marker first in each card, investigators as headings, the page in one <form>, a
    header with navigation, a cookie dialog, hidden and scripted fake sites, a sign-up box."""
    brief, detailed = _description_html("div")
    markers = ("<a class='btn' href='#'>Connect »</a>", "<button type=button>Connect »</button>")
    cards = "".join(
        f"<article class='card'>{markers[k % 2]}"
        f"<h3>{e(inv)}</h3><p>{e(fac)}<br>\n{e(place)}</p></article>"
        for k, (inv, fac, place) in enumerate(PARTS["sites"])
    )
    return (
        "<HTML><BODY><form id=aspnetForm method=post>"
        "<div role='dialog'>We use cookies. <button>Accept</button></div>"
        "<header><nav><ul><li>Home</li><li>Brief description of study</li><li>Trials</li>"
        f"</ul></nav><h1>{e(PARTS['title'])}</h1><p>Last updated on January 2019</p></header>"
        "<main><section><h2>Brief description of study</h2>"
        f"{brief}</section><section><h2>Detailed Study Description</h2>{detailed}</section>"
        "<p>Clinical Study Identifier: <b>NCT02260505</b></p>"
        "<section><h2>Contact Investigators or Research Sites near you</h2>"
        "<button type=button>Start Over</button>"
        "<div style='display: none'><p>Fake Clinic<br>Nowhere, France</p><a>Connect »</a></div>"
        "<template><p>Template Clinic<br>Nowhere, France</p><a>Connect »</a></template>"
        f"{cards}<script>document.write('<p>Evil, Evilland</p><a>Connect »</a>')</script>"
        "<noscript><p>Noscript Clinic<br>Nowhere, France</p></noscript>"
        "</section><p>Recruitment Status: <span class='badge'>Open</span></p></main>"
        "<aside><h3>Receive Emails About New Clinical Trials!</h3><input type=email>"
        "<p>Sign up for our FREE service to receive email notifications.</p></aside>"
        "<footer><p>© Some Company</p></footer>"
        "</form></BODY></HTML>"
    )


def _inline_variant() -> str:
    """Each site one paragraph of <br> lines, inline markup cutting through names, entities,
    unclosed <p> tags and a description in <br><br> paragraphs."""
    sites = ""
    for inv, fac, place in PARTS["sites"]:
        name, title = inv.rsplit(", ", 1)
        first, last = name.split(" ", 1)
        words = e(fac).split(" ")
        fac_html = "<span class='x'>" + words[0] + "</span> " + " ".join(
            f"<em>{w}</em>" if k % 2 else w for k, w in enumerate(words[1:])
        )
        first_html = "".join(f"&#{ord(c)};" if not c.isascii() else c for c in first)
        sites += (
            f"<p><b>{first_html} {e(last)}</b>, <i>{e(title)}</i><br>{fac_html}<br>"
            f"{e(place)}<br><a href='#'>Connect&nbsp;&raquo;</a>"
        )
    brief = "<div>" + "<br><br>".join(e(p) for p in PARTS["brief"]) + "</div>"
    _, detailed = _description_html()
    return (
        "<html><body><p>Last updated on January 2019"
        f"<h1>{e(PARTS['title'])}</h1>"
        f"<h2>Brief description of study</h2>{brief}"
        f"<h2>Detailed Study Description</h2>{detailed}"
        "<p>Clinical Study Identifier: NCT02260505"
        "<h2>Contact Investigators or Research Sites near you</h2>"
        f"<p><a href='?'>Start Over</a>{sites}"
        "<p>Recruitment Status: Open"
        "</body></html>"
    )


def _pre_variant() -> str:
    """The text itself inside <pre>, as some sites serve a plain page."""
    return f"<html><body><pre>{e(SEED_TEXT)}</pre></body></html>"


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(_table_variant(), id="table-rows-and-definition-lists"),
        pytest.param(_cards_variant(), id="marker-first-cards-in-a-form-with-chrome"),
        pytest.param(_inline_variant(), id="br-lines-inline-markup-entities-unclosed"),
        pytest.param(_pre_variant(), id="pre"),
    ],
)
def test_html_variants_give_the_seed_trial(page: str) -> None:
    """Other markup around the same visible page gives exactly the text form's Trial."""
    assert parse_listing(page) == parse_listing(SEED_TEXT)


def test_html_to_text_drops_chrome_and_keeps_the_record() -> None:
    """What a reader sees: no script, hidden element, navigation, dialog or sign-up box."""
    text = html_to_text(_cards_variant())
    for chrome in ("cookies", "Accept", "Fake Clinic", "Template", "Evil", "Noscript",
                   "Receive Emails", "Sign up", "©", "Home"):
        assert chrome not in text
    assert "Clinical Study Identifier: NCT02260505" in text
    assert text.count("Connect »") == 16


def test_chrome_holding_the_record_is_kept() -> None:
    """A <form> or <header> around the record is not chrome: its content is read."""
    page = (
        "<form><header><h1>A Title</h1></header><p>Last updated on May 2021</p>"
        "<p>Clinical Study Identifier: NCT00000009</p><p>Recruitment Status: Recruiting</p>"
        "</form>"
    )
    trial = parse_listing(page)
    assert (trial.title, trial.last_update, trial.status_text) == (
        "A Title", "2021-05", "Recruiting",
    )


def test_headings_end_the_sections_they_do_not_belong_to() -> None:
    """An HTML heading of the same level ends a description; a lower one stays inside it."""
    page = (
        "<h1>T</h1><h2>Detailed Study Description</h2><p>One.</p><h3>Background</h3><p>Two.</p>"
        "<h2>Eligibility</h2><p>Age over 18.</p><h2>Side effects</h2><p>None.</p>"
        "<p>Clinical Study Identifier: NCT00000009</p>"
    )
    trial = parse_listing(page)
    assert trial.detailed_description == "One.\n\nBackground\n\nTwo."


def test_headings_and_labels_inside_site_cards_stay_in_them() -> None:
    """A centre's name as a heading of the sites heading's level, and a 'Contact' label in
    each card, neither end the sites section nor split a site."""
    cards = "".join(
        f"<div class='card'><h2>{e(fac)}</h2><p>{e(inv)}</p><p>{e(place)}</p><p>Contact</p>"
        "<a>Connect »</a></div>"
        for inv, fac, place in [("Jane DOE, MD", "Clinique Alpha", "Lyon, France"),
                                ("John ROE, Dr", "Clinique Beta", "Nantes, France")]
    )
    page = (
        "<h1>T</h1><p>Clinical Study Identifier: NCT00000009</p>"
        f"<h2>Contact Investigators or Research Sites near you</h2>{cards}"
        "<h2>Recruitment Status: Open</h2>"
    )
    alpha, beta = parse_listing(page).sites
    assert (alpha.facility, alpha.city, beta.facility, beta.city) == (
        "Clinique Alpha", "Lyon", "Clinique Beta", "Nantes",
    )
    assert [c.display for c in alpha.contacts + beta.contacts] == ["Jane DOE, MD", "John ROE, Dr"]


def test_text_layout_ends_a_section_at_a_known_heading() -> None:
    """In a text page, a line such as 'Eligibility Criteria' ends the description too."""
    text = (
        "T\n\nDetailed Study Description\n\nOne.\n\nEligibility Criteria\n\nAge over 18.\n\n"
        "Clinical Study Identifier: NCT00000009\n"
    )
    assert parse_listing(text).detailed_description == "One."


# --- sites of our own ---------------------------------------------------------------------

_WORD = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzéèçôüABCDEFGHIJKLMNOPQRSTUVWXYZ<>&'"),
    min_size=2, max_size=10,
)
_NAME = st.lists(_WORD, min_size=1, max_size=4).map(" ".join)


@st.composite
def _site_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    if draw(st.booleans()):
        lines.append(f"{draw(_NAME)} {draw(_WORD).upper()}, {draw(st.sampled_from(['Dr', 'MD']))}")
    lines += draw(st.lists(_NAME, min_size=1, max_size=2))
    lines.append(f"{draw(_NAME)}, {draw(_NAME)}")
    return lines


_HEAD = "Last updated on March 2023\n\nA Title\n\nClinical Study Identifier: NCT01234567\n\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_site_lines(), min_size=1, max_size=6), st.sampled_from(["div", "li", "tr"]))
def test_sites_as_text_and_as_html_cards_agree(sites: list[list[str]], card: str) -> None:
    """Any sites, laid out as text or as HTML cards (div, li, table row), read the same."""
    text = _HEAD + "Contact Investigators or Research Sites near you\n\n" + "".join(
        "\n".join(lines) + "\nConnect »\n\n" for lines in sites
    )
    cell = "td" if card == "tr" else "div"
    cards = "".join(
        f"<{card}>" + "".join(f"<{cell}>{e(line)}</{cell}>" for line in lines)
        + f"<{cell}><a>Connect »</a></{cell}></{card}>"
        for lines in sites
    )
    wrap = {"div": ("<div>", "</div>"), "li": ("<ul>", "</ul>"), "tr": ("<table>", "</table>")}
    page = (
        "<html><body><p>Last updated on March 2023</p><h1>A Title</h1>"
        "<p>Clinical Study Identifier: NCT01234567</p>"
        "<h2>Contact Investigators or Research Sites near you</h2>"
        f"{wrap[card][0]}{cards}{wrap[card][1]}</body></html>"
    )
    try:
        expected = parse_listing(text)
    except UnusableListing:
        with pytest.raises(UnusableListing):
            parse_listing(page)
        return
    assert parse_listing(page) == expected


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from([
        "<p>", "</p>", "<div>", "</div>", "<br>", "<h1>", "</h1>", "<li>", "<ol start=x>",
        "Connect »", "Clinical Study Identifier: NCT00000001", "Recruitment Status:", "Open",
        "Contact Investigators or Research Sites", "Oslo, Norway", "<script>", "<nav>", "\n",
        "<!--", "-->", "<table><tr><td>", "&amp;", "<pre>", "Last updated on", "x" * 30,
    ]), max_size=40).map("".join),
))
def test_any_page_parses_or_is_refused_in_one_line(page: str) -> None:
    """Whatever the page holds, it gives a Trial or an UnusableListing, nothing else."""
    try:
        trial = parse_listing(page)
    except UnusableListing as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(trial, Trial)


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
    assert (trial.status, trial.status_text) == (None, "Closed")
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
    page = (
        "<html><body><h1>T</h1><p>Clinical Study Identifier: NCT01234567</p>"
        "<h2>Contact Investigators or Research Sites near you</h2>"
        "<div><div>&lt;img src=x onerror=alert(1)&gt; Clinic</div><div>Oslo, Norway</div>"
        "<a>Connect &raquo;</a></div><script>document.write('Evil, Evilland')</script>"
        "</body></html>"
    )
    (site,) = parse_listing(page).sites
    assert site.facility == "<img src=x onerror=alert(1)> Clinic"
    assert (site.city, site.country) == ("Oslo", "Norway")


# --- status as the page words it -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_line", "words", "standing"),
    [
        ("Recruitment Status: Open", "Open", Standing.RECRUITING),
        ("Recruitment Status: Recruiting", "Recruiting", Standing.RECRUITING),
        ("Recruitment status: Closed.", "Closed", Standing.NOT_RECRUITING),
        ("RECRUITMENT STATUS: COMPLETED", "COMPLETED", Standing.NOT_RECRUITING),
        ("Recruitment Status: Not yet recruiting", "Not yet recruiting",
         Standing.NOT_YET_RECRUITING),
        ("Study Status: Suspended", "Suspended", Standing.NOT_RECRUITING),
        ("Recruitment Status:\n\nOpen", "Open", Standing.RECRUITING),
        ("Recruitment Status: Ask the team", "Ask the team", Standing.NOT_STATED),
        ("", None, Standing.NOT_STATED),
        ("Recruitment Status:", None, Standing.NOT_STATED),
    ],
)
def test_status_is_the_pages_words(status_line: str, words: str | None, standing: Standing) -> None:
    """The page's own words are kept; no registry status is made up; none is 'not stated'."""
    trial = parse_listing(f"A Title\n\nClinical Study Identifier: NCT00000001\n\n{status_line}\n")
    assert trial.status is None
    assert trial.status_text == words
    assert page_standing(trial.status_text) is standing
    assert trial_recruitment(trial).standing is standing


def test_sentences_that_start_like_labels_are_description() -> None:
    """Description sentences that start like the status or date labels neither end the
    section nor become the status or the date."""
    text = (
        "T\n\nDetailed Study Description\n\nStudy status was reviewed by the board in 2020 and "
        "again by the sponsor in a long sentence that goes on.\n\n"
        "Last updated guidelines (2021) recommend imatinib.\n\n"
        "Clinical Study Identifier: NCT00000001\n"
    )
    trial = parse_listing(text)
    assert (trial.status_text, trial.last_update) == (None, None)
    assert (trial.detailed_description or "").startswith("Study status was reviewed")
    assert (trial.detailed_description or "").endswith("guidelines (2021) recommend imatinib.")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Last updated on January 2019", "2019-01"),
        ("Last Updated: 5 March 2023", "2023-03-05"),
        ("Last updated on March 5, 2023", "2023-03-05"),
        ("Last updated: 2022-11-30", "2022-11-30"),
        ("Last updated on janvier 2020", "2020-01"),
        ("Last updated on Someday 2019", None),
        ("Last updated\n\nMarch 2021", "2021-03"),
    ],
)
def test_last_updated_dates(line: str, expected: str | None) -> None:
    """The page's date in the forms pages write it becomes an ISO (maybe partial) date."""
    trial = parse_listing(f"{line}\n\nA Title\n\nClinical Study Identifier: NCT00000001\n")
    assert trial.last_update == expected
    assert trial.source.as_of == (expected or "")


def test_missing_status_and_date() -> None:
    """No status line gives no status at all; no date gives no last_update."""
    text = "A Title\n\nClinical Study Identifier: NCT00000001\n"
    trial = parse_listing(text)
    assert (trial.status, trial.status_text) == (None, None)
    assert trial.last_update is None
    assert trial.title == "A Title"
    assert trial.sites == ()


def test_page_without_identifier_is_unusable_input() -> None:
    """A page with no NCT identifier says so clearly, as bad input (exit 2)."""
    with pytest.raises(UnusableListing, match=r"no ClinicalTrials\.gov identifier") as caught:
        parse_listing(SEED_TEXT.replace("NCT02260505", "unknown"))
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, BadInput)


# --- city repair and placing --------------------------------------------------------------

MY_LISTING = """\
Last updated on June 2024

A Trial of Our Own Making

Clinical Study Identifier: NCT09999999

Contact Investigators or Research Sites near you

Marie CURIE, Dr
CHU Carémeau
N mes, France
Connect »

Centre Hospitalier de B ziers
Bziers, France
Connect »

Hôpital Henri-Mondor
Cr teil, France
Connect »

Institut de Canc rologie Lucien Neuwirth
Saint- tienne, France
Connect »

CHR d'Orl ans
ORL ANS, France
Connect »

Universitätsspital
Z rich, Switzerland
Connect »

CHU de Li ge
Li ge, Belgium
Connect »

Clinique du Bout du Monde
Xyzzyville, France
Connect »

Somewhere Clinic
Lyon, Atlantis
Connect »

Recruitment Status: Recruiting
"""


def test_cities_are_repaired_and_sites_placed() -> None:
    """Lost letters come back in French and foreign cities (the raw city kept), and every site
    the gazetteer knows is placed; an unknown town or country stays unplaced, as given."""
    trial = finish_listing(parse_listing(MY_LISTING, source_url="mine.txt"))
    cities = [(s.city, s.city_raw) for s in trial.sites]
    assert cities == [
        ("Nîmes", "N mes"),
        ("Béziers", "Bziers"),
        ("Créteil", "Cr teil"),
        ("Saint-Étienne", "Saint- tienne"),
        ("ORLÉANS", "ORL ANS"),
        ("Zürich", "Z rich"),
        ("Liège", "Li ge"),
        ("Xyzzyville", None),
        ("Lyon", None),
    ]
    facilities = [s.facility for s in trial.sites]
    assert facilities[1] == "Centre Hospitalier de Béziers"
    assert facilities[3] == "Institut de Cancérologie Lucien Neuwirth"
    placed = {s.city: (s.latitude, s.longitude) for s in trial.sites if s.has_position}
    assert set(placed) == {"Nîmes", "Béziers", "Créteil", "Saint-Étienne", "ORLÉANS", "Zürich",
                           "Liège"}
    assert placed["Nîmes"] == pytest.approx((43.84, 4.36), abs=0.05)
    assert placed["Zürich"] == pytest.approx((47.37, 8.54), abs=0.05)
    for site in trial.sites:
        if site.has_position:
            assert site.precision is Precision.CITY
            assert site.coordinate_source == "bundled gazetteer"
            assert site.matched == ("city",)
    assert [s.unplaced_reason for s in trial.sites[-2:]] == ["not found", "country unknown"]
    assert trial.placed_by == placing_version()
    assert trial.status_text == "Recruiting"


def _as_html(text: str) -> str:
    """A text listing's blocks as HTML: headings for the known headings, a <div> per site
    block (with <br> lines), a <p> for the rest."""
    out = ["<html><body>"]
    headings = ("Brief description of study", "Detailed Study Description",
                "Contact Investigators or Research Sites near you")
    for block in _blocks(text.split("\n")):
        if block[0] in headings:
            out.append(f"<h2>{e(block[0])}</h2>")
        elif block[-1] == "Connect »":
            lines = "<br>".join(e(line) for line in block[:-1])
            out.append(f"<div class='site'><p>{lines}</p><a href='#'>Connect &raquo;</a></div>")
        else:
            out.append("<p>" + "<br>".join(e(line) for line in block) + "</p>")
    return "\n".join(out) + "</body></html>"


def test_my_listing_as_html_over_http_is_the_text_record(httpserver) -> None:  # type: ignore[no-untyped-def]
    """Another trial's listing, served as HTML, gives the record its text form gives:
    the same repairs, positions and status words."""
    httpserver.expect_request("/mine").respond_with_data(
        _as_html(MY_LISTING), content_type="text/html; charset=utf-8"
    )
    fetched = load_listing(httpserver.url_for("/mine"))
    text = finish_listing(parse_listing(MY_LISTING))
    assert fetched.replace(source=text.source) == text
    assert sum(site.has_position for site in fetched.sites) == 7


def test_an_ambiguous_broken_city_is_left_as_given(caplog: pytest.LogCaptureFixture) -> None:
    """When several places fit a damaged city equally, none is picked (a warning says so)."""
    from trialfinder.gazetteer import Gazetteer
    from trialfinder.repair import repair_city

    # "Boc" is Bocé with its é lost, or Boëcé with two letters lost.
    assert repair_city("Boc", "France", Gazetteer.bundled()).candidates == ("Bocé", "Boëcé")
    text = MY_LISTING.replace("N mes, France", "Boc, France")
    with caplog.at_level(logging.WARNING, logger="trialfinder.listing"):
        site = finish_listing(parse_listing(text)).sites[0]
    assert (site.city, site.city_raw) == ("Boc", None)
    assert any("may be any of Bocé, Boëcé" in r.getMessage() for r in caplog.records)


def test_bundled_record_is_what_the_listing_path_produces() -> None:
    """data/trials/NCT02260505.json is the listing path's output (parse, repair, place):
    rerun scripts/build_bundled_record.py if not."""
    trial = load_listing(BUNDLED_SOURCE)
    committed = BUNDLED_RECORD.read_text(encoding="utf-8")
    expected = json.dumps(to_jsonable(trial), ensure_ascii=False, indent=2) + "\n"
    assert committed == expected, "run scripts/build_bundled_record.py"
    assert trial_from_jsonable(json.loads(committed)) == trial
    assert trial.source.url == "NCT02260505-listing-2019-01.txt"
    assert all(site.has_position for site in trial.sites)


# --- bounded reading ----------------------------------------------------------------------


def test_size_cap_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 MB unless TRIALFINDER_LISTING_MAX_BYTES says otherwise; nonsense is bad input."""
    monkeypatch.delenv("TRIALFINDER_LISTING_MAX_BYTES", raising=False)
    assert max_bytes() == DEFAULT_MAX_BYTES == 20_000_000
    assert max_bytes({"TRIALFINDER_LISTING_MAX_BYTES": "1_000"}) == 1000
    for bad in ("lots", "-5", "0", "1.5"):
        with pytest.raises(BadInput, match="TRIALFINDER_LISTING_MAX_BYTES"):
            max_bytes({"TRIALFINDER_LISTING_MAX_BYTES": bad})
    assert deadline_seconds({}) == 60.0
    assert deadline_seconds({"TRIALFINDER_LISTING_DEADLINE": "2.5"}) == 2.5
    with pytest.raises(BadInput):
        deadline_seconds({"TRIALFINDER_LISTING_DEADLINE": "inf"})


def test_a_file_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    """A huge (sparse) file is refused from its size, before anything is read."""
    huge = tmp_path / "huge.html"
    with huge.open("wb") as handle:
        handle.truncate(50 * 1024**3)  # 50 GiB, sparse: costs nothing on disk
    start = time.perf_counter()
    with pytest.raises(UnusableListing, match=r"larger than 1 MB.*TRIALFINDER_LISTING_MAX_BYTES"):
        read_listing_bytes(huge, limit=1_000_000)
    assert time.perf_counter() - start < 1


def test_dev_zero_is_refused_after_the_cap() -> None:
    """/dev/zero has no size: reading stops one byte past the cap."""
    with pytest.raises(UnusableListing, match=r"larger than 0\.1 MB"):
        read_listing_bytes(Path("/dev/zero"), limit=100_000)


def test_a_fifo_is_read_up_to_the_cap(tmp_path: Path) -> None:
    """A FIFO is read like a file: a page that fits is read whole; an endless writer is cut off
    at the cap, not drained."""
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)

    def write(data: bytes, endless: bool) -> None:
        try:
            with fifo.open("wb") as handle:
                handle.write(data)
                while endless:
                    handle.write(b"x" * 65536)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write, args=(SEED_TEXT.encode(), False))
    writer.start()
    assert read_listing_bytes(fifo, limit=1_000_000) == SEED_TEXT.encode()
    writer.join(5)

    writer = threading.Thread(target=write, args=(b"", True), daemon=True)
    writer.start()
    with pytest.raises(UnusableListing, match="larger than"):
        read_listing_bytes(fifo, limit=200_000)
    writer.join(5)
    assert not writer.is_alive()


def test_unreadable_paths_are_bad_input(tmp_path: Path) -> None:
    """A missing file or a directory: one line, exit 2."""
    for path in (tmp_path / "missing.html", tmp_path):
        with pytest.raises(UnusableListing, match="Cannot read") as caught:
            read_listing_bytes(path)
        assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (gzip.compress(SEED_TEXT.encode()), "gzip-compressed data"),
        (b"\x00" * 5000, "binary data"),
        (bytes(range(256)) * 64, "binary data"),
        (os.urandom(20_000), None),
        (SEED_TEXT.encode()[:3000] + os.urandom(3000), None),
    ],
)
def test_binary_data_is_refused(tmp_path: Path, data: bytes, kind: str | None) -> None:
    """Documents, images, archives, zeros, random bytes: one line naming what it is, exit 2."""
    page = tmp_path / "page.html"
    page.write_bytes(data)
    with pytest.raises(UnusableListing, match="not a listing page") as caught:
        load_listing(page)
    if kind is not None:
        assert f"is {kind}, not a listing page" in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_few_stray_control_characters_are_still_text() -> None:
    """A page with an odd control character here and there is read, not taken for binary."""
    noisy = SEED_TEXT.replace("Institut Paoli", "Institut\x07 Paoli", 1)
    noisy = noisy.replace("\n\n", "\n\x0c\n", 3)
    trial = parse_listing(noisy.encode())
    assert len(trial.sites) == 16


def test_html_to_text_is_linear() -> None:
    """35,000 paragraphs (the page that took minutes) read in seconds, and ten times the
    paragraphs take about ten times as long, not a hundred."""
    def page(count: int) -> str:
        body = "".join(f"<p>Paragraph {i} with <b>bold</b> text.</p>\n" for i in range(count))
        return f"<html><body><h1>T</h1>{body}</body></html>"

    small, large = page(3_500), page(35_000)

    def timed(markup: str) -> float:
        start = time.perf_counter()
        text = html_to_text(markup)
        elapsed = time.perf_counter() - start
        assert text.count("\n\n") >= markup.count("<p>")
        return elapsed

    base = min(timed(small) for _ in range(2))
    elapsed = timed(large)
    assert elapsed < 60
    assert elapsed / base < 30, (base, elapsed)


def test_deep_nesting_does_not_recurse() -> None:
    """Tens of thousands of nested elements are read without a RecursionError."""
    depth = 30_000
    page = (
        "<html><body><h1>Deep</h1>" + "<div><span>" * depth
        + "Clinical Study Identifier: NCT00000002" + "</span></div>" * depth + "</body></html>"
    )
    trial = parse_listing(page)
    assert (trial.nct_id, trial.title) == ("NCT00000002", "Deep")


# --- fetching ---------------------------------------------------------------------------------


def test_fetch_listing_sends_a_user_agent(httpserver) -> None:  # type: ignore[no-untyped-def]
    """fetch_listing identifies itself, parses the page and records when it was retrieved."""
    httpserver.expect_request(
        "/trial", headers={"User-Agent": USER_AGENT}
    ).respond_with_data(SEED_HTML, content_type="text/html; charset=utf-8")
    trial = fetch_listing(httpserver.url_for("/trial"))
    assert trial.nct_id == "NCT02260505"
    assert trial.source.url == httpserver.url_for("/trial")
    assert trial.source.as_of == "2019-01"
    assert trial.source.retrieved is not None
    assert len(trial.sites) == 16


def test_load_listing_from_a_url_is_the_file_record(httpserver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Over HTTP (gzip-compressed) the page gives the record its saved file gives, placed the
    same; only the source differs."""
    httpserver.expect_request("/page").respond_with_data(
        gzip.compress(SEED_HTML.encode()), content_type="text/html",
        headers={"Content-Encoding": "gzip"},
    )
    fetched = load_listing(httpserver.url_for("/page"))
    saved = tmp_path / "page.html"
    saved.write_text(SEED_HTML, encoding="utf-8")
    local = load_listing(saved)
    assert fetched.replace(source=local.source) == local
    assert fetched.source.url == httpserver.url_for("/page")
    assert local.source.url == "page.html"


def test_fetch_listing_http_error(httpserver) -> None:  # type: ignore[no-untyped-def]
    """An HTTP error answer is a fetch failure (exit 1) naming the status."""
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    with pytest.raises(ListingFetchError, match="HTTP 404") as caught:
        fetch_listing(httpserver.url_for("/gone"))
    assert caught.value.exit_code == 1


def test_fetch_listing_unreachable() -> None:
    """A refused connection is a fetch failure in a few words."""
    with pytest.raises(ListingFetchError, match="Could not fetch") as caught:
        fetch_listing("http://127.0.0.1:9/listing", timeout=2)
    assert len(str(caught.value)) < 150
    assert caught.value.exit_code == 1


def test_fetched_page_that_is_not_a_listing(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A page without a trial identifier is unusable input (exit 2)."""
    httpserver.expect_request("/home").respond_with_data(
        "<html><body><h1>Welcome</h1></body></html>", content_type="text/html"
    )
    with pytest.raises(UnusableListing, match="not a trial listing page") as caught:
        fetch_listing(httpserver.url_for("/home"))
    assert caught.value.exit_code == 2


def test_fetched_binary_is_refused(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A PDF content type, or binary bytes as text/html, are unusable input."""
    httpserver.expect_request("/doc").respond_with_data(b"%PDF-1.4", content_type="application/pdf")
    with pytest.raises(UnusableListing, match="application/pdf, not a listing page"):
        fetch_listing(httpserver.url_for("/doc"))
    httpserver.expect_request("/noise").respond_with_data(
        bytes(range(256)) * 40, content_type="text/html"
    )
    with pytest.raises(UnusableListing, match="binary data"):
        fetch_listing(httpserver.url_for("/noise"))


def test_fetched_page_over_the_cap(httpserver) -> None:  # type: ignore[no-untyped-def]
    """Too large by its Content-Length, or streamed without one: refused at the cap."""
    httpserver.expect_request("/big").respond_with_data("x" * 300_000, content_type="text/html")
    with pytest.raises(UnusableListing, match=r"larger than 0\.1 MB"):
        fetch_listing(httpserver.url_for("/big"), limit=100_000)

    def endless(_: Request) -> Response:
        def body():  # type: ignore[no-untyped-def]
            for _ in range(1000):
                yield b"<p>" + b"x" * 65536 + b"</p>"
        return Response(body(), content_type="text/html")

    httpserver.expect_request("/stream").respond_with_handler(endless)
    with pytest.raises(UnusableListing, match=r"larger than 0\.2 MB"):
        fetch_listing(httpserver.url_for("/stream"), limit=200_000)


def test_a_dripping_server_meets_the_deadline(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A server sending a few bytes at a time is given up on at the overall deadline, though
    no single read times out."""
    def drip(_: Request) -> Response:
        def body():  # type: ignore[no-untyped-def]
            for _ in range(60):
                yield b"<p>drip</p>"
                time.sleep(0.05)
        return Response(body(), content_type="text/html")

    httpserver.expect_request("/drip").respond_with_handler(drip)
    start = time.monotonic()
    with pytest.raises(ListingFetchError, match=r"more than 0.5 s to download") as caught:
        fetch_listing(httpserver.url_for("/drip"), deadline=0.5)
    assert time.monotonic() - start < 2.5
    assert caught.value.exit_code == 1


def test_a_server_gone_silent_meets_the_deadline(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A server that sends a little, then nothing, is given up on at the overall deadline,
    not after the read timeout (30 s): no single wait for bytes goes past the deadline."""
    def stall(_: Request) -> Response:
        def body():  # type: ignore[no-untyped-def]
            yield b"<p>first</p>"
            time.sleep(3)
            yield b"<p>late</p>"
        return Response(body(), content_type="text/html")

    httpserver.expect_request("/stall").respond_with_handler(stall)
    start = time.monotonic()
    with pytest.raises(ListingFetchError, match=r"more than 0.5 s to download"):
        fetch_listing(httpserver.url_for("/stall"), deadline=0.5)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("url", ["ftp://example.org/page", "file:///etc/passwd", "http://"])
def test_only_http_urls(url: str) -> None:
    """Other schemes are refused as bad input, before any network use."""
    with pytest.raises(UnusableListing, match="not an http"):
        load_listing(url)


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
    assert decode_listing("Besançon".encode("latin-1"), declared="ISO-8859-1") == "Besançon"


def test_fetch_listing_without_a_header_charset_uses_the_meta(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A Latin-1 page served without a charset is read by its <meta charset>."""
    httpserver.expect_request("/latin").respond_with_data(
        LATIN1_HTML.encode("latin-1"), content_type="text/html"
    )
    trial = fetch_listing(httpserver.url_for("/latin"))
    assert [s.facility for s in trial.sites] == [s.facility for s in parse_listing(SEED_TEXT).sites]


def test_fetch_listing_header_charset_wins(httpserver) -> None:  # type: ignore[no-untyped-def]
    """A charset in the Content-Type header decides over the page's guess."""
    httpserver.expect_request("/cp").respond_with_data(
        SEED_TEXT.encode("cp1252"), content_type="text/plain; charset=windows-1252"
    )
    assert fetch_listing(httpserver.url_for("/cp")).sites[2].city == "Besançon"


# --- a sites section that yields nothing ------------------------------------------------------

HEAD = "A Title\n\nClinical Study Identifier: NCT00000001\n\n"


def test_unreadable_sites_section_is_an_error() -> None:
    """Site blocks exist but none reads as a site: an error, not a trial with 0 sites."""
    page = HEAD + (
        "Contact Investigators or Research Sites near you\n\n"
        "Jane DOE, MD\nSome Hospital\nConnect »\n\nAnother Hospital\nConnect »\n"
    )
    with pytest.raises(UnusableListing, match=r"no site blocks could be read \(2 block"):
        parse_listing(page)


def test_empty_sites_section_is_an_error() -> None:
    """A sites heading with nothing under it (a truncated save) is an error too."""
    page = HEAD + "Contact Investigators or Research Sites near you\n\nStart Over\n"
    with pytest.raises(UnusableListing, match="no site blocks could be read"):
        parse_listing(page + "\nRecruitment Status: Open\n")


def test_connect_markers_without_the_heading_is_an_error() -> None:
    """'Connect »' markers show sites were there even when the heading was lost."""
    page = HEAD + "Jane DOE, MD\nSome Hospital\nBoston, United States\nConnect »\n"
    with pytest.raises(UnusableListing, match="no site blocks could be read"):
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


def test_an_identifier_in_other_digits_is_not_taken_for_one() -> None:
    """Full-width or other non-ASCII digits after "NCT" are not an identifier (as `ids`
    rules): the page's ASCII one is read, and a page with none is not a listing page."""
    page = ("Last updated on March 2021\n\nA study\n\nClinical Study Identifier: "
            "NCT\uff10\uff13\uff18\uff13\uff10\uff17\uff18\uff18\n\nSee also NCT04123456\n\n"
            "Recruitment Status: Open\n")
    assert parse_listing(page).nct_id == "NCT04123456"
    with pytest.raises(UnusableListing, match="not a trial listing page"):
        parse_listing(page.replace("See also NCT04123456", ""))
