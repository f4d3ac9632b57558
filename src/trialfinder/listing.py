"""CenterWatch-style trial listing pages: a pure parser and a thin fetch.

The parser keys on what the page shows a reader, not on markup: "Last updated on January 2019",
the title (the first substantive line), the "Brief description of study" and "Detailed Study
Description" headings, "Clinical Study Identifier: NCT…", the site blocks after "Contact
Investigators or Research Sites near you" (investigator "Name, Title" / facility / "City,
Country" / "Connect »") and "Recruitment Status: Open". An HTML page is first reduced to its
visible text with the block structure kept, then read the same way. The page's chrome ("Start
Over", "Receive Emails About New Clinical Trials!" …) is skipped.

Names are plain text throughout: markup inside a name stays characters, nothing is rendered.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trialfinder import __version__
from trialfinder.errors import ListingError
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Contact, Site, Source, Status, Trial
from trialfinder.repair import repair_name

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

SOURCE_DESCRIPTION = "CenterWatch-style listing page"
USER_AGENT = f"trialfinder/{__version__} (clinical-trial site finder; python-requests)"
DEFAULT_TIMEOUT = (10.0, 30.0)
"""(connect, read) seconds."""

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan", "janvier"),
            ("february", "feb", "février", "fevrier"),
            ("march", "mar", "mars"),
            ("april", "apr", "avril"),
            ("may", "mai"),
            ("june", "jun", "juin"),
            ("july", "jul", "juillet"),
            ("august", "aug", "août", "aout"),
            ("september", "sep", "sept", "septembre"),
            ("october", "oct", "octobre"),
            ("november", "nov", "novembre"),
            ("december", "dec", "décembre", "decembre"),
        ),
        start=1,
    )
    for name in names
}

_LAST_UPDATED = re.compile(r"^last\s+updated\s+on\s+(\w+)\.?\s+(\d{4})\b", re.I)
_IDENTIFIER = re.compile(r"clinical\s+study\s+identifier\s*:\s*(NCT\s*\d{8})", re.I)
_ANY_NCT = re.compile(r"\bNCT\d{8}\b", re.I)
_STATUS = re.compile(r"^recruitment\s+status\s*:\s*(.*)$", re.I)
_BRIEF = re.compile(r"^brief\s+description\s+of\s+(the\s+)?study\s*:?$", re.I)
_DETAILED = re.compile(r"^detailed\s+study\s+description\s*:?$", re.I)
_SITES = re.compile(r"^contact\s+investigators\s+or\s+research\s+sites(\s+near\s+you)?\s*:?$", re.I)
_CONNECT = re.compile(r"^connect\s*(»|&raquo;?|>>|&gt;&gt;|›|→|>)?$", re.I)
_CHROME = re.compile(
    r"^(start\s+over"
    r"|brief\s+description\s+eligibility\s+contact\s+research\s+team"
    r"|receive\s+emails\s+about\s+new\s+clinical\s+trials!?"
    r"|sign\s+up\s+for\s+our\s+free\s+service\b.*)$",
    re.I,
)
# Titles that end an investigator line ("Florence DUFFAUD, Pr"), compared without dots.
_TITLES = frozenset(
    (
        "pr", "prof", "professor", "professeur", "dr", "doctor", "docteur", "md", "phd", "do",
        "mbbs", "pharmd", "rn", "np", "pa", "msc", "mph", "frcp", "frcpc", "facp", "mr", "mrs",
        "ms", "mme",
    )
)
# Invisible or odd characters a copied page carries.
_SPACES = str.maketrans({"\u00a0": " ", "\u2007": " ", "\u202f": " ", "\t": " ",
                         "\u200b": None, "\ufeff": None, "\u00ad": None})


def parse_listing(content: str, *, source_url: str | None = None) -> Trial:
    """Read a listing page, HTML or its visible text, into a Trial.

    Raises ListingError when the page has no ClinicalTrials.gov identifier. Site blocks that
    cannot be read (no "City, Country" line) are logged and skipped.
    """
    if _looks_like_html(content):
        content = html_to_text(content)
    lines = _normalise_lines(content)

    nct_id = _identifier(lines)
    last_update = _last_update(lines)
    status = _status(lines)

    brief_at = _find(lines, _BRIEF)
    detailed_at = _find(lines, _DETAILED)
    identifier_at = next((k for k, ln in enumerate(lines) if _IDENTIFIER.search(ln)), None)
    sites_at = _find(lines, _SITES)
    status_at = _find(lines, _STATUS)
    found = (brief_at, detailed_at, identifier_at, sites_at, status_at)
    marks = [m for m in found if m is not None]

    def section(start: int | None) -> str | None:
        if start is None:
            return None
        end = min((m for m in marks if m > start), default=len(lines))
        return _paragraphs(lines[start + 1 : end])

    title = _title(lines, min(marks, default=len(lines)))
    if not title:
        raise ListingError(f"The listing page for {nct_id} has no title line")

    sites: tuple[Site, ...] = ()
    if sites_at is not None:
        end = min((m for m in marks if m > sites_at), default=len(lines))
        sites = _sites(lines[sites_at + 1 : end])

    return Trial(
        nct_id=nct_id,
        title=title,
        source=Source(
            kind="listing",
            description=SOURCE_DESCRIPTION,
            as_of=last_update or "",
            url=source_url,
        ),
        status=status,
        brief_summary=section(brief_at),
        detailed_description=section(detailed_at),
        last_update=last_update,
        sites=sites,
    )


def fetch_listing(
    url: str,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
) -> Trial:
    """Download a listing page and parse it; network trouble becomes a ListingError."""
    import requests

    http = session or requests.Session()
    try:
        response = http.get(
            url, timeout=timeout, headers={"User-Agent": USER_AGENT, "Accept": "text/html"}
        )
    except requests.Timeout as exc:
        raise ListingError(f"The listing page {url} did not answer in time ({exc})") from exc
    except requests.RequestException as exc:
        raise ListingError(f"Could not fetch the listing page {url}: {exc}") from exc
    finally:
        if session is None:
            http.close()
    if response.status_code >= 400:
        raise ListingError(f"The listing page {url} answered HTTP {response.status_code}")
    if "charset" not in response.headers.get("Content-Type", "").lower():
        response.encoding = response.apparent_encoding or "utf-8"
    trial = parse_listing(response.text, source_url=url)
    retrieved = datetime.now(UTC).replace(microsecond=0).isoformat()
    source = trial.source
    return trial.replace(
        source=Source(
            kind=source.kind,
            description=source.description,
            as_of=source.as_of or retrieved[:10],
            url=source.url,
            retrieved=retrieved,
        )
    )


# --- HTML to visible text -------------------------------------------------------------------

_BLOCKS = frozenset(
    (
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "ol", "p", "pre", "section", "table", "tr", "ul", "td", "th",
    )
)
_HIDDEN = ("script", "style", "nav", "noscript", "template", "head", "iframe", "svg", "button")


def _looks_like_html(content: str) -> bool:
    return content.lstrip("\ufeff \t\r\n").startswith("<")


def html_to_text(markup: str) -> str:
    """The visible text of an HTML page, one block element per paragraph.

    Scripts, styles and navigation are dropped; ordered-list items get their numbers back
    ("1. …") as a browser shows them; ``<br>`` is a line break.
    """
    from bs4 import BeautifulSoup, NavigableString
    from bs4.element import PreformattedString

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup.find_all(_HIDDEN):
        tag.decompose()
    # Comments, the doctype, CDATA and processing instructions are not visible text.
    for special in soup.find_all(string=lambda s: isinstance(s, PreformattedString)):
        special.extract()
    # HTML whitespace is not significant outside <pre>: collapse it before adding line breaks.
    for string in list(soup.find_all(string=True)):
        if string.find_parent("pre") is None:
            string.replace_with(NavigableString(re.sub(r"[ \t\r\n\f]+", " ", str(string))))
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for ol in soup.find_all("ol"):
        start = _int(ol.get("start"), 1)
        for number, li in enumerate(ol.find_all("li", recursive=False), start=start):
            li.insert(0, NavigableString(f"{number}. "))
    for tag in soup.find_all(_BLOCKS):
        if tag.name in ("li", "tr", "dt", "dd"):  # a line of its block, not a paragraph
            tag.insert_before(NavigableString("\n"))
        else:
            tag.insert_before(NavigableString("\n\n"))
            tag.insert_after(NavigableString("\n\n"))
    text = soup.get_text().replace("\u00a0", " ")
    lines = [ln.strip(" ") for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


# --- text ---------------------------------------------------------------------------------------


def _normalise_lines(content: str) -> list[str]:
    text = content.replace("\r\n", "\n").replace("\r", "\n").translate(_SPACES)
    return [re.sub(r" {2,}", " ", ln).strip() if ln.strip() else "" for ln in text.split("\n")]


def _find(lines: list[str], pattern: re.Pattern[str]) -> int | None:
    return next((k for k, ln in enumerate(lines) if pattern.match(ln)), None)


def _identifier(lines: list[str]) -> str:
    text = "\n".join(lines)
    match = _IDENTIFIER.search(text) or _ANY_NCT.search(text)
    if match is None:
        raise ListingError(
            "The listing page has no ClinicalTrials.gov identifier "
            "(expected 'Clinical Study Identifier: NCT' and 8 digits)"
        )
    value = match.group(1) if match.groups() else match.group(0)
    return normalise_nct_id(value.replace(" ", ""))


def _last_update(lines: list[str]) -> str | None:
    for line in lines:
        match = _LAST_UPDATED.match(line)
        if match:
            month = _MONTHS.get(match.group(1).lower())
            if month:
                return f"{match.group(2)}-{month:02d}"
            log.warning("Unrecognised month in %r", line)
            return match.group(2)
    return None


def _status(lines: list[str]) -> Status | None:
    for line in lines:
        match = _STATUS.match(line)
        if match:
            return Status.parse(match.group(1))
    return None


def _title(lines: list[str], end: int) -> str | None:
    for line in lines[:end]:
        if line and not _LAST_UPDATED.match(line) and not _CHROME.match(line):
            return line
    return None


def _paragraphs(lines: list[str]) -> str | None:
    """Blank-line separated paragraphs; lines inside one (list items) stay on their own."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if _CHROME.match(line):
            continue
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    text = "\n\n".join("\n".join(p) for p in paragraphs if p)
    return text or None


def _sites(lines: list[str]) -> tuple[Site, ...]:
    """Site blocks: the non-blank lines up to each "Connect »" (or up to the end)."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        if not line or _CHROME.match(line):
            continue
        if _CONNECT.match(line):
            blocks.append([])
        else:
            blocks[-1].append(line)
    sites = []
    for block in blocks:
        if not block:
            continue
        site = _site(block)
        if site is None:
            log.warning("Skipped a site block that does not read as a site: %r", block)
        else:
            sites.append(site)
    return tuple(sites)


def _investigator(line: str) -> Contact | None:
    """'François BERTUCCI, Pr' -> Contact; None when the line does not end with a title."""
    parts = [p.strip() for p in line.split(",")]
    k = len(parts)
    while k > 1 and parts[k - 1].replace(".", "").lower() in _TITLES:
        k -= 1  # "Name, MD, PhD" has two
    name = ", ".join(parts[:k]).strip()
    if k == len(parts) or not name:
        return None
    return Contact(name=name, title=", ".join(parts[k:]), role="PRINCIPAL_INVESTIGATOR")


def _location(line: str) -> tuple[str, str | None, str | None, str] | None:
    """'City, Country' or 'City, State, Country' (a part of digits is a postal code)."""
    parts = [p.strip() for p in line.split(",") if p.strip()]
    if len(parts) < 2:
        return None
    country = parts[-1]
    postal = next((p for p in parts[1:-1] if re.fullmatch(r"[A-Z]{0,2}-?\d[\d -]{2,9}", p)), None)
    middle = [p for p in parts[1:-1] if p != postal]
    state = ", ".join(middle) or None
    return parts[0], state, postal, country


def _site(block: list[str]) -> Site | None:
    if len(block) < 2:
        return None
    location = _location(block[-1])
    if location is None:
        return None
    city, state, postal, country = location
    contacts: list[Contact] = []
    facility_lines: list[str] = []
    for line in block[:-1]:
        person = _investigator(line) if not facility_lines else None
        if person is not None and len(block) > 2:
            contacts.append(person)
        else:
            facility_lines.append(line)
    if not facility_lines:
        return None
    raw = " ".join(facility_lines)
    repaired = repair_name(raw)
    return Site(
        facility=repaired.text,
        facility_raw=raw if repaired.changed else None,
        unrepaired=repaired.unrepaired,
        city=city,
        state=state,
        zip=postal,
        country=country,
        status=None,
        contacts=tuple(contacts),
    )
