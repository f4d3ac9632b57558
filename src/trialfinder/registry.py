"""ClinicalTrials.gov API v2: a small HTTP client and a pure parser of its study records.

``RegistryClient`` talks to the API (session, base URL, timeouts, limits, throttle, the sleep,
the clock and the jitter all injectable); ``parse_study`` and ``parse_search_page`` are pure
functions over the decoded JSON. Everything that goes wrong is a ``TrialFinderError`` with a
one-line message.

Decisions worth knowing:

- ``requests`` and urllib3 are imported inside the client, so ``import trialfinder.registry``
  stays cheap.
- Throttle: at most one request per ``min_interval`` seconds (1 s for the live host, as its
  robots.txt asks; 0 s by default for a loopback base URL, i.e. a test server).
- Retries are urllib3's ``Retry`` on the session's adapter: 429, 500, 502, 503, 504,
  connection failures and read timeouts, ``max_retries`` times. Our rules on top of it
  (`_retry_class`): full jitter (a random wait between 0 and ``backoff * 2**n`` seconds, at
  most ``MAX_BACKOFF``), never shorter than the throttle interval; a ``Retry-After`` (seconds
  or an HTTP date) is obeyed up to ``MAX_RETRY_AFTER``, and one of 0 or in the past still
  waits ``backoff``; the waits use the client's sleep, clock and random source (tests inject
  them). Certificate failures are not retried.
- Limits per response (a record or a search page), from its request to its last byte: at
  most ``max_bytes`` (default 256 MB, ``$TRIALFINDER_REGISTRY_MAX_BYTES``) read in chunks,
  within ``deadline`` seconds (default 120 s, ``$TRIALFINDER_REGISTRY_DEADLINE``). A body cut
  short or too slow is retried in the same loop (urllib3's Retry ends with the headers); a
  body too large is not (it would be as large again).
- One fetch, retries and waits included, gives up within ``give_up`` seconds (default
  300 s, ``$TRIALFINDER_REGISTRY_GIVE_UP``): every body read is cut at that bound, and a
  wait is taken only if the next try can still connect and be answered (the two timeouts)
  before it. The one thing not bounded by it is a server that sends its *headers* a byte at
  a time (each read is bounded by the read timeout, and http.client caps their size).
- Redirects are not followed: the API does not redirect, and following one would read its
  body without our limits. A 3xx is an error naming the new address.
- A location without a facility name keeps ``facility=""`` (the registry gives none for some
  trials, e.g. NCT01063855, NCT02210780): displays show the city instead; no placeholder text
  is invented that a merge could mistake for a name.
- A location whose ``geoPoint`` is unusable (not numbers, out of range, 0,0) keeps its place in
  the trial without a coordinate (the geocoder chain can still place it by city) and the
  problem is reported in ``ParsedStudy.warnings``. A location that is not an object, or has
  neither a facility nor a city, is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from trialfinder import __version__
from trialfinder.errors import BadInput, InvalidTrialId, RegistryError, TrialNotFound
from trialfinder.i18n import N_, _, format_decimal, ngettext
from trialfinder.ids import is_nct_id, normalise_nct_id
from trialfinder.models import (
    Arm,
    Contact,
    Eligibility,
    Precision,
    Site,
    Source,
    Status,
    Trial,
    status_key,
)
from trialfinder.text import excerpt

if TYPE_CHECKING:
    import socket

    import requests
    from urllib3.util.retry import Retry

DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
BASE_URL_ENV = "TRIALFINDER_REGISTRY_URL"
DEADLINE_ENV = "TRIALFINDER_REGISTRY_DEADLINE"
MAX_BYTES_ENV = "TRIALFINDER_REGISTRY_MAX_BYTES"
GIVE_UP_ENV = "TRIALFINDER_REGISTRY_GIVE_UP"
USER_AGENT = f"trialfinder/{__version__} (+https://github.com/trialfinder/trialfinder)"

DEFAULT_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds: how long one connection attempt, and one wait for bytes, may take."""
DEFAULT_DEADLINE = 120.0
"""Seconds one response (a record or a search page) may take, from its request to its last
byte."""
DEFAULT_MAX_BYTES = 256_000_000
"""The largest response read (a search page of 1,000 full records is ~30 MB)."""
DEFAULT_GIVE_UP = 300.0
"""Seconds one fetch may take, retries and waits included, before it gives up."""
LIVE_MIN_INTERVAL = 1.0
"""Seconds between two requests to the live host (its robots.txt asks for 1 s)."""
MAX_RETRY_AFTER = 120.0
"""The longest ``Retry-After`` wait obeyed; a longer one is cut to this."""
MAX_BACKOFF = 60.0
"""The longest jittered backoff wait, whatever the attempt number."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGE_SIZE = 1000
"""The API's largest page (it silently cuts a larger ``pageSize`` to this)."""
DEFAULT_MAX_PAGES = 10_000
MAX_EMPTY_PAGES = 3
"""Consecutive empty pages that still carry a new token before a search gives up."""

UNKNOWN_ENROLLMENT = 99999999
"""The API's "enrollment count unknown" sentinel."""
GEOPOINT_SOURCE = "ClinicalTrials.gov geoPoint (city centre)"
SOURCE_DESCRIPTION = "ClinicalTrials.gov API v2"
NO_DATE = "0001-01-01"
"""``Source.as_of`` of a record that states no date at all: treated as very stale."""

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_GEO_FILTER = re.compile(r"^distance\(-?\d+(\.\d+)?,-?\d+(\.\d+)?,\d+(\.\d+)?(km|mi)?\)$")
_READ_CHUNK = 1 << 20
"""Bytes asked for per read of a body (a read returns what has arrived, up to this)."""


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def _base_url(value: str | None) -> str:
    """The API base URL to use: ``value``, else ``$TRIALFINDER_REGISTRY_URL``, else the live
    API; BadInput (a usage error) when it cannot be a base URL."""
    if value is None:
        value = os.environ.get(BASE_URL_ENV)
        if value is None:
            return DEFAULT_BASE_URL
        where = f"{BASE_URL_ENV}={_one_line(value, 80)!r}"
    else:
        where = _("Registry URL {url}").format(url=repr(_one_line(value, 80)))
    url = value.strip().rstrip("/")
    problem = _url_problem(url)
    if problem is not None:
        raise BadInput(problem.format(where=where, example=DEFAULT_BASE_URL))
    return url


def _url_problem(url: str) -> str | None:
    """None for a usable base URL; else the sentence saying why not, with ``{where}`` and
    ``{example}`` to fill in."""
    invalid = _("{where} is not a valid URL (e.g. {example})")
    if not url:
        return _("{where} is empty: give the API's base URL (e.g. {example})")
    if any(c.isspace() or not c.isprintable() for c in url):
        return _("{where} contains spaces or control characters (e.g. {example})")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (parsing it raises ValueError for a bad port)
    except ValueError:
        return invalid
    if parts.scheme not in ("http", "https"):
        return _("{where} is not an http(s) URL (e.g. {example})")
    if not parts.hostname:
        return _("{where} names no host (e.g. {example})")
    if parts.query or parts.fragment:
        return _("{where} must not carry a query or a fragment (e.g. {example})")
    import requests

    try:  # what requests itself refuses (bad host labels, IDNA) is refused here, not later
        requests.Request("GET", url).prepare()
    except (requests.exceptions.RequestException, ValueError, UnicodeError):
        return invalid
    return None


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"^\s*([0-9]+)\s*([a-z]*)\s*$", re.IGNORECASE | re.ASCII)
_SECONDS = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$", re.ASCII)


def _seconds_setting(name: str, value: float | None, default: float) -> float:
    if value is not None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
        return float(value)
    text = os.environ.get(name)
    if text is None:
        return default
    if not _SECONDS.match(text) or float(text) <= 0:
        raise BadInput(_("{setting} is not a number of seconds above 0 (default {default})")
                       .format(setting=f"{name}={_one_line(text, 40)!r}",
                               default=f"{default:g}"))
    return float(text)


def _bytes_setting(value: int | None) -> int:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_bytes must be a whole number above 0, not {value!r}")
        return value
    text = os.environ.get(MAX_BYTES_ENV)
    if text is None:
        return DEFAULT_MAX_BYTES
    m = _SIZE.match(text)
    unit = _SIZE_UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None or int(m.group(1)) * unit <= 0:
        raise BadInput(_("{setting} is not a size above 0 (bytes, or e.g. 64MB, 1GiB; default "
                         "{default})").format(setting=f"{MAX_BYTES_ENV}={_one_line(text, 40)!r}",
                                              default=_size_words(DEFAULT_MAX_BYTES)))
    return int(m.group(1)) * unit


def _size_words(size: int) -> str:
    """A size setting in words, in the current language: "256 MB", "64 kB", "1,500 bytes"."""
    for unit, words in ((1000**3, N_("{count} GB")), (1000**2, N_("{count} MB")),
                        (1000, N_("{count} kB"))):
        if size >= unit and size % unit == 0:
            return _(words).format(count=format_decimal(size // unit, 0))
    return _("{count} bytes").format(count=format_decimal(size, 0))


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------


class _Answer(NamedTuple):
    status: int
    body: bytes
    url: str


class RegistryClient:
    """A polite client of the ClinicalTrials.gov API v2.

    Everything that talks to the world is injectable: ``session`` (a ``requests.Session``;
    the client mounts its retrying adapter on it for the base URL), ``base_url`` (else
    ``$TRIALFINDER_REGISTRY_URL``, else the live API), ``timeout`` ((connect, read) seconds,
    always set), ``deadline``/``max_bytes``/``give_up`` (else their environment variables,
    else the defaults), ``sleep``/``clock`` (throttle, backoff, deadlines), ``rng`` (jitter).
    Use as a context manager to close a session the client created itself. One thread at a
    time may use a client (any thread: e.g. a prefetching worker).

    Raises ``BadInput`` for a base URL or an environment setting that cannot be used.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        min_interval: float | None = None,
        max_retries: int = 4,
        backoff: float = 1.0,
        deadline: float | None = None,
        max_bytes: int | None = None,
        give_up: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        url = _base_url(base_url)
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = url
        self.timeout = (float(timeout[0]), float(timeout[1]))
        if min_interval is None:
            host = urlsplit(url).hostname
            min_interval = 0.0 if host in _LOOPBACK_HOSTS else LIVE_MIN_INTERVAL
        self.min_interval = float(min_interval)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.deadline = _seconds_setting(DEADLINE_ENV, deadline, DEFAULT_DEADLINE)
        """Seconds one response may take, from its request to its last byte."""
        self.max_bytes = _bytes_setting(max_bytes)
        """The largest response read, in bytes."""
        self.give_up = _seconds_setting(GIVE_UP_ENV, give_up, DEFAULT_GIVE_UP)
        """Seconds one fetch may take, retries and waits included."""
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        import requests

        self._own_session = session is None
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
        self._adapter = requests.adapters.HTTPAdapter()
        session.mount(url + "/", self._adapter)
        self._session = session
        self._last_request_at: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the session if this client created it (an injected one is the caller's)."""
        if self._own_session:
            self._session.close()

    def after_fork(self) -> None:
        """In a forked child: drop the pooled connections inherited from the parent (their
        sockets are shared with it), so that this process opens its own. Closing the
        child's copies leaves the parent's connections open."""
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API --------------------------------------------------------------------------

    def get_study(self, nct_id: str) -> dict[str, Any]:
        """The full API v2 record of one study (``GET /studies/{nctId}``)."""
        return self.get_study_text(nct_id)[0]

    def get_study_text(self, nct_id: str) -> tuple[dict[str, Any], str]:
        """The record and the exact JSON text received, for a store that keeps raw JSON.

        Raises ``InvalidTrialId`` (malformed id, ours or the registry's 400), ``TrialNotFound``
        (404) or ``RegistryError`` (unreachable, gave up, unreadable or mismatched answer).
        """
        nct = normalise_nct_id(nct_id)
        answer = self._fetch(f"/studies/{nct}", nct)
        if answer.status == 404:
            if self.base_url == DEFAULT_BASE_URL:
                raise TrialNotFound(_("No study {nct} in ClinicalTrials.gov").format(nct=nct),
                                    nct)
            raise TrialNotFound(_("No study {nct} in ClinicalTrials.gov (at {url})").format(
                nct=nct, url=self.base_url), nct)
        if answer.status == 400:
            raise InvalidTrialId(nct, _(
                "ClinicalTrials.gov rejected '{nct}' as malformed: {answer}"
            ).format(nct=nct, answer=_first_line(answer.body)))
        if answer.status != 200:
            raise RegistryError(_("ClinicalTrials.gov answered {status} for {what}: {answer}")
                                .format(status=answer.status, what=nct,
                                        answer=_first_line(answer.body)))
        text, data = _decode_json(answer.body, nct)
        if not isinstance(data, dict) or not isinstance(data.get("protocolSection"), dict):
            raise RegistryError(_("ClinicalTrials.gov sent an unreadable response for {what}: "
                                  "{problem}").format(what=nct, problem=_(
                                      "{kind} without a protocolSection").format(
                                          kind=_kind_words(data))))
        got = study_nct_id(data)
        if got != nct and nct not in _aliases(data):
            if got is None:
                raise RegistryError(_("ClinicalTrials.gov answered with a study without a valid "
                                      "identifier when asked for {nct}").format(nct=nct))
            raise RegistryError(_("ClinicalTrials.gov answered with {got} when asked for {nct}")
                                .format(got=got, nct=nct))
        return data, text

    def search(
        self,
        *,
        condition: str | None = None,
        term: str | None = None,
        location: str | None = None,
        statuses: Iterable[str] | str | None = None,
        updated_since: date | None = None,
        advanced: str | None = None,
        geo: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        fields: str | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> StudySearch:
        """Studies matching a query (``GET /studies``), every page, lazily.

        ``statuses`` are registry statuses ("RECRUITING", "not yet recruiting" …, or one
        comma-separated string); ``updated_since`` keeps the studies whose last update was
        posted on that day or later (``AREA[LastUpdatePostDate]RANGE[day,MAX]``), combined
        with ``advanced`` (an Essie expression) when both are given; ``geo`` is
        ``distance(lat,lon,50km)`` (it filters studies, not sites). Arguments are checked
        before any request (BadInput). The returned ``StudySearch`` iterates the raw study
        dicts, or the pages with ``.pages()``; ``.total_count`` (fetching the first page if
        needed) feeds a progress bar.
        """
        params: dict[str, str] = {}
        for key, value in (("query.cond", condition), ("query.term", term),
                           ("query.locn", location)):
            if value is not None and value.strip():
                params[key] = value.strip()
        if statuses is not None:
            if isinstance(statuses, str):
                statuses = statuses.split(",")
            wanted = list(dict.fromkeys(_status_filter(s) for s in statuses if s.strip()))
            if wanted:
                params["filter.overallStatus"] = ",".join(wanted)
        expressions = [advanced.strip()] if advanced is not None and advanced.strip() else []
        if updated_since is not None:
            if not isinstance(updated_since, date):
                raise TypeError(f"updated_since must be a date, not {updated_since!r}")
            day = updated_since.date() if isinstance(updated_since, datetime) else updated_since
            expressions.append(f"AREA[LastUpdatePostDate]RANGE[{day.isoformat()},MAX]")
        if expressions:
            params["filter.advanced"] = (expressions[0] if len(expressions) == 1
                                         else " AND ".join(f"({e})" for e in expressions))
        if geo is not None:
            geo = geo.replace(" ", "")
            if not _GEO_FILTER.match(geo):
                raise BadInput(_(
                    "Geographic filter '{geo}' is not distance(lat,lon,radius), "
                    "e.g. distance(45.76,4.83,50km)"
                ).format(geo=_one_line(geo, 60)))
            params["filter.geo"] = geo
        if not params:
            raise BadInput(_("Give a condition, a term, a location, a status or a filter "
                             "to search ClinicalTrials.gov"))
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
            1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise BadInput(_("Page size must be between 1 and {largest}, not {size}").format(
                largest=MAX_PAGE_SIZE, size=repr(page_size)))
        if fields:
            params["fields"] = fields
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        return StudySearch(self, params, page_size=page_size, max_pages=max_pages)

    def version(self) -> dict[str, Any]:
        """API and data versions (``GET /version``): ``apiVersion``, ``dataTimestamp``."""
        answer = self._fetch("/version", "/version")
        if answer.status != 200:
            raise RegistryError(_("ClinicalTrials.gov answered {status} for {what}: {answer}")
                                .format(status=answer.status, what="/version",
                                        answer=_first_line(answer.body)))
        data = _decode_json(answer.body, "/version")[1]
        if not isinstance(data, dict):
            raise RegistryError(_("ClinicalTrials.gov sent an unreadable response for {what}: "
                                  "{problem}").format(what="/version", problem=_kind_words(data)))
        return data

    # -- plumbing ----------------------------------------------------------------------------

    def _throttle(self) -> None:
        if self.min_interval > 0 and self._last_request_at is not None:
            wait = self.min_interval - (self._clock() - self._last_request_at)
            if wait > 0:
                self._sleep(wait)
        self._last_request_at = self._clock()

    def _fetch(self, path: str, what: str, params: dict[str, str] | None = None) -> _Answer:
        """GET with throttle, retries and limits: the first answer not worth retrying (its
        body read whole), or RegistryError saying why there is none. ``what`` names the
        answer in messages ("NCT02260505", "search page 3")."""
        import requests
        from urllib3.exceptions import HTTPError as TransportError

        url = self.base_url + path
        fetch = _Fetch(self, what)
        self._throttle()
        while True:
            fetch.attempt_started = self._clock()
            self._adapter.max_retries = _retry_class()(
                total=fetch.retries_left, connect=None, read=None, status=None, other=None,
                redirect=0, raise_on_redirect=False, raise_on_status=False,
                status_forcelist=RETRY_STATUSES, fetch=fetch,
            )
            left = max(fetch.give_up_at - self._clock(), 0.001)
            try:
                response = self._session.get(
                    url, params=params, headers=self._headers, stream=True,
                    allow_redirects=False,
                    timeout=(min(self.timeout[0], left), min(self.timeout[1], left)),
                )
            except requests.exceptions.RequestException as exc:
                raise RegistryError(fetch.give_up_message(exc)) from None
            with response:
                if response.is_redirect:
                    target = _one_line(response.headers.get("Location") or "?", 120)
                    raise RegistryError(_(
                        "ClinicalTrials.gov at {url} answered {status}, a redirect to "
                        "{target}; set {setting} to the new address"
                    ).format(url=self.base_url, status=response.status_code, target=target,
                             setting=BASE_URL_ENV))
                try:
                    body = self._read_body(response, fetch)
                except _TooLarge as exc:
                    raise RegistryError(str(exc)) from None
                except (TransportError, OSError, _TooSlow) as exc:
                    wait = fetch.failed(exc)
                    if wait is None:
                        raise RegistryError(fetch.give_up_message(exc)) from None
                else:
                    if response.status_code in RETRY_STATUSES:  # Retry gave up on it
                        raise RegistryError(fetch.give_up_message())
                    return _Answer(response.status_code, body, response.url or url)
            fetch.pause(wait)

    def _read_body(self, response: requests.Response, fetch: _Fetch) -> bytes:
        """The whole body, in chunks as they arrive, within the response's deadline and size
        cap (`_TooSlow`, `_TooLarge`); transport errors (cut short …) propagate."""
        limit = self.max_bytes
        announced = response.headers.get("Content-Length", "").strip()
        if announced.isascii() and announced.isdigit() and int(announced) > limit:
            raise _TooLarge(self._too_large(fetch.what, int(announced)))
        deadline = min(fetch.attempt_started + self.deadline, fetch.give_up_at)
        try:
            return read_bounded(response, limit=limit, deadline=deadline, clock=self._clock,
                                read_timeout=self.timeout[1])
        except BodyTooSlow:
            raise _TooSlow(self._too_slow(fetch, deadline)) from None
        except BodyTooLarge:
            raise _TooLarge(self._too_large(fetch.what)) from None

    def _too_large(self, what: str, size: int | None = None) -> str:
        allowed = _size_words(self.max_bytes)
        if size is not None:
            return _("ClinicalTrials.gov's answer for {what} is {size} bytes, more than the "
                     "{allowed} allowed ({setting}); not read").format(
                what=what, size=format_decimal(size, 0), allowed=allowed,
                setting=MAX_BYTES_ENV)
        return _("ClinicalTrials.gov's answer for {what} is larger than the {allowed} allowed "
                 "({setting}); stopped reading").format(what=what, allowed=allowed,
                                                       setting=MAX_BYTES_ENV)

    def _too_slow(self, fetch: _Fetch, deadline: float) -> str:
        if deadline < fetch.attempt_started + self.deadline:  # the fetch's bound came first
            return _("ClinicalTrials.gov was still sending {what} when the {seconds} s allowed "
                     "for the fetch ran out ({setting})").format(
                what=fetch.what, seconds=f"{self.give_up:g}", setting=GIVE_UP_ENV)
        return _("ClinicalTrials.gov took more than {seconds} s to send {what} ({setting})"
                 ).format(seconds=f"{self.deadline:g}", what=fetch.what, setting=DEADLINE_ENV)


class BodyTooLarge(Exception):
    """`read_bounded`: the body is over its size cap."""


class BodyTooSlow(Exception):
    """`read_bounded`: the body did not arrive by its deadline."""


def read_bounded(response: requests.Response, *, limit: int, deadline: float,
                 clock: Callable[[], float], read_timeout: float) -> bytes:
    """A streamed response's whole (decompressed) body, in chunks as they arrive: at most
    ``limit`` bytes (`BodyTooLarge`), all of it before ``clock()`` reaches ``deadline``
    (`BodyTooSlow`): no single wait for bytes may go past it, so a server dripping bytes
    cannot hold a read. ``read1`` never returns more than asked once decompressed (no gzip
    bomb). Transport errors (a body cut short …) propagate. Registry answers and listing
    pages are both read so."""
    from urllib3.exceptions import ReadTimeoutError

    raw = response.raw
    sock = _socket_of(raw)
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - clock()
        if left <= 0:
            raise BodyTooSlow
        if sock is not None:
            with contextlib.suppress(OSError):  # closed at the end of the body: no wait
                sock.settimeout(min(read_timeout, left))
        try:
            chunk = raw.read1(_READ_CHUNK, decode_content=True)
        except ReadTimeoutError:
            if clock() >= deadline:
                raise BodyTooSlow from None
            raise
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)


def _socket_of(raw: Any) -> socket.socket | None:
    """The socket a urllib3 response reads from, to cut each wait for bytes to what is left
    of the deadline; None if it cannot be found (the deadline is then checked between reads,
    each bounded by the read timeout). After "Connection: close", http.client hands the
    socket over to the response's file and the connection no longer names it."""
    import socket

    for path in (("connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        node = raw
        for name in path:
            node = getattr(node, name, None)
        if isinstance(node, socket.socket):
            return node
    return None


class _TooLarge(Exception):
    """A body over the size cap (not retried)."""


class _TooSlow(Exception):
    """A body not received within its deadline (retried)."""


class _Fetch:
    """One fetch (a record or a search page), retries included: what failed so far, when it
    must be over, and the wait before the next try. Shared by the `_retry_class` objects
    urllib3 derives from one another and by the loop in `RegistryClient._fetch`."""

    def __init__(self, client: RegistryClient, what: str) -> None:
        self.client = client
        self.what = what
        self.give_up_at = client._clock() + client.give_up
        self.attempt_started = client._clock()
        self.failures: list[int | BaseException] = []
        """Each failed try: its HTTP status, or the transport error."""
        self.refused_wait: float | None = None
        """A ``Retry-After`` that the bound did not leave time for."""

    @property
    def retries_left(self) -> int:
        return self.client.max_retries - len(self.failures)

    def failed(
        self, failure: int | BaseException, retry_after: float | None = None
    ) -> float | None:
        """Record a failed try; the seconds to wait before the next one, or None to give up
        (no tries left, or no time left for one after the wait)."""
        self.failures.append(failure)
        if self.retries_left < 0:
            return None
        client = self.client
        if retry_after is not None:
            wait = min(max(retry_after, client.backoff), MAX_RETRY_AFTER)
        else:
            ceiling = min(MAX_BACKOFF, client.backoff * 2 ** (len(self.failures) - 1))
            wait = client._rng.uniform(0.0, ceiling)
        wait = max(wait, client.min_interval)
        if client._clock() + wait + sum(client.timeout) > self.give_up_at:
            self.refused_wait = retry_after
            return None
        return wait

    def pause(self, wait: float) -> None:
        """Wait before the next try (the client's sleep), which starts the new attempt."""
        if wait > 0:
            self.client._sleep(wait)
        self.attempt_started = self.client._last_request_at = self.client._clock()

    def give_up_message(self, exc: BaseException | None = None) -> str:
        """One line: what the registry answered or what failed, and how many tries."""
        failures = self.failures or ([exc] if exc is not None else [])
        tries = len(failures)
        statuses = [f for f in failures if isinstance(f, int)]
        if statuses and len(statuses) == tries:
            if len(set(statuses)) == 1:
                said = _("ClinicalTrials.gov answered {status} {times}").format(
                    status=statuses[0], times=_times(tries))
            else:
                said = _("ClinicalTrials.gov answered {statuses}").format(
                    statuses=", ".join(map(str, statuses)))
            if self.refused_wait is not None:
                return _("{said} and asked to wait {seconds} s; giving up").format(
                    said=said, seconds=f"{self.refused_wait:g}")
            return _("{said}; giving up").format(said=said)
        last = failures[-1] if failures and not isinstance(failures[-1], int) else exc
        reason = _describe_network(self.client, last) if last is not None else "?"
        if tries <= 1:
            return reason
        return ngettext("{reason} ({tries} try)", "{reason} ({tries} tries)", tries).format(
            reason=reason, tries=tries)


def _times(n: int) -> str:
    """"once", "twice", "five times" … "ten times", then "11 times"."""
    words = {1: _("once"), 2: _("twice"), 3: _("three times"), 4: _("four times"),
             5: _("five times"), 6: _("six times"), 7: _("seven times"),
             8: _("eight times"), 9: _("nine times"), 10: _("ten times")}
    return words.get(n) or ngettext("{n} time", "{n} times", n).format(n=n)


@functools.cache
def _retry_class() -> Callable[..., Retry]:
    """urllib3's ``Retry`` with our rules (made on first use: urllib3 is imported late)."""
    from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError, SSLError
    from urllib3.util.retry import Retry

    class _Retry(Retry):
        """Counts tries as urllib3 does; `_Fetch` decides the waits and the bound."""

        def __init__(self, *args: Any, fetch: _Fetch, wait: float = 0.0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.fetch = fetch
            self.wait = wait

        def new(self, **kw: Any) -> _Retry:
            kw.setdefault("fetch", self.fetch)
            return super().new(**kw)

        def get_retry_after(self, response: Any) -> float | None:
            try:
                return super().get_retry_after(response)
            except InvalidHeader:  # nonsense: the backoff applies
                return None

        def increment(
            self, method: str | None = None, url: str | None = None, response: Any = None,
            error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None,
        ) -> _Retry:
            if isinstance(error, SSLError):  # a certificate does not fix itself
                self.fetch.failures.append(error)
                raise MaxRetryError(_pool, url, error) from error
            retry_after = self.get_retry_after(response) if response is not None else None
            failure: int | BaseException = (
                response.status if response is not None else error or ResponseError("unknown"))
            wait = self.fetch.failed(failure, retry_after)
            new = super().increment(method, url, response, error, _pool, _stacktrace)
            if wait is None:  # out of time: urllib3 returns the response, or raises the error
                raise MaxRetryError(_pool, url, error or ResponseError("gave up"))
            if response is not None:
                # Not drained (urllib3 would read a retried error body whole): dropped.
                response.close()
            new.wait = wait
            return new

        def sleep(self, response: Any = None) -> None:
            self.fetch.pause(self.wait)

    return _Retry


class SearchPage(NamedTuple):
    """One page of a search, as `StudySearch.pages` yields it."""

    number: int
    """1 for the first page."""
    studies: tuple[dict[str, Any], ...]
    """The raw study dicts, in the registry's order."""
    total_count: int | None
    """The search's ``totalCount`` (the registry sends it with the first page only)."""
    next_token: str | None
    """The page's ``nextPageToken``; None on the last page."""


class StudySearch(Iterator[dict[str, Any]]):
    """The studies of one search, page after page (made by ``RegistryClient.search``).

    Iterate it for the studies, or call ``pages()`` for `SearchPage`s (e.g. in a prefetching
    thread); both draw on the same pages, so use one or the other. Ends at the page without
    ``nextPageToken``. A token seen before, or ``MAX_EMPTY_PAGES`` empty pages in a row, also
    end it (the API should never do that); if the first page's ``totalCount`` then shows that
    studies are missing, ``RegistryError`` is raised after the pages already received. More
    than ``max_pages`` pages raise ``RegistryError``. A page that fails (network, unreadable
    JSON, wrong shape) raises and ends the search: what earlier pages gave stays given.
    """

    def __init__(
        self, client: RegistryClient, params: dict[str, str], *, page_size: int, max_pages: int
    ) -> None:
        self._client = client
        self.params = dict(params)
        """The query and filter parameters, the same for every page."""
        self.page_size = page_size
        self.max_pages = max_pages
        self.pages_read = 0
        """Pages received so far."""
        self.received = 0
        """Studies received so far."""
        self._total: int | None = None
        self._first: SearchPage | None = None
        """The first page when fetched early (for ``total_count``), not yet handed out."""
        self._token: str | None = None
        self._seen_tokens: set[str] = set()
        self._empty_run = 0
        self._done = False
        self._error: RegistryError | None = None
        self._studies: Iterator[dict[str, Any]] | None = None

    @property
    def total_count(self) -> int | None:
        """The first page's ``totalCount`` (fetches that page if not done yet)."""
        if self.pages_read == 0 and not self._done:
            self._first = self._fetch_page()
        return self._total

    def pages(self) -> Iterator[SearchPage]:
        """The pages not handed out yet, one request each, as they are asked for."""
        while (page := self._take_page()) is not None:
            yield page

    def __iter__(self) -> StudySearch:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._studies is None:
            self._studies = (study for page in self.pages() for study in page.studies)
        return next(self._studies)

    def _take_page(self) -> SearchPage | None:
        if self._first is not None:
            page, self._first = self._first, None
            return page
        if self._done:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None
        return self._fetch_page()

    def _fetch_page(self) -> SearchPage:
        try:
            return self._read_page()
        except BaseException:
            self._done = True  # a failed page ends the search: never asked for again
            raise

    def _read_page(self) -> SearchPage:
        number = self.pages_read + 1
        if number > self.max_pages:
            raise RegistryError(_(
                "ClinicalTrials.gov search did not end after {pages} pages ({studies} studies); "
                "stopped").format(pages=self.max_pages, studies=self.received))
        params = dict(self.params)
        params["pageSize"] = str(self.page_size)
        if self._token is None:
            params["countTotal"] = "true"
        else:
            params["pageToken"] = self._token
        what = _("search page {number}").format(number=number)
        answer = self._client._fetch("/studies", what, params)
        if answer.status == 400:
            raise BadInput(_("ClinicalTrials.gov rejected the search: {answer}").format(
                answer=_first_line(answer.body)))
        if answer.status != 200:
            raise RegistryError(_("ClinicalTrials.gov answered {status} for {what}: {answer}")
                                .format(status=answer.status, what=what,
                                        answer=_first_line(answer.body)))
        data = _decode_json(answer.body, what)[1]
        studies, token, total = parse_search_page(data, what)
        if number == 1:
            self._total = total
        self.pages_read = number
        self.received += len(studies)
        if token is None:
            self._done = True
        elif token in self._seen_tokens:
            self._stop(_("it repeated the page token {token}").format(token=repr(token[:24])))
        else:
            self._empty_run = self._empty_run + 1 if not studies else 0
            if self._empty_run >= MAX_EMPTY_PAGES:
                self._stop(_("it sent {n} empty pages in a row").format(n=MAX_EMPTY_PAGES))
            self._seen_tokens.add(token)
            self._token = token
        return SearchPage(number, tuple(studies), self._total, token)

    def _stop(self, why: str) -> None:
        self._done = True
        if self._total is not None and self.received < self._total:
            self._error = RegistryError(_(
                "ClinicalTrials.gov search stopped after {received} of {total} studies: {why}"
            ).format(received=self.received, total=self._total, why=why))


def _status_filter(value: str) -> str:
    key = status_key(value)
    if key not in Status.__members__:
        raise BadInput(_("Unknown recruitment status '{status}' (expected one of {known})")
                       .format(status=_one_line(value, 40), known=", ".join(Status.__members__)))
    return key


def _decode_json(body: bytes, what: str) -> tuple[str, Any]:
    """(text, decoded) of a response body; anything undecodable (not UTF-8, not JSON,
    nested too deeply for the decoder) is a one-line RegistryError saying where."""
    unreadable = _("ClinicalTrials.gov sent an unreadable response for {what}: {problem}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(unreadable.format(what=what, problem=_(
            "not UTF-8 (byte {at} of {size})").format(at=exc.start, size=len(body)))) from None
    try:
        return text, json.loads(text)
    except RecursionError:
        raise RegistryError(unreadable.format(
            what=what, problem=_("JSON nested too deeply"))) from None
    except ValueError as exc:
        pos = getattr(exc, "pos", None)
        if not text.strip():
            problem = _("an empty body")
        elif (isinstance(pos, int) and pos >= len(text.rstrip())) or str(exc).startswith(
            "Unterminated string"
        ):
            problem = _("the JSON stops after {size} bytes (cut short?)").format(size=len(body))
        elif isinstance(pos, int):
            problem = _("invalid JSON at character {at} of {size}").format(at=pos,
                                                                          size=len(text))
        else:
            problem = _("invalid JSON")
        raise RegistryError(unreadable.format(what=what, problem=problem)) from None


def _describe_network(client: RegistryClient, exc: BaseException) -> str:
    """One line for a failed try, decided from the exception's type (urllib3's, requests',
    the OSError it wraps)."""
    import requests
    from urllib3.exceptions import (
        ConnectTimeoutError,
        DecodeError,
        MaxRetryError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
        SSLError,
    )

    exc = _unwrap(exc)
    url = client.base_url
    unreachable = _("Could not reach ClinicalTrials.gov at {url}: {reason}")
    if isinstance(exc, (_TooSlow, _TooLarge)):
        return str(exc)
    if isinstance(exc, (SSLError, requests.exceptions.SSLError)) or _caused_by_ssl(exc):
        return _("Secure connection to ClinicalTrials.gov at {url} failed: {reason}").format(
            url=url, reason=_network_reason(exc))
    if isinstance(exc, NewConnectionError):
        return unreachable.format(url=url, reason=_network_reason(exc))
    if isinstance(exc, ConnectTimeoutError):
        return _("ClinicalTrials.gov at {url} did not accept a connection within {seconds} s"
                 ).format(url=url, seconds=f"{client.timeout[0]:g}")
    if isinstance(exc, ReadTimeoutError):
        return _("ClinicalTrials.gov did not answer within {seconds} s").format(
            seconds=f"{client.timeout[1]:g}")
    if isinstance(exc, DecodeError):
        return _("ClinicalTrials.gov's answer could not be decompressed")
    if isinstance(exc, ProtocolError) and _cut_short(exc):
        return _("ClinicalTrials.gov's answer was cut short: incomplete read")
    if isinstance(exc, (OSError, ProtocolError, MaxRetryError,
                        requests.exceptions.ConnectionError)):
        return unreachable.format(url=url, reason=_network_reason(exc))
    return _("Cannot ask ClinicalTrials.gov at {url}: {reason}").format(
        url=url, reason=_one_line(str(exc)) or type(exc).__name__)


def _unwrap(exc: BaseException) -> BaseException:
    """The transport error inside requests' wrappers and urllib3's MaxRetryError."""
    import requests
    from urllib3.exceptions import MaxRetryError

    for _depth in range(5):
        if isinstance(exc, MaxRetryError) and isinstance(exc.reason, BaseException):
            exc = exc.reason
        elif (isinstance(exc, requests.exceptions.RequestException) and exc.args
              and isinstance(exc.args[0], BaseException)):
            exc = exc.args[0]
        else:
            break
    return exc


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and the exceptions it wraps in its args (urllib3 style)."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _caused_by_ssl(exc: BaseException) -> bool:
    import ssl

    return any(isinstance(e, ssl.SSLError) for e in _exception_chain(exc))


def _cut_short(exc: BaseException) -> bool:
    import http.client

    return any(isinstance(e, http.client.IncompleteRead) for e in _exception_chain(exc))


def _network_reason(exc: BaseException) -> str:
    """A few words for a network failure: "connection refused", "host name not found" …"""
    import http.client
    import socket

    from urllib3.exceptions import NameResolutionError

    chain = list(_exception_chain(exc))
    for e in chain:
        if isinstance(e, (socket.gaierror, NameResolutionError)):
            return _("host name not found")
        if isinstance(e, ConnectionRefusedError):
            return _("connection refused")
        if isinstance(e, http.client.RemoteDisconnected):
            return _("the server closed the connection without answering")
        if isinstance(e, ConnectionResetError):
            return _("connection reset")
        if isinstance(e, http.client.IncompleteRead):
            return _("incomplete read")
        if isinstance(e, TimeoutError):
            return _("timed out")
    for e in reversed(chain):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
    return type(_unwrap(exc)).__name__


def _one_line(text: str, limit: int = 200) -> str:
    return excerpt(text, limit)


def _first_line(body: bytes) -> str:
    """The first non-empty line of an error body, read as text."""
    for line in body.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return _one_line(line)
    return _("(empty answer)")


def study_nct_id(study: Any) -> str | None:
    """The identifier of a study as the API gives it (``GET /studies/{id}`` or an element of
    a search page), when it is a valid ASCII NCT id ("nct02260505 " is read as NCT02260505);
    None otherwise (no identifier, not text, "NCT０３８３０７８８" …): a sync skips such a
    search result with a warning rather than store a second identity for a trial."""
    if not isinstance(study, Mapping):
        return None
    protocol = study.get("protocolSection")
    ident = protocol.get("identificationModule") if isinstance(protocol, Mapping) else None
    raw = ident.get("nctId") if isinstance(ident, Mapping) else None
    if not isinstance(raw, str):
        return None
    if is_nct_id(raw):
        return raw
    try:
        return normalise_nct_id(raw)
    except InvalidTrialId:
        return None


def _aliases(data: dict[str, Any]) -> list[str]:
    protocol = data.get("protocolSection")
    ident = protocol.get("identificationModule") if isinstance(protocol, dict) else None
    aliases = ident.get("nctIdAliases") if isinstance(ident, dict) else None
    return [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []


# --------------------------------------------------------------------------------------------
# Pure parsers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedStudy:
    """What ``parse_study`` made of one record, and what it had to leave out."""

    trial: Trial
    warnings: tuple[str, ...] = ()
    """Parts of the record that were skipped or could not be used, one line each."""


def parse_search_page(
    data: Any, what: str | None = None
) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """(studies, nextPageToken, totalCount) of one decoded ``GET /studies`` page; a page of
    the wrong shape is a RegistryError for the whole page (``what`` names it)."""
    what = what or _("search page")
    unreadable = _("ClinicalTrials.gov sent an unreadable {what}: {problem}")
    if not isinstance(data, dict):
        raise RegistryError(unreadable.format(what=what, problem=_kind_words(data)))
    studies = data.get("studies")
    if not isinstance(studies, list):
        raise RegistryError(unreadable.format(what=what, problem=_("no 'studies' list")))
    for index, study in enumerate(studies):
        if not isinstance(study, dict):
            raise RegistryError(unreadable.format(what=what, problem=_(
                "study {number} is {kind}").format(number=index + 1, kind=_kind_words(study))))
    token = data.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise RegistryError(unreadable.format(what=what, problem=_(
            "nextPageToken is {kind}").format(kind=_kind_words(token))))
    total = data.get("totalCount")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        total = None
    return list(studies), (token or None), total


def parse_study(data: Any, *, retrieved: str | None = None) -> ParsedStudy:
    """One API v2 study (``GET /studies/{nctId}`` or an element of a search page) as a Trial.

    Never raises anything but ``RegistryError`` (no protocolSection, identificationModule or
    valid nctId). Anything else that is missing, mistyped or malformed is left out and, when
    it matters, reported in ``warnings``.
    """
    if not isinstance(data, dict):
        raise RegistryError(_("A ClinicalTrials.gov study must be a JSON object, not {kind}")
                            .format(kind=_kind_words(data)))
    protocol = data.get("protocolSection")
    if not isinstance(protocol, dict):
        raise RegistryError(_("ClinicalTrials.gov study without a protocolSection"))
    ident = protocol.get("identificationModule")
    if not isinstance(ident, dict):
        raise RegistryError(_("ClinicalTrials.gov study without an identificationModule"))
    raw_id = ident.get("nctId")
    if not isinstance(raw_id, str):
        raise RegistryError(_("ClinicalTrials.gov study without an nctId"))
    nct = study_nct_id(data)
    if nct is None:
        raise RegistryError(
            _("ClinicalTrials.gov study with a malformed nctId {nct}").format(
                nct=_one_line(repr(raw_id), 40))
        )

    r = _Reader()
    status_mod = r.module(protocol, "statusModule")
    sponsor_mod = r.module(protocol, "sponsorCollaboratorsModule")
    description_mod = r.module(protocol, "descriptionModule")
    conditions_mod = r.module(protocol, "conditionsModule")
    design_mod = r.module(protocol, "designModule")
    arms_mod = r.module(protocol, "armsInterventionsModule")
    eligibility_mod = r.module(protocol, "eligibilityModule")
    contacts_mod = r.module(protocol, "contactsLocationsModule")
    derived = r.module(data, "derivedSection")
    misc = r.module(derived, "miscInfoModule", "derivedSection")

    brief_title = r.text(ident, "briefTitle")
    official_title = r.text(ident, "officialTitle")
    title = official_title or brief_title
    if title is None:
        r.warn("no title in the record; using the identifier")
        title = nct

    overall = r.text(status_mod, "overallStatus", "statusModule")
    status = _registry_status(overall)
    if overall is not None and status is None:
        # Not a registry value we know: kept as the record's own words (not recruiting).
        r.warn(f"unrecognised overall status {_one_line(overall, 40)!r}")
    last_known_text = r.text(status_mod, "lastKnownStatus", "statusModule")
    last_known = _registry_status(last_known_text)
    if last_known_text is not None and last_known is None:
        r.warn(f"unrecognised last known status {_one_line(last_known_text, 40)!r}")

    last_update = r.date_struct(status_mod, "lastUpdatePostDateStruct")
    version_holder = r.date(misc, "versionHolder", "miscInfoModule")
    verified = r.date(status_mod, "statusVerifiedDate", "statusModule")
    as_of = last_update or version_holder or verified or _date_part(retrieved)
    if as_of is None:
        r.warn("no date in the record (last update, version); treated as very old")
        as_of = NO_DATE

    sites = _parse_locations(contacts_mod, r)
    eligibility = _parse_eligibility(eligibility_mod, r) if eligibility_mod else None

    trial = Trial(
        nct_id=nct,
        title=title,
        source=Source(
            kind="registry",
            description=SOURCE_DESCRIPTION,
            as_of=as_of,
            url=f"https://clinicaltrials.gov/study/{nct}",
            retrieved=retrieved,
        ),
        status=status,
        status_text=overall if status is None else None,
        last_known_status=last_known,
        brief_title=brief_title,
        acronym=r.text(ident, "acronym"),
        brief_summary=r.text(description_mod, "briefSummary", "descriptionModule"),
        detailed_description=r.text(description_mod, "detailedDescription", "descriptionModule"),
        last_update=last_update,
        phases=r.texts(design_mod, "phases", "designModule"),
        sponsor=r.text(r.module(sponsor_mod, "leadSponsor", "sponsorCollaboratorsModule"),
                       "name", "leadSponsor"),
        conditions=r.texts(conditions_mod, "conditions", "conditionsModule"),
        keywords=r.texts(conditions_mod, "keywords", "conditionsModule"),
        condition_terms=_parse_condition_terms(
            r.module(derived, "conditionBrowseModule", "derivedSection"), r),
        arms=_parse_arms(arms_mod, r),
        eligibility=eligibility,
        central_contacts=_parse_contacts(contacts_mod.get("centralContacts"),
                                         "centralContacts", r),
        officials=_parse_contacts(contacts_mod.get("overallOfficials"), "overallOfficials", r),
        secondary_ids=_parse_secondary_ids(ident, r),
        start_date=r.date_struct(status_mod, "startDateStruct"),
        primary_completion_date=r.date_struct(status_mod, "primaryCompletionDateStruct"),
        completion_date=r.date_struct(status_mod, "completionDateStruct"),
        verified_date=verified,
        enrollment=_parse_enrollment(design_mod, r),
        study_type=r.text(design_mod, "studyType", "designModule"),
        sites=sites,
    )
    return ParsedStudy(trial=trial, warnings=tuple(r.warnings))


class _Reader:
    """Typed reads from decoded JSON: a wrong type is a warning and an absent value."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def module(self, parent: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.warn(f"{_path(where, key)} ignored: {_kind(value)} instead of an object")
            return {}
        return value

    def array(self, parent: dict[str, Any], key: str, where: str = "") -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.warn(f"{_path(where, key)} ignored: {_kind(value)} instead of a list")
            return []
        return value

    def text(self, parent: dict[str, Any], key: str, where: _Where = "") -> str | None:
        value = parent.get(key)
        if isinstance(value, str):
            return (value.strip() or None) if value.isascii() else self.clean(value, where, key)
        if value is not None:
            self.warn(f"{_path(where, key)} ignored: {_kind(value)} instead of text")
        return None

    def texts_of(self, parent: dict[str, Any], keys: tuple[str, ...],
                 where: _Where = "") -> list[str | None]:
        """``[self.text(parent, key, where) for key in keys]``, in one call: a location's
        half-dozen fields, a thousand locations a record."""
        text = self.text
        return [text(parent, key, where) for key in keys]

    def clean(self, value: str, where: _Where, key: str) -> str | None:
        """Stripped text, None if blank; a lone surrogate (JSON allows "\\ud800", UTF-8 does
        not, and the store could not write it) becomes U+FFFD, with a warning."""
        if not value.isascii() and _SURROGATE.search(value):
            self.warn(f"{_path(where, key)}: a broken character (lone surrogate) replaced")
            value = _SURROGATE.sub("\ufffd", value)
        return value.strip() or None

    def texts(self, parent: dict[str, Any], key: str, where: str = "") -> tuple[str, ...]:
        out: list[str] = []
        for item in self.array(parent, key, where):
            if isinstance(item, str):
                text = self.clean(item, where, key)
                if text:
                    out.append(text)
            else:
                self.warn(f"an item of {_path(where, key)} ignored: {_kind(item)}")
        return tuple(out)

    def date(self, parent: dict[str, Any], key: str, where: str = "") -> str | None:
        value = self.text(parent, key, where)
        if value is None:
            return None
        if not _is_iso_date(value):
            self.warn(f"{_path(where, key)} ignored: {_one_line(value, 40)!r} is not a date")
            return None
        return value

    def date_struct(self, status_mod: dict[str, Any], key: str) -> str | None:
        struct = self.module(status_mod, key, "statusModule")
        return self.date(struct, "date", _path("statusModule", key))


_Where = str | Callable[[], str]
"""Where a value sits, for warnings: the text, or a function that makes it, called only when
there is something to say (a location's label costs more to make than to read the location)."""


def _said(where: _Where) -> str:
    return where() if callable(where) else where


def _path(where: _Where, key: str) -> str:
    where = _said(where)
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _kind_words(value: Any) -> str:
    """`_kind` in the current language, for errors (parse warnings, a log's, stay English)."""
    words = {"a number": _("a number"), "text": _("text"), "a list": _("a list"),
             "an object": _("an object")}
    kind = _kind(value)
    return words.get(kind, kind)


_ISO_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _is_iso_date(value: str) -> bool:
    """'2019', '2019-01' or '2019-01-31', and a real date."""
    m = _ISO_DATE.match(value)
    if not m:
        return False
    year, month, day = (int(p) if p else 1 for p in m.groups())
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _date_part(timestamp: str | None) -> str | None:
    if timestamp and len(timestamp) >= 10 and _is_iso_date(timestamp[:10]):
        return timestamp[:10]
    return None


def _parse_enrollment(design_mod: dict[str, Any], r: _Reader) -> int | None:
    info = r.module(design_mod, "enrollmentInfo", "designModule")
    count = info.get("count")
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int):
        r.warn(f"enrollmentInfo.count ignored: {_kind(count)} instead of a whole number")
        return None
    if count == UNKNOWN_ENROLLMENT:
        return None
    if count < 0:
        r.warn(f"enrollmentInfo.count ignored: {count} is negative")
        return None
    return count


def _parse_secondary_ids(ident: dict[str, Any], r: _Reader) -> tuple[str, ...]:
    """"EudraCT:2014-005181-30", "OTHER:BIG 14-03" …, without repeats, in record order."""
    out: list[str] = []
    for index, info in enumerate(r.array(ident, "secondaryIdInfos", "identificationModule")):
        if not isinstance(info, dict):
            r.warn(f"secondary id {index + 1} ignored: {_kind(info)}")
            continue
        value = r.text(info, "id", "secondaryIdInfos")
        if value is None:
            continue
        kind = r.text(info, "type", "secondaryIdInfos") or "OTHER"
        label = "EudraCT" if kind == "EUDRACT_NUMBER" else kind
        entry = f"{label}:{value}"
        if entry not in out:
            out.append(entry)
    return tuple(out)


def _parse_arms(arms_mod: dict[str, Any], r: _Reader) -> tuple[Arm, ...]:
    arms: list[Arm] = []
    for index, group in enumerate(r.array(arms_mod, "armGroups", "armsInterventionsModule")):
        if not isinstance(group, dict):
            r.warn(f"arm {index + 1} ignored: {_kind(group)}")
            continue
        label = r.text(group, "label", "armGroups")
        if label is None:
            r.warn(f"arm {index + 1} ignored: no label")
            continue
        arms.append(Arm(
            label=label,
            type=r.text(group, "type", "armGroups"),
            description=r.text(group, "description", "armGroups"),
            interventions=r.texts(group, "interventionNames", "armGroups"),
        ))
    return tuple(arms)


_CONTACT_KEYS = ("name", "phone", "phoneExt", "email", "role", "affiliation")
_LOCATION_KEYS = ("status", "country", "state", "zip")


def _parse_contacts(value: Any, where: _Where, r: _Reader) -> tuple[Contact, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        r.warn(f"{_said(where)} ignored: {_kind(value)} instead of a list")
        return ()
    contacts: list[Contact] = []
    for index, raw in enumerate(value):
        def label(index: int = index) -> str:
            return f"{_said(where)} {index + 1}"

        if not isinstance(raw, dict):
            r.warn(f"{label()} ignored: {_kind(raw)}")
            continue
        name, phone, extension, email, role, affiliation = r.texts_of(raw, _CONTACT_KEYS, label)
        if extension:
            phone = f"{phone} ext. {extension}" if phone else f"ext. {extension}"
        if not (name or phone or email):
            r.warn(f"{label()} ignored: no name, phone or email")
            continue
        contacts.append(Contact(name=name or "", role=role, phone=phone, email=email,
                                affiliation=affiliation))
    return tuple(contacts)


def _parse_locations(contacts_mod: dict[str, Any], r: _Reader) -> tuple[Site, ...]:
    """The sites, each flagged when another site of the trial has exactly its position
    (read first, then made once: `dataclasses.replace` afterwards costs more than the read)."""
    read = [
        fields
        for index, loc in enumerate(r.array(contacts_mod, "locations", "contactsLocationsModule"))
        if (fields := _parse_location(index, loc, r)) is not None
    ]
    positions = Counter((f["latitude"], f["longitude"]) for f in read
                        if f["latitude"] is not None)
    return tuple(
        Site(**fields, shared_position=positions[fields["latitude"], fields["longitude"]] > 1)
        for fields in read
    )


def _parse_location(index: int, loc: Any, r: _Reader) -> dict[str, Any] | None:
    """A location's `Site` fields (but ``shared_position``), or None when skipped."""
    label = f"location {index + 1}"
    if not isinstance(loc, dict):
        r.warn(f"{label} skipped: {_kind(loc)} instead of an object")
        return None
    facility, city = r.texts_of(loc, ("facility", "city"), label)
    if not facility and not city:
        r.warn(f"{label} skipped: neither a facility nor a city")
        return None
    first = label

    def named() -> str:  # made only for a warning
        return f"{first} ({_one_line(facility or city or '', 60)})"

    raw_status, country, state, zip_code = r.texts_of(loc, _LOCATION_KEYS, named)
    status = _registry_status(raw_status)
    if raw_status is not None and status is None:
        # Not a registry value we know: "status unknown" (never taken for recruiting).
        r.warn(f"{named()}: unrecognised status {_one_line(raw_status, 40)!r}")
        status = Status.UNKNOWN
    latitude, longitude = _geo_point(loc.get("geoPoint"), named, r)
    placed = latitude is not None
    return {
        "facility": facility or "",
        "city": city or "",
        "country": country or "",
        "status": status,
        "state": state,
        "zip": zip_code,
        "latitude": latitude,
        "longitude": longitude,
        "precision": Precision.CITY if placed else Precision.UNKNOWN,
        "coordinate_source": GEOPOINT_SOURCE if placed else None,
        "contacts": _parse_contacts(loc.get("contacts"), lambda: f"{named()} contact", r),
    }


_STATUS_VALUES = {status.value: status for status in Status}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _registry_status(text: str | None) -> Status | None:
    """A registry status value ("RECRUITING"; case, spaces and hyphens forgiven); None when
    absent or not one (a listing's words such as "Open" are not registry values)."""
    if text is None:
        return None
    status = _STATUS_VALUES.get(text)
    if status is None:
        status = _STATUS_VALUES.get(status_key(text))
    return status


def _parse_condition_terms(browse: dict[str, Any], r: _Reader) -> tuple[str, ...]:
    """The MeSH terms the registry derived from the conditions (``meshes``), their ancestors
    (``ancestors``), and the browse leaves of HIGH relevance (the conditions as found, e.g.
    rare-disease names such as "Follicular Lymphoma"); deduplicated (case ignored), in record
    order. Leaves of LOW relevance are left out: in recorded studies they include terms
    foreign to the trial ("Psychotic Disorders" for a prostate trial); so are the browse
    branches, categories such as "All Conditions" that would match any search."""
    out: dict[str, str] = {}
    where = "derivedSection.conditionBrowseModule"
    for key, field in (("meshes", "term"), ("ancestors", "term"), ("browseLeaves", "name")):
        for index, item in enumerate(r.array(browse, key, where)):
            if not isinstance(item, dict):
                r.warn(f"{where}.{key} {index + 1} ignored: {_kind(item)}")
                continue
            if key == "browseLeaves" and item.get("relevance") != "HIGH":
                continue
            term = r.text(item, field, f"{where}.{key}")
            if term is not None:
                out.setdefault(term.casefold(), term)
    return tuple(out.values())


def _number(value: Any) -> float | None:
    """A finite JSON number as a float; None for anything else (true/false, text, an integer
    too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _geo_point(value: Any, label: _Where, r: _Reader) -> tuple[float | None, float | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        r.warn(f"{_said(label)}: geoPoint ignored ({_kind(value)}); position left to the "
               "geocoder")
        return None, None
    lat, lon = _number(value.get("lat")), _number(value.get("lon"))
    if lat is None or lon is None:
        r.warn(f"{_said(label)}: geoPoint ignored (not two numbers); position left to the "
               "geocoder")
        return None, None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        r.warn(f"{_said(label)}: geoPoint ignored ({lat:g}, {lon:g} is not a place); "
               "position left to the geocoder")
        return None, None
    return lat, lon


# -- eligibility ------------------------------------------------------------------------------


def _parse_eligibility(mod: dict[str, Any], r: _Reader) -> Eligibility:
    """The eligibility module as recorded. The criteria stay the registry's text: the
    inclusion and exclusion lists are read from it by `trialfinder.criteria`, the one
    parser, wherever they are shown."""
    criteria = mod.get("eligibilityCriteria")
    if criteria is not None and not isinstance(criteria, str):
        r.warn(f"eligibilityModule.eligibilityCriteria ignored: {_kind(criteria)}")
        criteria = None
    healthy = mod.get("healthyVolunteers")
    if healthy is not None and not isinstance(healthy, bool):
        r.warn(f"eligibilityModule.healthyVolunteers ignored: {_kind(healthy)}")
        healthy = None
    return Eligibility(
        criteria=criteria or None,
        minimum_age=r.text(mod, "minimumAge", "eligibilityModule"),
        maximum_age=r.text(mod, "maximumAge", "eligibilityModule"),
        sex=r.text(mod, "sex", "eligibilityModule"),
        healthy_volunteers=healthy,
    )
