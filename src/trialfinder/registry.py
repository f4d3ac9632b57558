"""ClinicalTrials.gov API v2: a small HTTP client and a pure parser of its study records.

``RegistryClient`` talks to the API (session, base URL, timeouts, throttle, retries and the
clock all injectable); ``parse_study`` and ``parse_search_page`` are pure functions over the
decoded JSON, ``split_search_page`` one over a search page's text that also gives each
study's exact JSON text. Everything that goes wrong is a ``TrialFinderError`` with a one-line
message.

Decisions worth knowing:

- ``requests`` is imported inside the client, so ``import trialfinder.registry`` stays cheap.
- Throttle: at most one request per ``min_interval`` seconds (1 s for the live host, as its
  robots.txt asks; 0 s by default for a loopback base URL, i.e. a test server).
- Retries: 429, 500, 502, 503, 504, connection failures, timeouts and bodies cut short are
  retried ``max_retries`` times with exponential backoff and full jitter (a random wait between
  0 and ``backoff * 2**attempt`` seconds, at most ``MAX_BACKOFF``). A ``Retry-After`` header
  (seconds or an HTTP date) is obeyed instead, but never for more than ``MAX_RETRY_AFTER``
  (120 s): a CLI user should not stare at a silent terminal for longer; if the server still
  refuses after that, the retries run out and the user is told.
- A location without a facility name keeps ``facility=""`` (the registry gives none for some
  trials, e.g. NCT01063855, NCT02210780): displays show the city instead; no placeholder text
  is invented that a merge could mistake for a name.
- A location whose ``geoPoint`` is unusable (not numbers, out of range, 0,0) keeps its place in
  the trial without a coordinate (the geocoder chain can still place it by city) and the
  problem is reported in ``ParsedStudy.warnings``. A location that is not an object, or has
  neither a facility nor a city, is skipped with a warning.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from trialfinder import __version__
from trialfinder.errors import BadInput, InvalidTrialId, RegistryError, TrialNotFound
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Arm, Contact, Eligibility, Precision, Site, Source, Status, Trial

if TYPE_CHECKING:
    import requests

DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
BASE_URL_ENV = "TRIALFINDER_REGISTRY_URL"
USER_AGENT = f"trialfinder/{__version__} (+https://github.com/trialfinder/trialfinder)"

DEFAULT_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds."""
LIVE_MIN_INTERVAL = 1.0
"""Seconds between two requests to the live host (its robots.txt asks for 1 s)."""
MAX_RETRY_AFTER = 120.0
"""The longest ``Retry-After`` wait obeyed; a longer one is cut to this."""
MAX_BACKOFF = 60.0
"""The longest jittered backoff wait, whatever the attempt number."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGE_SIZE = 1000
DEFAULT_MAX_PAGES = 10_000
MAX_EMPTY_PAGES = 3
"""Consecutive empty pages that still carry a new token before a search gives up."""

UNKNOWN_ENROLLMENT = 99999999
"""The API's "enrollment count unknown" sentinel."""
GEOPOINT_SOURCE = "ClinicalTrials.gov geoPoint (city centre)"
SOURCE_DESCRIPTION = "ClinicalTrials.gov API v2"
NO_DATE = "0001-01-01"
"""``Source.as_of`` of a record that states no date at all: treated as very stale."""

_SERVICE = "ClinicalTrials.gov"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_GEO_FILTER = re.compile(r"^distance\(-?\d+(\.\d+)?,-?\d+(\.\d+)?,\d+(\.\d+)?(km|mi)?\)$")
_NUMBER_WORDS = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times",
                 6: "six times", 7: "seven times", 8: "eight times", 9: "nine times",
                 10: "ten times"}


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------


class _Answer(NamedTuple):
    status: int
    body: bytes
    url: str


class RegistryClient:
    """A polite client of the ClinicalTrials.gov API v2.

    Everything that talks to the world is injectable: ``session`` (a ``requests.Session``),
    ``base_url`` (else ``$TRIALFINDER_REGISTRY_URL``, else the live API), ``timeout``
    ((connect, read) seconds, always set), ``sleep``/``clock`` (throttle and backoff), ``rng``
    (jitter). Use as a context manager to close a session the client created itself.
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
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"Registry URL '{url}' is not an http(s) URL")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = url
        self.timeout = (float(timeout[0]), float(timeout[1]))
        if min_interval is None:
            min_interval = 0.0 if parts.hostname in _LOOPBACK_HOSTS else LIVE_MIN_INTERVAL
        self.min_interval = float(min_interval)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._own_session = session is None
        if session is None:
            import requests

            session = requests.Session()
            session.headers.update(self._headers)
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
        answer = self._fetch(f"/studies/{nct}")
        if answer.status == 404:
            where = "" if self.base_url == DEFAULT_BASE_URL else f" (at {self.base_url})"
            raise TrialNotFound(f"No study {nct} in {_SERVICE}{where}")
        if answer.status == 400:
            raise InvalidTrialId(
                nct, f"{_SERVICE} rejected '{nct}' as malformed: {_first_line(answer.body)}"
            )
        if answer.status != 200:
            raise RegistryError(
                f"{_SERVICE} answered {answer.status} for {nct}: {_first_line(answer.body)}"
            )
        text, data = _decode_json(answer.body, nct)
        if not isinstance(data, dict) or not isinstance(data.get("protocolSection"), dict):
            raise RegistryError(
                f"{_SERVICE} sent an unreadable response for {nct}: "
                f"{_kind(data)} without a protocolSection"
            )
        got = _study_nct_id(data)
        if got != nct and nct not in _aliases(data):
            raise RegistryError(
                f"{_SERVICE} answered with {got or 'a study without an identifier'} "
                f"when asked for {nct}"
            )
        return data, text

    def search(
        self,
        *,
        condition: str | None = None,
        term: str | None = None,
        location: str | None = None,
        overall_status: Iterable[str] | None = None,
        geo: str | None = None,
        page_size: int = 100,
        fields: str | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> StudySearch:
        """Studies matching a query (``GET /studies``), every page, lazily.

        ``geo`` is ``distance(lat,lon,50km)`` (it filters studies, not sites). The returned
        ``StudySearch`` is an iterator of raw study dicts; its ``total_count`` (fetching the
        first page if needed) feeds a progress bar.
        """
        params: dict[str, str] = {}
        for key, value in (("query.cond", condition), ("query.term", term),
                           ("query.locn", location)):
            if value is not None and value.strip():
                params[key] = value.strip()
        if overall_status is not None:
            if isinstance(overall_status, str):
                overall_status = overall_status.split(",")
            wanted = [_status_filter(s) for s in overall_status if s.strip()]
            if wanted:
                params["filter.overallStatus"] = ",".join(wanted)
        if geo is not None:
            geo = geo.replace(" ", "")
            if not _GEO_FILTER.match(geo):
                raise BadInput(
                    f"Geographic filter '{geo}' is not distance(lat,lon,radius), "
                    "e.g. distance(45.76,4.83,50km)"
                )
            params["filter.geo"] = geo
        if not params:
            raise BadInput("Give a condition, a term, a location, a status or a geo filter "
                           "to search ClinicalTrials.gov")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
            1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise BadInput(f"Page size must be between 1 and {MAX_PAGE_SIZE}, not {page_size!r}")
        if fields:
            params["fields"] = fields
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        return StudySearch(self, params, page_size=page_size, max_pages=max_pages)

    def version(self) -> dict[str, Any]:
        """API and data versions (``GET /version``): ``apiVersion``, ``dataTimestamp``."""
        answer = self._fetch("/version")
        if answer.status != 200:
            raise RegistryError(
                f"{_SERVICE} answered {answer.status} for /version: {_first_line(answer.body)}"
            )
        _, data = _decode_json(answer.body, "/version")
        if not isinstance(data, dict):
            raise RegistryError(
                f"{_SERVICE} sent an unreadable response for /version: {_kind(data)}"
            )
        return data

    # -- plumbing ----------------------------------------------------------------------------

    def _throttle(self) -> None:
        if self.min_interval > 0 and self._last_request_at is not None:
            wait = self.min_interval - (self._clock() - self._last_request_at)
            if wait > 0:
                self._sleep(wait)
        self._last_request_at = self._clock()

    def _fetch(self, path: str, params: dict[str, str] | None = None) -> _Answer:
        """GET with throttle and retries; the first answer that is not worth retrying."""
        import requests

        url = self.base_url + path
        attempts = self.max_retries + 1
        reasons: list[str] = []
        statuses: list[int] = []
        for attempt in range(attempts):
            self._throttle()
            retry_after: float | None = None
            try:
                response = self._session.get(
                    url, params=params, headers=self._headers, timeout=self.timeout,
                    stream=True,
                )
                # The whole body, truncation raising here as with `.content`, but read in
                # 1 MiB chunks instead of 10 KiB ones: a 30 MB search page in a third of the
                # time.
                with response:
                    body = b"".join(response.iter_content(_READ_CHUNK))
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"Secure connection to {_SERVICE} at {self.base_url} failed: "
                    f"{_network_reason(exc)}"
                ) from exc
            except requests.exceptions.ConnectTimeout:
                reasons.append(
                    f"{_SERVICE} at {self.base_url} did not accept a connection within "
                    f"{self.timeout[0]:g} s"
                )
            except requests.exceptions.ReadTimeout:
                reasons.append(self._read_timeout_reason())
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                reasons.append(f"{_SERVICE}'s answer was cut short: {_network_reason(exc)}")
            except requests.exceptions.ConnectionError as exc:
                if _chain_has(exc, "ReadTimeoutError", "timeout", "TimeoutError"):
                    reasons.append(self._read_timeout_reason())
                elif _chain_has(exc, "IncompleteRead", "ProtocolError"):
                    reasons.append(
                        f"{_SERVICE}'s answer was cut short: {_network_reason(exc)}"
                    )
                else:
                    reasons.append(
                        f"Could not reach {_SERVICE} at {self.base_url}: {_network_reason(exc)}"
                    )
            except requests.exceptions.RequestException as exc:
                raise RegistryError(
                    f"Cannot ask {_SERVICE} at {url}: {_one_line(str(exc))}"
                ) from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return _Answer(response.status_code, body, response.url or url)
                statuses.append(response.status_code)
                reasons.append(f"{_SERVICE} answered {response.status_code}")
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if attempt + 1 < attempts:
                self._wait_before_retry(attempt, retry_after)
        raise RegistryError(_give_up_message(reasons, statuses))

    def _read_timeout_reason(self) -> str:
        return f"{_SERVICE} did not answer within {self.timeout[1]:g} s"

    def _wait_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, MAX_RETRY_AFTER)
        else:
            delay = self._rng.uniform(0.0, min(MAX_BACKOFF, self.backoff * 2**attempt))
        if delay > 0:
            self._sleep(delay)


_READ_CHUNK = 1 << 20


class StudySearch(Iterator[dict[str, Any]]):
    """The studies of one search, page after page (made by ``RegistryClient.search``).

    Ends at the page without ``nextPageToken``. A token seen before, or ``MAX_EMPTY_PAGES``
    empty pages in a row, also end it (the API should never do that); if the first page's
    ``totalCount`` then shows that studies are missing, ``RegistryError`` is raised after the
    studies already received. More than ``max_pages`` pages raise ``RegistryError``.
    """

    def __init__(
        self, client: RegistryClient, params: dict[str, str], *, page_size: int, max_pages: int
    ) -> None:
        self._client = client
        self.params = dict(params)
        """The query and filter parameters, the same for every page."""
        self.page_size = page_size
        self.max_pages = max_pages
        self.pages = 0
        """Pages fetched so far."""
        self.received = 0
        """Studies received so far (yielded or about to be)."""
        self._total: int | None = None
        self._buffer: deque[tuple[dict[str, Any], str, int, int]] = deque()
        """(study, its page's text, start, end): the study's JSON is sliced only if asked."""
        self._token: str | None = None
        self._seen_tokens: set[str] = set()
        self._empty_run = 0
        self._done = False
        self._error: RegistryError | None = None

    @property
    def total_count(self) -> int | None:
        """The first page's ``totalCount`` (fetches that page if not done yet)."""
        if self.pages == 0 and not self._done:
            self._next_page()
        return self._total

    @property
    def buffered(self) -> int:
        """Studies received and not yet yielded: 0 when the next one needs another page
        (a consumer that batches sends what it holds before waiting on the network)."""
        return len(self._buffer)

    def __iter__(self) -> StudySearch:
        return self

    def __next__(self) -> dict[str, Any]:
        return self._next_item()[0]

    def with_text(self) -> Iterator[tuple[dict[str, Any], str]]:
        """The same iteration, each study with its exact JSON text as the registry sent it."""
        while True:
            try:
                study, text, start, end = self._next_item()
            except StopIteration:
                return
            yield study, text[start:end]

    def _next_item(self) -> tuple[dict[str, Any], str, int, int]:
        while not self._buffer:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._done:
                raise StopIteration
            self._next_page()
        return self._buffer.popleft()

    def _next_page(self) -> None:
        if self.pages >= self.max_pages:
            self._done = True
            raise RegistryError(
                f"{_SERVICE} search did not end after {self.max_pages} pages "
                f"({self.received} studies); stopped"
            )
        params = dict(self.params)
        params["pageSize"] = str(self.page_size)
        if self._token is None:
            params["countTotal"] = "true"
        else:
            params["pageToken"] = self._token
        answer = self._client._fetch("/studies", params)
        if answer.status == 400:
            self._done = True
            raise BadInput(f"{_SERVICE} rejected the search: {_first_line(answer.body)}")
        if answer.status != 200:
            self._done = True
            raise RegistryError(
                f"{_SERVICE} answered {answer.status} to a search: {_first_line(answer.body)}"
            )
        text, (spans, token, total) = _decode_json(
            answer.body, f"search page {self.pages + 1}",
            loads=lambda page: _gc_paused(_search_page_spans, page),
        )
        studies = [(study, text, start, end) for study, start, end in spans]
        if self.pages == 0:
            self._total = total
        self.pages += 1
        self.received += len(studies)
        self._buffer.extend(studies)
        if token is None:
            self._done = True
        elif token in self._seen_tokens:
            self._stop(f"it repeated the page token {token[:24]!r}")
        else:
            self._empty_run = self._empty_run + 1 if not studies else 0
            if self._empty_run >= MAX_EMPTY_PAGES:
                self._stop(f"it sent {MAX_EMPTY_PAGES} empty pages in a row")
            self._seen_tokens.add(token)
            self._token = token

    def _stop(self, why: str) -> None:
        self._done = True
        if self._total is not None and self.received < self._total:
            self._error = RegistryError(
                f"{_SERVICE} search stopped after {self.received} of {self._total} studies: "
                f"{why}"
            )


def _status_filter(value: str) -> str:
    key = value.strip().upper().replace(" ", "_").replace("-", "_").replace(",", "")
    if key not in Status.__members__:
        raise BadInput(
            f"Unknown recruitment status '{value}' (expected one of "
            f"{', '.join(Status.__members__)})"
        )
    return key


def _loads(text: str) -> Any:
    """``json.loads`` with the cyclic garbage collector paused: decoding makes no cycles, but
    the hundreds of thousands of containers of a search page would trigger several full
    collections that scan everything already loaded (a quarter of the decode time)."""
    if not gc.isenabled():
        return json.loads(text)
    gc.disable()
    try:
        return json.loads(text)
    finally:
        gc.enable()


def _decode_json(
    body: bytes, what: str, loads: Callable[[str], Any] | None = None
) -> tuple[str, Any]:
    """(text, decoded) of a response body; ``loads`` decodes (default: `_loads`). Any
    ValueError it raises becomes a one-line RegistryError saying where the JSON breaks."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"{_SERVICE} sent an unreadable response for {what}: not UTF-8 "
            f"(byte {exc.start} of {len(body)})"
        ) from exc
    try:
        return text, (loads or _loads)(text)
    except ValueError as exc:
        pos = getattr(exc, "pos", None)
        if not text.strip():
            problem = "an empty body"
        elif (isinstance(pos, int) and pos >= len(text.rstrip())) or str(exc).startswith(
            "Unterminated string"
        ):
            problem = f"the JSON stops after {len(body)} bytes (cut short?)"
        elif isinstance(pos, int):
            problem = f"invalid JSON at character {pos} of {len(text)}"
        else:
            problem = "invalid JSON"
        raise RegistryError(f"{_SERVICE} sent an unreadable response for {what}: {problem}") \
            from exc


def _retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds from now (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _give_up_message(reasons: list[str], statuses: list[int]) -> str:
    tries = len(reasons)
    if statuses and len(statuses) == tries:
        if len(set(statuses)) == 1:
            times = _NUMBER_WORDS.get(tries, f"{tries} times")
            return f"{_SERVICE} answered {statuses[0]} {times}; giving up"
        return f"{_SERVICE} answered {', '.join(map(str, statuses))}; giving up"
    last = reasons[-1]
    return last if tries == 1 else f"{last} ({tries} tries)"


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and the exceptions wrapped in its args (urllib3 style)."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo and len(seen) < 20:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _chain_has(exc: BaseException, *names: str) -> bool:
    return any(type(e).__name__ in names for e in _exception_chain(exc))


def _network_reason(exc: BaseException) -> str:
    """A few words for a network failure: "connection refused", "host name not found" …"""
    import socket

    chain = list(_exception_chain(exc))
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host name not found"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
    for e in chain:
        if type(e).__name__ == "IncompleteRead":
            return "incomplete read"
    text = str(exc)
    if "Failed to resolve" in text or "Name or service not known" in text:
        return "host name not found"
    if "Connection refused" in text:
        return "connection refused"
    for e in reversed(chain):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
    return type(exc).__name__


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _first_line(body: bytes) -> str:
    """The first non-empty line of an error body, read as text."""
    for line in body.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return _one_line(line)
    return "(empty answer)"


def _study_nct_id(data: dict[str, Any]) -> str | None:
    ident = data.get("protocolSection", {}).get("identificationModule")
    if isinstance(ident, dict) and isinstance(ident.get("nctId"), str):
        return ident["nctId"]
    return None


def _aliases(data: dict[str, Any]) -> list[str]:
    ident = data.get("protocolSection", {}).get("identificationModule")
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


_BLANK = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Page(NamedTuple):
    """A search page decoded by `decode_search_page`: the top-level members, with the
    studies (if an array) as (study, start, end): ``text[start:end]`` is the study's exact
    JSON; or, when the page is not an object, what it is instead (``members`` None)."""

    text: str
    members: dict[str, Any] | None
    studies: list[tuple[Any, int, int]] | None
    other: Any = None


def decode_search_page(text: str) -> _Page:
    """Decode a ``GET /studies`` page as ``json.loads`` would, keeping each study's own text.

    The page object is walked member by member and its "studies" array element by element,
    every value decoded by the standard decoder: the same cost as decoding the page whole,
    and each study's raw JSON comes for free as a span of the text. Invalid JSON raises
    the ``json.JSONDecodeError`` (a ValueError) that ``json.loads`` raises, same message and
    position: once the walk fails, json.loads has the last word (Python 3.13+ places a
    trailing comma's error at the comma, older ones after it).
    """
    try:
        return _walk_search_page(text)
    except json.JSONDecodeError:
        json.loads(text)  # raises json's own error for this text
        raise  # the walk's, should json.loads ever accept what it refused


def _walk_search_page(text: str) -> _Page:
    decode = _DECODER.raw_decode
    blank = _BLANK.match
    i = blank(text).end()
    if text[i:i + 1] != "{":
        return _Page(text, None, None, _DECODER.decode(text))  # not an object
    members: dict[str, Any] = {}
    studies: list[tuple[Any, int, int]] | None = None
    i = blank(text, i + 1).end()
    if text[i:i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i:i + 1] != '"':
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", text, i)
            key, i = json.decoder.scanstring(text, i + 1)
            i = blank(text, i).end()
            if text[i:i + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
            i = blank(text, i + 1).end()
            if key == "studies" and text[i:i + 1] == "[":
                spans: list[tuple[Any, int, int]] = []
                i = blank(text, i + 1).end()
                if text[i:i + 1] == "]":
                    i += 1
                else:
                    more = True
                    while more:
                        value, end = decode(text, i)
                        spans.append((value, i, end))
                        i, more = _after_value(text, end, "]")
                members[key], studies = None, spans
            else:
                members[key], i = decode(text, i)
                if key == "studies":
                    studies = None  # the last "studies" wins, and this one is no array
            i, more = _after_value(text, i, "}")
            if not more:
                break
    end = blank(text, i).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return _Page(text, members, studies)


def _after_value(text: str, i: int, closer: str) -> tuple[int, bool]:
    """Past a value in an array or object: (where the next one starts, True) after a comma,
    (just past the closer, False) at the end; else json.loads' own error."""
    i = _BLANK.match(text, i).end()
    if text[i:i + 1] == ",":
        return _BLANK.match(text, i + 1).end(), True
    if text[i:i + 1] == closer:
        return i + 1, False
    raise json.JSONDecodeError("Expecting ',' delimiter", text, i)


_T = TypeVar("_T")


def _gc_paused(func: Callable[[str], _T], text: str) -> _T:
    """``func(text)`` with the cyclic collector paused (see `_loads`), then back as it was.
    Nothing is allocated once it is back (no context manager: its StopIteration would be):
    the first allocation then collects the young objects, a whole page, once, as after
    `_loads`, and that is the caller's."""
    if not gc.isenabled():
        return func(text)
    gc.disable()
    try:
        return func(text)
    finally:
        gc.enable()


def split_search_page(
    text: str,
) -> tuple[list[tuple[dict[str, Any], str]], str | None, int | None]:
    """(studies, each with its exact JSON text, nextPageToken, totalCount) of the text of a
    ``GET /studies`` page: `parse_search_page` of ``json.loads(text)``, with the same checks
    and messages, at the cost of ``json.loads`` (see `decode_search_page`); a study's text
    is its slice of ``text``. Invalid JSON raises ``json.JSONDecodeError`` where
    ``json.loads`` would (`_decode_json` turns it into a RegistryError). The cyclic
    collector is paused until the result is built, as in `_loads`.
    """
    return _gc_paused(_split_search_page, text)


def _split_search_page(
    text: str,
) -> tuple[list[tuple[dict[str, Any], str]], str | None, int | None]:
    spans, token, total = _search_page_spans(text)
    return [(study, text[start:end]) for study, start, end in spans], token, total


def _search_page_spans(
    text: str,
) -> tuple[list[tuple[dict[str, Any], int, int]], str | None, int | None]:
    """`split_search_page` with each study's text as a span (start, end) of ``text``, to
    be sliced only if asked (`StudySearch.with_text`); the collector is not paused here."""
    page = decode_search_page(text)
    if page.members is None:
        parse_search_page(page.other)  # raises: not an object
    spans = page.studies
    if page.members is None or spans is None:
        raise RegistryError(f"{_SERVICE} sent an unreadable search page: no 'studies' list")
    _, token, total = parse_search_page({**page.members, "studies": [s[0] for s in spans]})
    return spans, token, total


def parse_search_page(data: Any) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """(studies, nextPageToken, totalCount) of one decoded ``GET /studies`` page."""
    if not isinstance(data, dict):
        raise RegistryError(f"{_SERVICE} sent an unreadable search page: {_kind(data)}")
    studies = data.get("studies")
    if not isinstance(studies, list):
        raise RegistryError(f"{_SERVICE} sent an unreadable search page: no 'studies' list")
    for index, study in enumerate(studies):
        if not isinstance(study, dict):
            raise RegistryError(
                f"{_SERVICE} sent an unreadable search page: study {index + 1} is "
                f"{_kind(study)}"
            )
    token = data.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise RegistryError(
            f"{_SERVICE} sent an unreadable search page: nextPageToken is {_kind(token)}"
        )
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
        raise RegistryError(f"A {_SERVICE} study must be a JSON object, not {_kind(data)}")
    protocol = data.get("protocolSection")
    if not isinstance(protocol, dict):
        raise RegistryError(f"{_SERVICE} study without a protocolSection")
    ident = protocol.get("identificationModule")
    if not isinstance(ident, dict):
        raise RegistryError(f"{_SERVICE} study without an identificationModule")
    raw_id = ident.get("nctId")
    if not isinstance(raw_id, str):
        raise RegistryError(f"{_SERVICE} study without an nctId")
    try:
        nct = normalise_nct_id(raw_id)
    except InvalidTrialId as exc:
        raise RegistryError(
            f"{_SERVICE} study with a malformed nctId {_one_line(repr(raw_id), 40)}"
        ) from exc

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
    status = Status.parse(overall)
    if overall is not None and status is Status.UNKNOWN and overall.upper() != "UNKNOWN":
        r.warn(f"unrecognised overall status {_one_line(overall, 40)!r}")

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

    def text(self, parent: dict[str, Any], key: str, where: str = "") -> str | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.warn(f"{_path(where, key)} ignored: {_kind(value)} instead of text")
            return None
        return value.strip() or None

    def texts(self, parent: dict[str, Any], key: str, where: str = "") -> tuple[str, ...]:
        out: list[str] = []
        for item in self.array(parent, key, where):
            if isinstance(item, str):
                if item.strip():
                    out.append(item.strip())
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


def _path(where: str, key: str) -> str:
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


def _parse_contacts(value: Any, where: str, r: _Reader) -> tuple[Contact, ...]:
    if value is None:
        return ()
    fast = _fast_contacts(value)
    if fast is not None:
        return fast
    if not isinstance(value, list):
        r.warn(f"{where} ignored: {_kind(value)} instead of a list")
        return ()
    contacts: list[Contact] = []
    for index, raw in enumerate(value):
        label = f"{where} {index + 1}"
        if not isinstance(raw, dict):
            r.warn(f"{label} ignored: {_kind(raw)}")
            continue
        name = r.text(raw, "name", label)
        phone = r.text(raw, "phone", label)
        extension = r.text(raw, "phoneExt", label)
        if extension:
            phone = f"{phone} ext. {extension}" if phone else f"ext. {extension}"
        email = r.text(raw, "email", label)
        if not (name or phone or email):
            r.warn(f"{label} ignored: no name, phone or email")
            continue
        contacts.append(Contact(
            name=name or "",
            role=r.text(raw, "role", label),
            phone=phone,
            email=email,
            affiliation=r.text(raw, "affiliation", label),
        ))
    return tuple(contacts)


def _parse_locations(contacts_mod: dict[str, Any], r: _Reader) -> tuple[Site, ...]:
    rows: list[tuple[Any, ...]] = []
    for index, loc in enumerate(r.array(contacts_mod, "locations", "contactsLocationsModule")):
        row = _fast_location(loc)
        if row is None:  # something to warn about: the careful path, from scratch
            row = _parse_location(index, loc, r)
            if row is None:
                continue
        rows.append(row)
    positions = Counter((row[6], row[7]) for row in rows if row[6] is not None)
    shared = {position for position, n in positions.items() if n > 1}
    return tuple(
        Site(*row, shared_position=row[6] is not None and (row[6], row[7]) in shared)
        for row in rows
    )


# A location as a tuple of Site's leading fields, in Site's order (checked below):
_LOCATION_FIELDS = ("facility", "city", "country", "status", "state", "zip", "latitude",
                    "longitude", "precision", "coordinate_source", "contacts")
_STATUS_VALUES = {status.value: status for status in Status}
_CONTACT_KEYS = ("name", "role", "phone", "phoneExt", "email", "affiliation")
if (tuple(Site.__dataclass_fields__)[:len(_LOCATION_FIELDS)] != _LOCATION_FIELDS
        or tuple(Contact.__dataclass_fields__)[:6]
        != ("name", "role", "title", "phone", "email", "affiliation")):
    raise RuntimeError("Site or Contact fields moved: update registry._fast_location")


def _fast_contacts(value: Any) -> tuple[Contact, ...] | None:
    """``_parse_contacts`` for a list that gives nothing to warn about; None otherwise."""
    if type(value) is not list:
        return None
    contacts: list[Contact] = []
    for raw in value:
        if type(raw) is not dict:
            return None
        fields: list[str | None] = []
        for key in _CONTACT_KEYS:
            item = raw.get(key)
            if item is not None:
                if type(item) is not str:
                    return None
                item = item.strip() or None
            fields.append(item)
        name, role, phone, extension, email, affiliation = fields
        if extension:
            phone = f"{phone} ext. {extension}" if phone else f"ext. {extension}"
        if not (name or phone or email):
            return None
        contacts.append(Contact(name or "", role, None, phone, email, affiliation))
    return tuple(contacts)


def _fast_location(loc: Any) -> tuple[Any, ...] | None:
    """``_parse_location`` for a location that gives nothing to warn about; None otherwise
    (then the careful path reads it again and says what is wrong)."""
    if type(loc) is not dict:
        return None
    get = loc.get
    texts: list[str | None] = []
    for key in ("facility", "city", "country", "state", "zip", "status"):
        value = get(key)
        if value is not None:
            if type(value) is not str:
                return None
            value = value.strip() or None
        texts.append(value)
    facility, city, country, state, zip_code, raw_status = texts
    if not facility and not city:
        return None
    status = None
    if raw_status is not None:
        status = _STATUS_VALUES.get(raw_status)
        if status is None:
            return None
    point = get("geoPoint")
    if point is None:
        latitude = longitude = None
    else:
        if type(point) is not dict:
            return None
        latitude, longitude = point.get("lat"), point.get("lon")
        if not (type(latitude) in (float, int) and type(longitude) in (float, int)
                and -90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0
                and (latitude != 0.0 or longitude != 0.0)):
            return None
        latitude, longitude = float(latitude), float(longitude)
    raw_contacts = get("contacts")
    if raw_contacts is None:
        contacts: tuple[Contact, ...] | None = ()
    else:
        contacts = _fast_contacts(raw_contacts)
        if contacts is None:
            return None
    located = latitude is not None
    return (
        facility or "", city or "", country or "", status, state, zip_code, latitude, longitude,
        Precision.CITY if located else Precision.UNKNOWN,
        GEOPOINT_SOURCE if located else None,
        contacts,
    )


def _parse_location(index: int, loc: Any, r: _Reader) -> tuple[Any, ...] | None:
    label = f"location {index + 1}"
    if not isinstance(loc, dict):
        r.warn(f"{label} skipped: {_kind(loc)} instead of an object")
        return None
    facility = r.text(loc, "facility", label)
    city = r.text(loc, "city", label)
    if not facility and not city:
        r.warn(f"{label} skipped: neither a facility nor a city")
        return None
    label = f"{label} ({_one_line(facility or city or '', 60)})"
    raw_status = r.text(loc, "status", label)
    status = Status.parse(raw_status)
    if raw_status is not None and status is Status.UNKNOWN and raw_status.upper() != "UNKNOWN":
        r.warn(f"{label}: unrecognised status {_one_line(raw_status, 40)!r}")
    latitude, longitude = _geo_point(loc.get("geoPoint"), label, r)
    return (
        facility or "",
        city or "",
        r.text(loc, "country", label) or "",
        status,
        r.text(loc, "state", label),
        r.text(loc, "zip", label),
        latitude,
        longitude,
        Precision.CITY if latitude is not None else Precision.UNKNOWN,
        GEOPOINT_SOURCE if latitude is not None else None,
        _parse_contacts(loc.get("contacts"), f"{label} contact", r),
    )


def _geo_point(value: Any, label: str, r: _Reader) -> tuple[float | None, float | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        r.warn(f"{label}: geoPoint ignored ({_kind(value)}); position left to the geocoder")
        return None, None
    lat, lon = value.get("lat"), value.get("lon")
    numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in (lat, lon)
    )
    if not numbers:
        r.warn(f"{label}: geoPoint ignored (not two numbers); position left to the geocoder")
        return None, None
    lat, lon = float(lat), float(lon)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        r.warn(f"{label}: geoPoint ignored ({lat:g}, {lon:g} is not a place); "
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
