"""CenterWatch-style trial listing pages: read within bounds, parse, repair, place.

**Reading.** A page comes from a file or an http(s) URL and is read up to `max_bytes()` (20 MB
unless ``TRIALFINDER_LISTING_MAX_BYTES`` says otherwise), never more: a FIFO, ``/dev/zero`` or a
huge file is refused once the cap is passed, without loading the rest. Binary data (a PDF, an
image, an archive, random bytes) is refused too. A URL is fetched with connect/read timeouts,
an overall deadline (`deadline_seconds()`), the same size cap and a descriptive User-Agent.

**Parsing** keys on what the page shows a reader, not on markup: "Last updated on January
2019", the title (the page's ``<h1>``, else its first substantive line), the "Brief
description of study" and "Detailed Study Description" headings, "Clinical Study Identifier:
NCT…", the site blocks after "Contact Investigators or Research Sites near you" (investigator
"Name, Title" / facility / "City, Country" / "Connect »") and "Recruitment Status: Open".

HTML is read as HTML (BeautifulSoup), in one pass over the tree: block elements, ``<br>``,
lists and table cells give the lines a browser shows; headings end the sections they do not
belong to; the block around each "Connect »" marker (the largest element holding that one
marker and nothing of the page's other sections) is that site's block, wherever the marker sits
in it. A page that is only text is read by its layout: site blocks end at "Connect »". Both
give the same record. Chrome is never part of it: scripts, styles, hidden elements, form
controls; navigation, sign-up boxes, banners, footers and buttons (``nav``, ``aside``,
``header``, ``footer``, ``form``, ``dialog``, ``button`` and their ARIA roles) unless they
hold part of the record; and the chrome lines of the text layout ("Start Over", "Receive
Emails About New Clinical Trials!" …).

**Status** is kept as the page words it (`Trial.status_text`, "Open", "Closed"), with
`Trial.status` None: what the words mean for a patient is `recruitment.page_standing`'s
answer; a page that states no status has none.

**Repair and placing** (`finish_listing`): facility names get their lost accented letters
back (`repair.repair_name`), cities are repaired against the gazetteer's names for the
country (`repair.repair_city`), then every site is placed by the offline geocoding chain, or
left unplaced; never guessed.

`load_listing(source)` does all of it: it is what the ``listing`` command prints and what a
``scrape`` stores. Names are plain text throughout: markup inside a name stays characters.
"""

from __future__ import annotations

import bisect
import codecs
import dataclasses
import itertools
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trialfinder import __version__
from trialfinder.errors import BadInput, ListingError, ListingFetchError, UnusableListing
from trialfinder.i18n import N_, _, format_decimal
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Contact, Site, Source, Trial
from trialfinder.repair import Repair, repair_name
from trialfinder.text import excerpt

if TYPE_CHECKING:
    import requests

    from trialfinder.gazetteer import Gazetteer
    from trialfinder.store import Store

log = logging.getLogger(__name__)

SOURCE_DESCRIPTION = "CenterWatch-style listing page"
USER_AGENT = f"trialfinder/{__version__} (clinical-trial site finder; python-requests)"
DEFAULT_TIMEOUT = (10.0, 30.0)
"""(connect, read) seconds for one network wait."""
DEFAULT_MAX_BYTES = 20_000_000
"""The largest listing page read, in bytes (a real one is 50–500 KB)."""
MAX_BYTES_ENV = "TRIALFINDER_LISTING_MAX_BYTES"
DEFAULT_DEADLINE = 60.0
"""Seconds a page's download may take in all, however the server drips it."""
DEADLINE_ENV = "TRIALFINDER_LISTING_DEADLINE"

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SOURCE_DESCRIPTION",
    "USER_AGENT",
    "FetchedPage",
    "ListingError",
    "deadline_seconds",
    "decode_listing",
    "fetch_listing",
    "fetch_page",
    "finish_listing",
    "html_to_text",
    "is_url",
    "listing_text",
    "load_listing",
    "max_bytes",
    "parse_listing",
    "read_listing_bytes",
]


# --- limits ------------------------------------------------------------------------------------


def max_bytes(environ: dict[str, str] | None = None) -> int:
    """The size cap: ``TRIALFINDER_LISTING_MAX_BYTES`` (a number of bytes), else 20 MB."""
    value = (os.environ if environ is None else environ).get(MAX_BYTES_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        number = 0
    if number <= 0:
        raise BadInput(
            _("{setting}={value} is not a positive number of bytes (e.g. {example})").format(
                setting=MAX_BYTES_ENV, value=repr(value[:40]), example=DEFAULT_MAX_BYTES
            )
        )
    return number


def deadline_seconds(environ: dict[str, str] | None = None) -> float:
    """The download deadline: ``TRIALFINDER_LISTING_DEADLINE`` (seconds), else 60."""
    value = (os.environ if environ is None else environ).get(DEADLINE_ENV, "").strip()
    if not value:
        return DEFAULT_DEADLINE
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise BadInput(
            _("{setting}={value} is not a positive number of seconds").format(
                setting=DEADLINE_ENV, value=repr(value[:40])
            )
        )
    return number


def _megabytes(count: int) -> str:
    if count < 100_000:
        return _("{count} bytes").format(count=format_decimal(count, 0))
    megabytes = round(count / 1_000_000, 1)
    return _("{count} MB").format(
        count=format_decimal(megabytes, 0 if megabytes.is_integer() else 1))


def _too_large(name: str, limit: int) -> UnusableListing:
    return UnusableListing(
        _(
            "{name} is larger than {size}, the limit for a listing page (set {setting} to "
            "read larger pages)"
        ).format(name=name, size=_megabytes(limit), setting=MAX_BYTES_ENV)
    )


# --- the whole path ------------------------------------------------------------------------


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names a URL (any scheme) rather than a file."""
    return isinstance(source, str) and bool(_URL.match(source))


def load_listing(
    source: str | os.PathLike[str],
    *,
    session: requests.Session | None = None,
    gazetteer: Gazetteer | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    limit: int | None = None,
    deadline: float | None = None,
) -> Trial:
    """A listing page (a file, or an http(s) URL) read, parsed, repaired and placed.

    What the ``listing`` command prints and a ``scrape`` stores. The source is kept as the
    file's name or the URL; the page's "last updated" date is the record's as-of date.
    Raises `UnusableListing` (exit 2) for a page that cannot be used (too large, binary, not
    a trial listing, unreadable file) and `ListingFetchError` (exit 1) when a URL cannot be
    fetched.
    """
    if is_url(source):
        trial = fetch_listing(str(source), session=session, limit=limit, deadline=deadline)
    else:
        path = Path(source)
        data = read_listing_bytes(path, limit=limit)
        trial = parse_listing(listing_text(data, name=str(path)), source_url=path.name)
    return finish_listing(trial, gazetteer=gazetteer, store=store)


def finish_listing(
    trial: Trial,
    *,
    gazetteer: Gazetteer | None = None,
    store: Store | str | os.PathLike[str] | None = None,
) -> Trial:
    """A parsed listing with its cities repaired and its sites placed offline.

    A city is repaired against the gazetteer's names for its country (`repair.repair_city`;
    the text as given is kept in `Site.city_raw`). Sites are then placed by
    `geocode.place_offline`, the one placing function: the store's position cache when a
    store is given (an open `Store` or a path), then the gazetteer; a site it cannot place
    stays unplaced, with its reason. `Trial.placed_by` records the rules and gazetteer build
    that decided.
    """
    from trialfinder.geocode import place_offline
    from trialfinder.repair import CityRepair, repair_city

    if gazetteer is None:
        from trialfinder.gazetteer import Gazetteer

        gazetteer = Gazetteer.bundled()
    sites = []
    repairs: dict[tuple[str, str, str | None], CityRepair] = {}  # a page names a city often
    for site in trial.sites:
        key = (site.city, site.country, site.zip)
        repaired = repairs.get(key)
        if repaired is None:
            repaired = repairs[key] = repair_city(
                site.city, site.country, gazetteer, postal_code=site.zip
            )
            if repaired.candidates:
                log.warning(
                    _("City {city} ({country}) may be any of {places}: left as it is").format(
                        city=repr(_excerpt(site.city)), country=_excerpt(site.country),
                        places=", ".join(repaired.candidates[:5]),
                    )
                )
        if repaired.changed:
            site = dataclasses.replace(site, city=repaired.text, city_raw=site.city)
        sites.append(site)
    return place_offline(trial.replace(sites=tuple(sites)), store, gazetteer)


# --- reading a file ------------------------------------------------------------------------


def read_listing_bytes(path: Path, *, limit: int | None = None) -> bytes:
    """The bytes of a saved page, at most ``limit`` (default `max_bytes()`) of them.

    Never reads more than the cap plus one byte, whatever the file is (a FIFO, a device, a
    file growing while read). Raises `UnusableListing` when the page is larger or cannot be
    read.
    """
    cap = max_bytes() if limit is None else limit
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > cap:
                raise _too_large(str(path), cap)
            data = handle.read(cap + 1)
    except OSError as exc:
        raise UnusableListing(
            _("Cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from None
    if len(data) > cap:
        raise _too_large(str(path), cap)
    return data


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
# File signatures of formats people save by mistake instead of the page (first bytes).
_SIGNATURES = (
    (b"%PDF", N_("a PDF document")),
    (b"\x89PNG", N_("a PNG image")),
    (b"GIF8", N_("a GIF image")),
    (b"\xff\xd8\xff", N_("a JPEG image")),
    (b"RIFF", N_("a RIFF file (image, sound or video)")),
    (b"PK\x03\x04", N_("a ZIP archive (or an Office document)")),
    (b"\x1f\x8b", N_("gzip-compressed data")),
    (b"BZh", N_("bzip2-compressed data")),
    (b"\xfd7zXZ\x00", N_("xz-compressed data")),
    (b"7z\xbc\xaf", N_("a 7-Zip archive")),
    (b"\x7fELF", N_("a program")),
    (b"\xd0\xcf\x11\xe0", N_("an Office document")),
    (b"SQLite format 3\x00", N_("an SQLite database")),
)
# Characters no text page holds: C0 controls but tab, line feed, form feed and carriage
# return; DEL; and the replacement character (bytes that decode to nothing).
_CONTROL_CHARS = (*(chr(c) for c in (*range(0x09), 0x0B, *range(0x0E, 0x20), 0x7F)), "\ufffd")
BINARY_SHARE = 0.01
"""A text with more than this share of control or undecodable characters is binary data."""


def listing_text(data: bytes, *, name: str | None = None, declared: str | None = None) -> str:
    """The text of a page's bytes, or `UnusableListing` when they are binary data.

    ``declared`` is a charset the server gave (HTTP Content-Type); a byte-order mark still
    wins over it, as in browsers. See `decode_listing` for the rest.
    """
    name = name or _("The page")
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            raise _binary(name, _(kind))
    text = decode_listing(data, declared=declared)
    if _is_binary(text):
        raise _binary(name, _("binary data"))
    return text


def _binary(name: str, kind: str) -> UnusableListing:
    return UnusableListing(
        _("{name} is {kind}, not a listing page: save the page as HTML or as text").format(
            name=name, kind=kind
        )
    )


def _is_binary(text: str) -> bool:
    if not text:
        return False
    # str.count per character: linear, in C, with no copy of a 20 MB text.
    suspicious = sum(map(text.count, _CONTROL_CHARS))
    return suspicious > BINARY_SHARE * len(text)


def decode_listing(data: bytes, *, declared: str | None = None) -> str:
    """The text of a saved listing page, whatever its encoding.

    In order: a byte-order mark (UTF-8, UTF-16, UTF-32); the ``declared`` charset (from HTTP)
    if any; for HTML, a charset declared in the first 2 KB (``<meta charset>``, ``<meta
    http-equiv="Content-Type" content="…; charset=…">`` or ``<?xml encoding>``); UTF-8 if the
    bytes are valid UTF-8; else cp1252 (Windows Latin-1, a superset of ISO-8859-1 for text).
    BOM-less UTF-16 is recognised by its zero bytes. A charset declared in the page that is
    single-byte yields to UTF-8 when the bytes are valid UTF-8 with multi-byte characters: that
    is a page re-saved as UTF-8 with its old <meta> kept. Never raises: undecodable bytes
    become U+FFFD.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    header = _codec(declared) if declared else None
    if header:
        return data.decode(header, errors="replace")
    utf16 = _bomless_utf16(data)
    if utf16:
        return data.decode(utf16, errors="replace")
    utf8: str | None
    try:
        utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    in_page = _declared_charset(data)
    if in_page and in_page != "utf-8":
        single_byte = codecs.lookup(in_page).name not in _MULTIBYTE
        if not (single_byte and utf8 is not None and not data.isascii()):
            return data.decode(in_page, errors="replace")
    if utf8 is not None:
        return utf8
    return data.decode("cp1252", errors="replace")


_MULTIBYTE = frozenset(
    codecs.lookup(name).name
    for name in ("utf-8", "gb18030", "gbk", "gb2312", "big5", "shift_jis", "euc-jp", "euc-kr",
                 "iso2022_jp", "cp932", "cp949", "cp950", "utf-7")
)


def _codec(label: str) -> str | None:
    """The Python codec for a charset label as browsers read it; None when unknown."""
    try:
        name = codecs.lookup(label.strip().strip("\"'").lower()).name
    except LookupError:
        log.warning(
            _("Unknown charset {label}; reading the page without it").format(
                label=repr(label[:40])
            )
        )
        return None
    return _LABEL_ALIASES.get(name, name)


def _declared_charset(data: bytes) -> str | None:
    """The Python codec of the charset an HTML/XML page declares in its first 2 KB, if any."""
    head = data[:2048]
    if not head.lstrip(b" \t\r\n").startswith(b"<"):
        return None
    match = _DECLARED.search(head)
    if match is None:
        return None
    name = _codec((match.group(1) or match.group(2)).decode("ascii"))
    if name is None:
        return None
    if name.startswith(("utf-16", "utf-32")):  # bytes readable as ASCII cannot be UTF-16
        return "utf-8"
    return name


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


# --- fetching a URL ----------------------------------------------------------------------------

# Content types that are never a listing page, whatever the bytes (an HTML page may come as
# text/*, an XML type, application/octet-stream or none: the bytes decide then).
_NOT_A_PAGE = re.compile(
    r"^(image|audio|video|font|model)/|^application/(pdf|zip|gzip|x-gzip|x-tar|x-7z|"
    r"x-bzip2|x-xz|vnd\.|msword|java-archive|x-msdownload|wasm|x-sqlite3|x-shockwave)",
    re.I,
)
_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([^;\"'\s]+)", re.I)


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A page as downloaded: its text and when."""

    url: str
    text: str
    retrieved: str
    """ISO timestamp (UTC, seconds) of the download."""


def fetch_page(
    url: str,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    *,
    limit: int | None = None,
    deadline: float | None = None,
) -> FetchedPage:
    """Download a page: at most ``limit`` bytes (default `max_bytes()`) within ``deadline``
    seconds (default `deadline_seconds()`), each network wait bounded by ``timeout``.

    Raises `ListingFetchError` (exit 1) for network trouble, an HTTP error or a download past
    the deadline, and `UnusableListing` (exit 2) for a URL that is not http(s), a page larger
    than the cap, or binary data.
    """
    import requests
    import urllib3

    if not re.match(r"^https?://[^/\s]", url, re.I):
        raise UnusableListing(
            _("{url} is not an http(s) URL: give a page's web address or a saved file").format(
                url=_excerpt(url)
            )
        )
    cap = max_bytes() if limit is None else limit
    budget = deadline_seconds() if deadline is None else deadline
    started = time.monotonic()
    http = session or requests.Session()
    try:
        response = http.get(
            url,
            timeout=timeout,
            stream=True,
            headers={"User-Agent": USER_AGENT, "Accept": "text/html, text/plain;q=0.9"},
        )
        with response:
            if response.status_code >= 400:
                raise ListingFetchError(
                    _("The listing page {url} answered HTTP {status}").format(
                        url=url, status=f"{response.status_code} {response.reason or ''}".strip()
                    )
                )
            content_type = response.headers.get("Content-Type", "")
            if _NOT_A_PAGE.match(content_type.strip()):
                raise UnusableListing(
                    _("{url} is {content_type}, not a listing page").format(
                        url=url, content_type=content_type.split(";")[0].strip()
                    )
                )
            length = response.headers.get("Content-Length", "").strip()
            if length.isdigit() and int(length) > cap:
                raise _too_large(url, cap)
            data = _read_body(response, url, cap, started, budget,
                              timeout[1] if isinstance(timeout, tuple) else timeout)
    except requests.Timeout as exc:
        raise ListingFetchError(
            _("The listing page {url} did not answer in time").format(url=url)
        ) from exc
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise ListingFetchError(
            _("Could not fetch the listing page {url}: {reason}").format(
                url=url, reason=_reason(exc)
            )
        ) from exc
    finally:
        if session is None:
            http.close()
    retrieved = datetime.now(UTC).replace(microsecond=0).isoformat()
    match = _CHARSET.search(content_type)
    text = listing_text(data, name=url, declared=match.group(1) if match else None)
    return FetchedPage(url=url, text=text, retrieved=retrieved)


def _read_body(
    response: requests.Response, url: str, cap: int, started: float, budget: float,
    read_timeout: float,
) -> bytes:
    """The (decompressed) body, within the cap and by the deadline (`registry.read_bounded`,
    as registry answers are read)."""
    from trialfinder.registry import BodyTooLarge, BodyTooSlow, read_bounded

    try:
        return read_bounded(response, limit=cap, deadline=started + budget,
                            clock=time.monotonic, read_timeout=read_timeout)
    except BodyTooLarge:
        raise _too_large(url, cap) from None
    except BodyTooSlow:
        raise ListingFetchError(
            _(
                "The listing page {url} took more than {seconds} s to download; gave up "
                "(set {setting} to wait longer)"
            ).format(url=url, seconds=f"{budget:g}", setting=DEADLINE_ENV)
        ) from None


def _reason(exc: BaseException) -> str:
    """The innermost cause of a network error in a few words, not urllib3's whole chain
    ("Connection refused", not "HTTPConnectionPool(host=…): Max retries exceeded …")."""
    inner = exc
    for _depth in range(8):
        nested = getattr(inner, "reason", None)
        if not isinstance(nested, BaseException):
            first = inner.args[0] if inner.args else None
            nested = first if isinstance(first, BaseException) else None
        if nested is None:
            break
        inner = nested
    text = re.sub(r"^<[^>]*>:\s*", "", str(inner))
    errno = re.search(r"\[Errno -?\d+\]\s*([^'\")\]]+)", text)
    if errno:
        text = errno.group(1)
    return _excerpt(text.strip() or type(inner).__name__)


def fetch_listing(
    url: str,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    *,
    limit: int | None = None,
    deadline: float | None = None,
) -> Trial:
    """Download a listing page (see `fetch_page`) and parse it; nothing is placed yet.

    The record's source is the URL, its as-of date the page's "last updated" (the download
    day when the page gives none), and ``retrieved`` the download's timestamp.
    """
    page = fetch_page(url, session, timeout, limit=limit, deadline=deadline)
    trial = parse_listing(page.text, source_url=url)
    source = trial.source
    return trial.replace(
        source=Source(
            kind=source.kind,
            description=source.description,
            as_of=source.as_of or page.retrieved[:10],
            url=source.url,
            retrieved=page.retrieved,
        )
    )


# --- the page as lines ----------------------------------------------------------------------


@dataclass(slots=True)
class _Page:
    """A page as the lines a reader sees (blank lines between blocks), plus what its markup
    says about them."""

    lines: list[str]
    headings: dict[int, int] = field(default_factory=dict)
    """Line index -> heading level (1-6), for the lines of HTML heading elements."""
    title: str | None = None
    """The text of the page's first <h1>."""
    cards: list[tuple[int, int]] | None = None
    """For HTML: the line range [start, end) of the element around each "Connect »"."""


_SPACES = str.maketrans({"\u00a0": " ", "\u2007": " ", "\u202f": " ", "\t": " ", "\f": " ",
                         "\v": " ", "\u200b": None, "\ufeff": None, "\u00ad": None})
_MULTI_SPACE = re.compile(r" {2,}")


def _normalise_line(line: str) -> str:
    line = line.translate(_SPACES).strip()
    return _MULTI_SPACE.sub(" ", line) if "  " in line else line


def _text_page(content: str) -> _Page:
    text = content.replace("\r\n", "\n").replace("\r", "\n")
    return _Page([_normalise_line(line) for line in text.split("\n")])


def _looks_like_html(content: str) -> bool:
    return content.lstrip("\ufeff \t\r\n").startswith("<")


# Elements that start and end a paragraph, and those that are a line of their block.
_BLOCKS = frozenset((
    "address", "article", "aside", "blockquote", "body", "center", "details", "dialog", "div",
    "dl", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hgroup", "hr", "html", "legend", "main", "menu", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "tfoot", "thead", "ul", "caption", "button",
))
_LINES = frozenset(("li", "tr", "dt", "dd", "td", "th", "option"))
# Never visible, or not the page's text (form controls, embedded documents).
_INVISIBLE = frozenset((
    "script", "style", "noscript", "template", "head", "title", "iframe", "frame", "frameset",
    "svg", "math", "object", "embed", "canvas", "audio", "video", "select", "textarea", "input",
    "datalist", "map", "applet", "param", "source", "track", "picture", "img",
))
# Chrome: dropped unless they hold part of the record (some sites wrap a whole page in one
# <form>, or put the title in a <header>).
_CHROME_TAGS = frozenset(("nav", "aside", "header", "footer", "form", "dialog", "menu", "button"))
_CHROME_ROLES = frozenset((
    "navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alertdialog",
    "menu", "menubar", "toolbar", "button",
))
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


@dataclass(slots=True)
class _Element:
    start: int
    end: int
    parent: int
    chrome: bool
    heading: int
    """1-6 for h1-h6, else 0."""


class _Lines:
    """The visible lines of an HTML document, built in document order."""

    __slots__ = ("lines", "owners", "parts")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.owners: list[int] = []
        """The innermost block element open when each line ended (-1: none)."""
        self.parts: list[str] = []

    def text(self, text: str) -> None:
        self.parts.append(text)

    def end_line(self, owner: int) -> None:
        """End the line being built, unless it holds nothing visible."""
        if self.parts:
            line = "".join(self.parts)
            self.parts.clear()
            if line.strip():
                self.lines.append(line)
                self.owners.append(owner)

    def line_break(self, owner: int) -> None:
        """A <br>: end the line even when empty (two of them make a blank line)."""
        line = "".join(self.parts)
        self.parts.clear()
        self.lines.append(line if line.strip() else "")
        self.owners.append(owner)

    def paragraph(self, owner: int) -> None:
        self.end_line(owner)
        if self.lines and self.lines[-1]:
            self.lines.append("")
            self.owners.append(owner)


def _invisible(attrs: dict[str, Any]) -> bool:
    if not attrs:
        return False
    if "hidden" in attrs:
        return True
    style = attrs.get("style")
    return bool(style) and bool(_HIDDEN_STYLE.search(str(style)))


def _is_chrome(name: str, attrs: dict[str, Any]) -> bool:
    if name in _CHROME_TAGS:
        return True
    role = attrs.get("role") if attrs else None
    return bool(role) and str(role).strip().lower() in _CHROME_ROLES


def _html_page(markup: str) -> _Page:
    """The page's visible lines, in one pass over the parsed tree (no tree rewriting: linear
    in the page's size, and no recursion, however deep the nesting)."""
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString, PreformattedString, Tag

    soup = BeautifulSoup(markup, "html.parser")
    out = _Lines()
    elements: list[_Element] = []
    open_blocks: list[int] = []  # indexes into elements
    counters: list[list[int] | None] = []  # per open list: [next number] for <ol>, None for <ul>
    pre = 0

    def owner() -> int:
        return open_blocks[-1] if open_blocks else -1

    # Each frame: the element, an iterator over its children, and what to undo on leaving it.
    stack: list[tuple[Tag, Iterator[Any], int, bool, bool]] = [
        (soup, iter(soup.contents), -1, False, False)
    ]
    while stack:
        tag, children, block, is_list, is_pre = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if block >= 0:
                element = elements[block]
                if tag.name in _LINES:
                    out.end_line(block)
                else:
                    out.paragraph(block)
                element.end = len(out.lines)
                open_blocks.pop()
            if is_list:
                counters.pop()
            if is_pre:
                pre -= 1
            continue
        if isinstance(child, Tag):
            name = child.name
            attrs = child.attrs
            if name in _INVISIBLE or _invisible(attrs):
                continue
            if name == "br":
                out.line_break(owner())
                continue
            new_block = -1
            if name in _BLOCKS or name in _LINES or _is_chrome(name, attrs):
                parent = owner()
                if name in _LINES:
                    out.end_line(parent)
                else:
                    out.paragraph(parent)
                new_block = len(elements)
                elements.append(_Element(
                    len(out.lines), -1, parent, _is_chrome(name, attrs), _HEADINGS.get(name, 0)
                ))
                open_blocks.append(new_block)
            if name == "li" and counters and counters[-1] is not None:
                counter = counters[-1]
                counter[0] = _int(attrs.get("value"), counter[0])
                out.text(f"{counter[0]}. ")
                counter[0] += 1
            new_list = name in ("ol", "ul", "menu")
            if new_list:
                counters.append([_int(attrs.get("start"), 1)] if name == "ol" else None)
            new_pre = name in ("pre", "listing", "plaintext", "xmp")
            if new_pre:
                pre += 1
            stack.append((child, iter(child.contents), new_block, new_list, new_pre))
        elif isinstance(child, PreformattedString):
            continue  # comments, the doctype, CDATA, processing instructions: not shown
        elif isinstance(child, NavigableString):
            text = str(child)
            if pre:
                pieces = text.replace("\r\n", "\n").split("\n")
                for piece in pieces[:-1]:
                    out.text(piece)
                    out.line_break(owner())
                out.text(pieces[-1])
            else:
                out.text(_HTML_SPACE.sub(" ", text))
    out.end_line(-1)
    lines = [_normalise_line(line) for line in out.lines]
    return _finish_html(lines, out.owners, elements)


def _finish_html(lines: list[str], owners: list[int], elements: list[_Element]) -> _Page:
    """Drop chrome that holds none of the record; note headings, the title, site cards."""
    keep = [bool(line) and _holds_record(line) for line in lines]
    for element in elements:
        if element.heading == 1:
            for k in range(element.start, element.end):
                keep[k] = keep[k] or bool(lines[k])
    held = _prefix(keep)
    for element in elements:
        if element.chrome and held[element.end] == held[element.start]:
            for k in range(element.start, element.end):
                lines[k] = ""
    headings: dict[int, int] = {}
    title = None
    for element in elements:
        if element.heading:
            text = [lines[k] for k in range(element.start, element.end) if lines[k]]
            for k in range(element.start, element.end):
                if lines[k]:
                    headings[k] = element.heading
            if element.heading == 1 and title is None and text:
                title = " ".join(text)
    return _Page(lines, headings, title, _site_cards(lines, owners, elements))


def _site_cards(
    lines: list[str], owners: list[int], elements: list[_Element]
) -> list[tuple[int, int]]:
    """For each "Connect »" line, the largest element around it that holds no other marker
    and none of the page's section lines (its site's block); (k, k + 1) when there is none.

    Each element is climbed into at most once (it holds one marker), so this is linear.
    """
    connect = [bool(_CONNECT.match(line)) for line in lines]
    section = [bool(line) and _is_section_line(line) for line in lines]
    markers, sections = _prefix(connect), _prefix(section)
    cards = []
    for k, is_marker in enumerate(connect):
        if not is_marker:
            continue
        current = owners[k]
        if current < 0:
            cards.append((k, k + 1))
            continue
        start, end = elements[current].start, elements[current].end
        if markers[end] - markers[start] != 1 or sections[end] != sections[start]:
            cards.append((k, k + 1))
            continue
        while (up := elements[current].parent) >= 0:
            parent = elements[up]
            if (
                markers[parent.end] - markers[parent.start] != 1
                or sections[parent.end] != sections[parent.start]
            ):
                break
            current = up
        cards.append((elements[current].start, elements[current].end))
    return cards


def _prefix(flags: list[bool]) -> list[int]:
    sums = [0] * (len(flags) + 1)
    total = 0
    for k, flag in enumerate(flags):
        total += flag
        sums[k + 1] = total
    return sums


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def html_to_text(markup: str) -> str:
    """The visible text of an HTML page, one block element per paragraph, chrome left out.

    Scripts, styles and navigation are dropped; ordered-list items get their numbers back
    ("1. …") as a browser shows them; ``<br>`` is a line break. Linear in the page's size.
    """
    lines = _html_page(markup).lines
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# --- the record -------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan", "janvier", "janv"),
            ("february", "feb", "février", "fevrier", "févr", "fevr"),
            ("march", "mar", "mars"),
            ("april", "apr", "avril", "avr"),
            ("may", "mai"),
            ("june", "jun", "juin"),
            ("july", "jul", "juillet", "juil"),
            ("august", "aug", "août", "aout"),
            ("september", "sep", "sept", "septembre"),
            ("october", "oct", "octobre"),
            ("november", "nov", "novembre"),
            ("december", "dec", "décembre", "decembre", "déc"),
        ),
        start=1,
    )
    for name in names
}

# "Last updated on …", "Last updated: …", "Updated on …", or the label alone (its value on the
# next line); not a sentence that starts with the words ("Last updated guidelines …").
_LAST_UPDATED = re.compile(
    r"^(?:last\s+updated?|updated)(?:\s+on\b|\s*:|\s*$)\s*:?\s*(.*)$", re.I
)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})(?:-(\d{1,2}))?\b")
_WORD_DATE = re.compile(
    r"^(?:(\d{1,2})(?:st|nd|rd|th|er)?\s+)?([^\W\d_]+)\.?\s+(?:(\d{1,2})(?:st|nd|rd|th)?,?\s+)?"
    r"(\d{4})\b"
)
_IDENTIFIER = re.compile(r"clinical\s+study\s+identifier\s*:?\s*(NCT\s*[0-9]{8})", re.I)
_IDENTIFIER_LABEL = re.compile(r"^clinical\s+study\s+identifier\b", re.I)
_ANY_NCT = re.compile(r"\bNCT[0-9]{8}\b", re.I)
# The label alone (its value on the next line) or with a colon and a short value.
_STATUS = re.compile(
    r"^(?:recruitment|study|trial|overall)\s+status\s*(?::\s*(.{0,80})|:?)$", re.I
)
_BRIEF = re.compile(r"^(brief\s+description\s+of\s+(the\s+)?study|brief\s+summary)\s*:?$", re.I)
_DETAILED = re.compile(r"^detailed\s+(study\s+)?description\s*:?$", re.I)
_SITES = re.compile(
    r"^contact\s+investigators\s+or\s+research\s+sites(\s+near\s+you)?\s*:?$", re.I
)
# Headings of sections that are not read (they end the section before them).
# (Not single words a site card may show as a label: "Contact", "Locations".)
_OTHER_SECTION = re.compile(
    r"^(eligibility(\s+criteria)?|(key\s+)?(inclusion|exclusion)\s+criteria|study\s+design"
    r"|study\s+locations|sponsors?\s+and\s+collaborators|outcome\s+measures"
    r"|references|publications|contacts\s+and\s+locations"
    r"|more\s+information|related\s+(trials|studies))\s*:?$",
    re.I,
)
# "Connect »" and its spellings, including a mis-decoded "»" ("Â»", "\ufffd").
_CONNECT = re.compile(r"^connect\s*(?:&raquo;?|&gt;&gt;|Â»|[^\w\s]{1,3})?$", re.I)
_CHROME = re.compile(
    r"^(start\s+over"
    r"|brief\s+description\s+eligibility\s+contact\s+research\s+team"
    r"|receive\s+emails\s+about\s+new\s+clinical\s+trials!?"
    r"|sign\s+up\s+for\s+our\s+free\s+service\b.*)$",
    re.I,
)
_STATUS_WORDS_MAX = 80
"""A status longer than this is not a status line's value (a sentence mentioning one)."""


def _is_section_line(line: str) -> bool:
    """A line that starts one of the page's sections (or holds the identifier/status)."""
    return bool(
        _BRIEF.match(line) or _DETAILED.match(line) or _SITES.match(line)
        or _STATUS.match(line) or _IDENTIFIER_LABEL.match(line) or _IDENTIFIER.search(line)
        or _OTHER_SECTION.match(line)
        or _LAST_UPDATED.match(line)
    )


def _is_record_line(line: str) -> bool:
    """A line that is part of the record's layout (a section line or a site marker)."""
    return bool(line) and (_is_section_line(line) or bool(_CONNECT.match(line)))


def _holds_record(line: str) -> bool:
    """A line that only the record itself shows: chrome holding one is not chrome. (Section
    headings are not enough: navigation tabs repeat them.)"""
    return bool(
        _IDENTIFIER_LABEL.match(line) or _IDENTIFIER.search(line) or _CONNECT.match(line)
        or _STATUS.match(line)
        or _LAST_UPDATED.match(line)
    )


def parse_listing(content: str | bytes, *, source_url: str | None = None) -> Trial:
    """Read a listing page, HTML or its visible text, into a Trial (no placing).

    Bytes go through `listing_text` (decoded; binary data refused). Raises `UnusableListing`
    when the page has no ClinicalTrials.gov identifier, or a sites section (or "Connect »"
    markers) of which no site block can be read. Single site blocks that cannot be read (no
    "City, Country" line) are logged briefly and skipped. A page with no sites section at
    all gives a Trial without sites. ``source_url`` is kept as the record's source (a URL or
    a file name).
    """
    name = source_url or _("The page")
    if isinstance(content, bytes):
        content = listing_text(content, name=name)
    elif _is_binary(content):
        raise _binary(name, _("binary data"))
    page = _html_page(content) if _looks_like_html(content) else _text_page(content)
    return _trial(page, source_url)


def _trial(page: _Page, source_url: str | None) -> Trial:
    lines = page.lines
    nct_id = _identifier(lines, source_url)
    last_update = _last_update(lines)
    status_words = _status_words(lines)

    record_marks = sorted(
        k for k, line in enumerate(lines)
        if line and (_is_section_line(line) and not _LAST_UPDATED.match(line))
    )
    brief_at = _find(lines, _BRIEF)
    detailed_at = _find(lines, _DETAILED)
    sites_at = _find(lines, _SITES)
    # Headings that may end a section: not those inside a site's card (a centre's name).
    in_card = [0] * (len(lines) + 1)
    if page.cards:
        marks = [0] * (len(lines) + 1)
        for a, b in page.cards:
            marks[a] += 1
            marks[b] -= 1
        in_card = list(itertools.accumulate(marks))
    heading_lines = sorted(k for k in page.headings if not in_card[k])

    def end_of(start: int) -> int:
        """Where the section whose heading is line ``start`` ends: at the next mark of the
        record, or at the next heading of its level or above when it is an HTML heading."""
        end = len(lines)
        k = bisect.bisect_right(record_marks, start)
        if k < len(record_marks):
            end = record_marks[k]
        level = page.headings.get(start, 0)
        if level:
            for h in heading_lines[bisect.bisect_right(heading_lines, start):]:
                if h >= end:
                    break
                if page.headings[h] <= level:
                    return h
        return end

    def section(start: int | None) -> str | None:
        if start is None:
            return None
        return _paragraphs(lines[start + 1 : end_of(start)])

    first_mark = record_marks[0] if record_marks else len(lines)
    title = page.title or _title(lines, first_mark)
    if not title:
        raise UnusableListing(
            _("The listing page for {nct_id} has no title line").format(nct_id=nct_id)
        )

    sites: tuple[Site, ...] = ()
    if sites_at is not None:
        end = end_of(sites_at)
        blocks = _card_blocks(page, sites_at, end)
        if blocks is None:
            blocks = _layout_blocks(lines[sites_at + 1 : end])
        sites, skipped = _sites(blocks)
        if not sites:
            if skipped:
                message = _(
                    "The listing page for {nct_id} has a 'Contact Investigators or Research "
                    "Sites' section but no site blocks could be read ({count} block(s) without "
                    "a 'City, Country' line)"
                )
            else:
                message = _(
                    "The listing page for {nct_id} has a 'Contact Investigators or Research "
                    "Sites' section but no site blocks could be read (the section is empty)"
                )
            raise UnusableListing(message.format(nct_id=nct_id, count=skipped))
    elif any(_CONNECT.match(line) for line in lines):
        raise UnusableListing(
            _(
                "The listing page for {nct_id} has 'Connect »' site markers but no 'Contact "
                "Investigators or Research Sites' heading, so no site blocks could be read"
            ).format(nct_id=nct_id)
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
        status=None,
        status_text=status_words,
        brief_summary=section(brief_at),
        detailed_description=section(detailed_at),
        last_update=last_update,
        sites=sites,
    )


def _find(lines: list[str], pattern: re.Pattern[str]) -> int | None:
    return next((k for k, ln in enumerate(lines) if ln and pattern.match(ln)), None)


def _identifier(lines: list[str], source_url: str | None) -> str:
    text = "\n".join(lines)
    match = _IDENTIFIER.search(text) or _ANY_NCT.search(text)
    if match is None:
        raise UnusableListing(
            _(
                "{name} is not a trial listing page: it has no ClinicalTrials.gov identifier "
                "(expected 'Clinical Study Identifier: NCT' and 8 digits)"
            ).format(name=_excerpt(source_url or _("The page")))
        )
    value = match.group(1) if match.groups() else match.group(0)
    return normalise_nct_id(value.replace(" ", ""))


def _next_value(lines: list[str], k: int) -> str | None:
    """The next non-blank line after a label line ("Recruitment Status" / "Open")."""
    for line in lines[k + 1 : k + 4]:
        if line:
            return None if _is_record_line(line) else line
    return None


def _last_update(lines: list[str]) -> str | None:
    for k, line in enumerate(lines):
        match = _LAST_UPDATED.match(line) if line else None
        if match is None:
            continue
        value = match.group(1).strip() or _next_value(lines, k)
        if not value:
            continue
        found = _date(value)
        if found:
            return found
        log.warning(_("Unrecognised date in {line}").format(line=repr(_excerpt(line))))
    return None


def _date(text: str) -> str | None:
    """'January 2019' -> '2019-01'; '5 March 2023', 'March 5, 2023', '2023-03-05' -> ISO."""
    iso = _ISO_DATE.search(text)
    if iso:
        year, number, day = iso.group(1), int(iso.group(2)), iso.group(3)
        if 1 <= number <= 12:
            return f"{year}-{number:02d}" + _day(day)
    words = _WORD_DATE.match(text)
    if words:
        month = _MONTHS.get(words.group(2).lower())
        if month:
            return f"{words.group(4)}-{month:02d}" + _day(words.group(1) or words.group(3))
    year = re.fullmatch(r"\s*(\d{4})\s*", text)
    return year.group(1) if year else None


def _day(day: str | None) -> str:
    """'-05' for a plausible day of the month, else ''."""
    return f"-{int(day):02d}" if day and 1 <= int(day) <= 31 else ""


def _status_words(lines: list[str]) -> str | None:
    """The page's own words after "Recruitment Status:", as written; None when absent."""
    for k, line in enumerate(lines):
        match = _STATUS.match(line) if line else None
        if match is None:
            continue
        words = (match.group(1) or "").strip() or (_next_value(lines, k) or "")
        words = words.strip().rstrip(".").strip()
        if words and len(words) <= _STATUS_WORDS_MAX:
            return words
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
        if line and _CHROME.match(line):
            continue
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    text = "\n\n".join("\n".join(p) for p in paragraphs if p)
    return text or None


def _card_blocks(page: _Page, start: int, end: int) -> list[list[str]] | None:
    """The site blocks of an HTML page's sites section, from its markup: one per "Connect »"
    card; None when the markup does not give a card with text around every marker (then the
    text layout decides)."""
    if page.cards is None:
        return None
    cards = [(a, b) for a, b in page.cards if start < a and b <= end]
    if not cards:
        return None
    blocks = []
    for a, b in cards:
        block = [
            line for line in page.lines[a:b]
            if line and not _CONNECT.match(line) and not _CHROME.match(line)
        ]
        if not block:
            return None
        blocks.append(block)
    return blocks


def _layout_blocks(lines: list[str]) -> list[list[str]]:
    """Site blocks of the text layout: the non-blank lines up to each "Connect »"."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        if not line or _CHROME.match(line):
            continue
        if _CONNECT.match(line):
            blocks.append([])
        else:
            blocks[-1].append(line)
    return [b for b in blocks if b]


_MAX_SKIP_WARNINGS = 3
_EXCERPT = 80


def _sites(blocks: list[list[str]]) -> tuple[tuple[Site, ...], int]:
    """Sites from their blocks, and how many blocks could not be read. Each unread block is a
    one-line warning with a short excerpt, at most a few of them, then a count."""
    sites = []
    skipped = 0
    repairs: dict[str, Repair] = {}  # a centre with several investigators is listed each time
    for block in blocks:
        site = _site(block, repairs)
        if site is not None:
            sites.append(site)
            continue
        skipped += 1
        if skipped <= _MAX_SKIP_WARNINGS:
            log.warning(
                _(
                    "Skipped a site block with no 'City, Country' line ({count} line(s)): "
                    "{excerpt}"
                ).format(count=len(block), excerpt=repr(_excerpt(" / ".join(block))))
            )
    if skipped > _MAX_SKIP_WARNINGS:
        log.warning(
            _("Skipped {count} more site blocks like these").format(
                count=skipped - _MAX_SKIP_WARNINGS
            )
        )
    return tuple(sites), skipped


def _excerpt(text: str) -> str:
    return excerpt(text, _EXCERPT)


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


def _place_line(block: list[str]) -> int | None:
    """Which line of a site block is its "City, Country": the last one in the text layout;
    in a card, the last line that reads as a place and not as a person, when lines such as
    "Contact" follow it."""
    if _location(block[-1]) is not None:
        return len(block) - 1
    for k in range(len(block) - 2, 0, -1):
        found = _location(block[k])
        if (
            found is not None
            and not _is_title(found[3])
            and not any(ch.isdigit() for ch in found[3])
            and _investigator(block[k], first=True) is None
        ):
            return k
    return None


def _site(block: list[str], repairs: dict[str, Repair]) -> Site | None:
    if len(block) < 2:
        return None
    at = _place_line(block)
    location = _location(block[at]) if at is not None else None
    if at is None or location is None:
        return None
    city, state, postal, country = location
    contacts: list[Contact] = []
    facility_lines: list[str] = []
    for k, line in enumerate(block[:at]):
        # An investigator line leads the block, or follows the facility with a known title.
        person = _investigator(line, first=k == 0 and not facility_lines)
        if person is not None and at > 1:
            contacts.append(person)
        else:
            facility_lines.append(line)
    if not facility_lines:
        return None
    raw = " ".join(facility_lines)
    repaired = repairs.get(raw)
    if repaired is None:
        repaired = repairs[raw] = repair_name(raw)
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

