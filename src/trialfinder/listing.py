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

import codecs
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
# "Connect »" and its spellings, including a mis-decoded "»" ("Â»", "\ufffd").
_CONNECT = re.compile(r"^connect\s*(?:&raquo;?|&gt;&gt;|Â»|[^\w\s]{1,3})?$", re.I)
_CHROME = re.compile(
    r"^(start\s+over"
    r"|brief\s+description\s+eligibility\s+contact\s+research\s+team"
    r"|receive\s+emails\s+about\s+new\s+clinical\s+trials!?"
    r"|sign\s+up\s+for\s+our\s+free\s+service\b.*)$",
    re.I,
)
# Title words of an investigator line ("Florence DUFFAUD, Pr", "Hans MÜLLER, Prof. Dr.",
# "Jane DOE, MD/PhD"), compared lower-case without dots, "ª" or "º" (English, French, German,
# Spanish, Italian, Portuguese usage). A title is one or more of these words separated by
# spaces, slashes, hyphens or "&".
_TITLES = frozenset(
    (
        # doctor / professor
        "dr", "drs", "dra", "dras", "doctor", "doctora", "docteur", "doktor", "dott", "dottssa",
        "dottore", "dottoressa", "doutor", "doutora", "pr", "prof", "profa", "profe", "profs",
        "professor", "professora", "professeur", "professeure", "professore", "professoressa",
        "univ", "priv", "doz", "pd", "apl", "habil", "med", "rer", "nat", "dent", "phil", "hc",
        "sc", "em",
        # degrees and qualifications
        "md", "phd", "dphil", "do", "mbbs", "mbchb", "mb", "bs", "bch", "chb", "bm", "bao",
        "frcp", "frcpc", "frcpe", "frcs", "frcsc", "frcr", "frcpath", "frcog", "mrcp", "mrcs",
        "facp", "facs", "fasco", "fracp", "facc", "mph", "msc", "mba", "ma", "ms", "bsc", "dds",
        "dmd", "pharmd", "pharm", "rph", "rn", "bsn", "msn", "dnp", "np", "aprn", "crnp", "fnp",
        "pa", "pac", "ccrp", "ccrc", "crc", "lic", "licda", "licdo", "ing", "mag", "mudr",
        # forms of address
        "mr", "mrs", "ms", "miss", "mx", "sir", "dame", "mme", "mlle", "m", "herr", "frau",
        "sr", "sra", "srta", "sig", "sigra", "dona", "dom",
        # connectors inside a combined title ("MD and PhD")
        "and", "et", "und", "y", "e",
    )
)
_TITLE_SPLIT = re.compile(r"[\s/&+-]+")
# A name part that is a place or an organisation, not a person.
_NOT_A_PERSON = re.compile(
    r"\d|hospit|h[oô]pital|cent(?:er|re|ro)\b|institut|clini|klini|universi|ospedal|chu\b"
    r"|foundation|fondation|fundaci|research|medical|health|oncolog|cancer",
    re.I,
)
# Invisible or odd characters a copied page carries.
_SPACES = str.maketrans({"\u00a0": " ", "\u2007": " ", "\u202f": " ", "\t": " ",
                         "\u200b": None, "\ufeff": None, "\u00ad": None})


def parse_listing(content: str | bytes, *, source_url: str | None = None) -> Trial:
    """Read a listing page, HTML or its visible text, into a Trial.

    Bytes are decoded with decode_listing. Raises ListingError when the page has no
    ClinicalTrials.gov identifier, or when it has a sites section (or "Connect »" markers) of
    which no site block can be read. Single site blocks that cannot be read (no "City,
    Country" line) are logged briefly and skipped. A page with no sites section at all gives a
    Trial without sites.
    """
    if isinstance(content, bytes):
        content = decode_listing(content)
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
        sites, skipped = _sites(lines[sites_at + 1 : end])
        if not sites:
            detail = (
                f"{skipped} block(s) without a 'City, Country' line before 'Connect »'"
                if skipped
                else "the section is empty"
            )
            raise ListingError(
                f"The listing page for {nct_id} has a 'Contact Investigators or Research Sites' "
                f"section but no site blocks could be read ({detail})"
            )
    elif any(_CONNECT.match(line) for line in lines):
        raise ListingError(
            f"The listing page for {nct_id} has 'Connect »' site markers but no "
            "'Contact Investigators or Research Sites' heading, so no site blocks could be read"
        )

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
    if "charset" in response.headers.get("Content-Type", "").lower():
        content: str | bytes = response.text
    else:
        content = response.content  # BOM, <meta charset>, UTF-8, then cp1252
    trial = parse_listing(content, source_url=url)
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


# --- bytes to text ----------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARED = re.compile(
    rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)"""
    rb"""|<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)""",
    re.I,
)
# What browsers read these labels as (WHATWG Encoding): Latin-1 and ASCII pages are cp1252.
_LABEL_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252"}


def decode_listing(data: bytes) -> str:
    """The text of a saved listing page, whatever its encoding.

    In order: a byte-order mark (UTF-8, UTF-16, UTF-32); for HTML, a charset declared in the
    first 2 KB (``<meta charset>``, ``<meta http-equiv="Content-Type" content="…;
    charset=…">`` or ``<?xml encoding>``); UTF-8 if the bytes are valid UTF-8; else cp1252
    (Windows Latin-1, a superset of ISO-8859-1 for text). BOM-less UTF-16 is recognised by its
    zero bytes. A declared single-byte charset yields to UTF-8 when the bytes are valid UTF-8
    with multi-byte characters: that is a page re-saved as UTF-8 with its old <meta> kept.
    Never raises: undecodable bytes become U+FFFD.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    utf16 = _bomless_utf16(data)
    if utf16:
        return data.decode(utf16, errors="replace")
    utf8: str | None
    try:
        utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    declared = _declared_charset(data)
    if declared and declared != "utf-8":
        single_byte = codecs.lookup(declared).name not in _MULTIBYTE
        if not (single_byte and utf8 is not None and not data.isascii()):
            return data.decode(declared, errors="replace")
    if utf8 is not None:
        return utf8
    return data.decode("cp1252", errors="replace")


_MULTIBYTE = frozenset(
    codecs.lookup(name).name
    for name in ("utf-8", "gb18030", "gbk", "gb2312", "big5", "shift_jis", "euc-jp", "euc-kr",
                 "iso2022_jp", "cp932", "cp949", "cp950", "utf-7")
)


def _declared_charset(data: bytes) -> str | None:
    """The Python codec of the charset an HTML/XML page declares in its first 2 KB, if any."""
    head = data[:2048]
    if not head.lstrip(b" \t\r\n").startswith(b"<"):
        return None
    match = _DECLARED.search(head)
    if match is None:
        return None
    label = (match.group(1) or match.group(2)).decode("ascii").lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        log.warning("Unknown charset %r declared in the page; reading it as UTF-8", label[:40])
        return None
    if name.startswith(("utf-16", "utf-32")):  # bytes readable as ASCII cannot be UTF-16
        return "utf-8"
    return _LABEL_ALIASES.get(name, name)


def _bomless_utf16(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when every other byte of mostly-ASCII text is zero."""
    sample = data[:4096]
    sample = sample[: len(sample) // 2 * 2]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) <= 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) <= 0.1 * len(odd):
        return "utf-16-be"
    return None


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


_MAX_SKIP_WARNINGS = 3
_EXCERPT = 80


def _sites(lines: list[str]) -> tuple[tuple[Site, ...], int]:
    """Site blocks: the non-blank lines up to each "Connect »" (or up to the end).

    Returns the sites read and how many non-empty blocks could not be read. Each unread block
    is a one-line warning with a short excerpt, at most a few of them, then a count.
    """
    blocks: list[list[str]] = [[]]
    for line in lines:
        if not line or _CHROME.match(line):
            continue
        if _CONNECT.match(line):
            blocks.append([])
        else:
            blocks[-1].append(line)
    sites = []
    skipped = 0
    for block in blocks:
        if not block:
            continue
        site = _site(block)
        if site is not None:
            sites.append(site)
            continue
        skipped += 1
        if skipped <= _MAX_SKIP_WARNINGS:
            log.warning(
                "Skipped a site block with no 'City, Country' line (%d line(s)): %r",
                len(block), _excerpt(" / ".join(block)),
            )
    if skipped > _MAX_SKIP_WARNINGS:
        log.warning("Skipped %d more site blocks like these", skipped - _MAX_SKIP_WARNINGS)
    return tuple(sites), skipped


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _is_title(part: str) -> bool:
    """'Pr', 'Prof. Dr.', 'MD/PhD', 'Dott.ssa', 'Univ.-Prof. Dr. med.' (any case)."""
    words = [w for w in _TITLE_SPLIT.split(_title_key(part)) if w]
    return bool(words) and all(w in _TITLES for w in words) and not all(
        w in _CONNECTORS for w in words
    )


def _title_key(text: str) -> str:
    return text.replace(".", "").replace("ª", "").replace("º", "").strip().lower()


_CONNECTORS = frozenset(("and", "et", "und", "y", "e", "m"))
# A tail after "Name," that is shaped like an abbreviated title even if not a known one.
_TITLE_SHAPED = re.compile(r"^(?=.{1,20}$)[^\W\d_]{1,8}\.?(?:[\s/.-]+[^\W\d_]{1,8}\.?){0,2}$")
_SURNAME = re.compile(r"\b[^\W\d_a-z]{2,}\b")  # an upper-case word: "DUFFAUD", "MÜLLER"


def _person_name(name: str) -> bool:
    return bool(name) and 1 <= len(name.split()) <= 6 and not _NOT_A_PERSON.search(name)


def _investigator(line: str, *, first: bool = False) -> Contact | None:
    """'François BERTUCCI, Pr' -> Contact; None when the line does not read as a person.

    A trailing title of known words ("MD, PhD", "Prof. Dr.", "Dra") makes an investigator line.
    On the first line of a block (``first``) two shapes more do: "Firstname SURNAME, <short
    abbreviation>" (an unknown title) and a leading title, "Prof. Dr. Hans Müller".
    """
    parts = [p.strip() for p in line.split(",")]
    k = len(parts)
    while k > 1 and _is_title(parts[k - 1]):
        k -= 1  # "Name, MD, PhD" has two
    name = ", ".join(parts[:k]).strip()
    if k < len(parts) and _person_name(name):
        return Contact(name=name, title=", ".join(parts[k:]), role="PRINCIPAL_INVESTIGATOR")
    if not first:
        return None
    if (
        len(parts) == 2
        and _TITLE_SHAPED.match(parts[1])
        and _person_name(parts[0])
        and (_SURNAME.search(parts[0]) or "." in parts[1])
    ):
        return Contact(name=parts[0], title=parts[1], role="PRINCIPAL_INVESTIGATOR")
    words = line.split()
    n = 0
    while n < len(words) - 1 and _is_title(words[n]) and _title_key(words[n]) != "m":
        n += 1
    rest = " ".join(words[n:])
    if n and "," not in line and rest[:1].isupper() and _person_name(rest):
        return Contact(name=rest, title=" ".join(words[:n]), role="PRINCIPAL_INVESTIGATOR")
    return None


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
    for k, line in enumerate(block[:-1]):
        person = _investigator(line, first=k == 0) if not facility_lines else None
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
