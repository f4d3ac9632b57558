"""Positions for trial sites (and, on request, for the patient's place).

A chain of geocoders, each a separate class behind the one `Geocoder` protocol, asked in
order; the most precise answer wins and a facility-level answer ends the search:

1. `RecordGeocoder`: the coordinate the record carries (registry geoPoint: a city centre),
   unless it lies outside the record's own country.
2. `CacheGeocoder`: positions found online earlier and kept in the store's geocode cache.
3. `GazetteerGeocoder`: the bundled gazetteer (postal code centroid, else city centre), only
   where the record's city, state and postal code agree (`Gazetteer.match_site`).
4. `NominatimGeocoder`: OpenStreetMap's Nominatim, for the facility itself. Online, so only
   when asked: the `geocode --online` and `nearest --online` commands (or
   ``TRIALFINDER_ONLINE=1`` for the `geocode` command alone, see `online_requested`).

Nominatim is asked one request a second at most (geopy's RateLimiter), with a User-Agent
naming the project, a structured query restricted to the site's country, and every answer
(a miss too) is cached in the store so it is not asked again for `CACHE_DAYS` (misses:
`MISS_CACHE_DAYS`). A miss, an error (timeout, 429, 5xx, unreachable) or an implausible
answer (farther than `MAX_OFFSET_KM` from the city centre) falls back to the next answer with a
one-line warning in `warnings`.

An answer farther than `MAX_OFFSET_KM` from the record's own coordinate is taken for a
namesake and not used, unless it is the gazetteer's and agrees with the record's city and its
postal code or state: then the registry's coordinate is the namesake, and is replaced.

The offline steps (record → cache → gazetteer) decide the positions a store keeps:
`place_offline` at sync time, and `ensure_placed` when a record was placed by an older version
of these rules or of the gazetteer (`placing_version`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from trialfinder.errors import BadInput, GeocodingError
from trialfinder.i18n import _, format_decimal
from trialfinder.models import Precision, Site, Trial

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer, Place, Resolution, SiteMatch
    from trialfinder.store import StoreLike

NOMINATIM_URL = "https://nominatim.openstreetmap.org"
"""The public OpenStreetMap server; override with ``TRIALFINDER_NOMINATIM_URL``."""
NOMINATIM_SOURCE = "Nominatim/OpenStreetMap"
"""How a Nominatim position is labelled (with the date it was fetched). Data © OpenStreetMap
contributors, ODbL."""
CACHE_DAYS = 90
"""A position found online is not asked for again before this many days."""
MISS_CACHE_DAYS = 30
"""Nor is a facility Nominatim did not find, for this shorter period (OSM keeps growing)."""
MAX_OFFSET_KM = 50.0
"""A facility farther than this from its city's centre is taken for a namesake elsewhere."""
MIN_DELAY_SECONDS = 1.0
"""Nominatim's usage policy: at most one request a second."""
TIMEOUT_SECONDS = 10.0
PLACING_RULES = "3"
"""Version of the offline placing rules (record, cache, gazetteer): bump it whenever they
change, so that positions stored by an earlier version are decided again."""
GAZETTEER_SOURCE = "bundled gazetteer"
"""How a position from the bundled gazetteer is labelled (`Site.coordinate_source`)."""
ONLINE_ENV = "TRIALFINDER_ONLINE"
URL_ENV = "TRIALFINDER_NOMINATIM_URL"


def user_agent() -> str:
    from trialfinder import __version__

    return f"trialfinder/{__version__} (+https://github.com/trialfinder/trialfinder)"


def placing_version(gazetteer: Gazetteer | None = None) -> str:
    """What decided a trial's stored positions: these rules and this gazetteer build
    (`Trial.placed_by`); a record placed by another version is placed again."""
    if gazetteer is None:
        from trialfinder.gazetteer import Gazetteer

        gazetteer = Gazetteer.bundled()
    return f"rules {PLACING_RULES}; gazetteer {gazetteer.build_id}"


def online_requested(flag: bool, *, environ: dict[str, str] | None = None) -> bool:
    """Whether *site* geocoding may go online: ``--online``, or ``TRIALFINDER_ONLINE=1``.

    Only the `geocode` command reads the environment variable. A command that carries the
    patient's place (`nearest`, `where`) goes online only with its own explicit ``--online``.
    """
    if flag:
        return True
    value = (os.environ if environ is None else environ).get(ONLINE_ENV, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Position:
    latitude: float
    longitude: float
    precision: Precision
    source: str
    """Where it came from, as shown to users ("bundled gazetteer",
    "Nominatim/OpenStreetMap, 2026-11-24")."""
    matched: tuple[str, ...] = ()
    """The record's address fields a looked-up position agrees with (`Site.matched`)."""


class Geocoder(Protocol):
    def position(self, site: Site) -> Position | None:
        """A position for the site, or None to let the next step try."""


class PositionCache(Protocol):
    """The part of `trialfinder.store.Store` the cache steps use."""

    def geocode_get(self, key: str) -> Any: ...

    def geocode_put(
        self,
        key: str,
        latitude: float | None,
        longitude: float | None,
        precision: str | None,
        source: str | None,
        raw: str | None = None,
        now: str | None = None,
    ) -> None: ...


def cache_key(site: Site) -> str:
    """The store's key for a site's facility position (folded facility, city, country)."""
    return "facility:" + site.key()


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _fetched_at(cached: Any) -> datetime:
    fetched = datetime.fromisoformat(str(cached.fetched_at))
    return fetched if fetched.tzinfo else fetched.replace(tzinfo=UTC)


def _is_miss(cached: Any) -> bool:
    return cached.latitude is None or cached.longitude is None


def _cached_position(cached: Any) -> Position:
    return Position(
        float(cached.latitude),
        float(cached.longitude),
        Precision(cached.precision),
        f"{cached.source}, {_fetched_at(cached).date().isoformat()}",
    )


ANSWERS_KEPT = 16_384
"""How many offline answers (an address's match, a registry point's country check) a process
keeps per gazetteer: registry sites repeat their towns (a page of 1,000 studies has about
9,000 sites in a few hundred towns), and matching an address is about half of a sync's CPU
time otherwise."""


class _Answers:
    """The offline answers of one gazetteer, by their inputs: the same inputs asked of the
    same (read-only) gazetteer get the same answer, so keeping them is correct by
    construction. The least recently used are dropped past `ANSWERS_KEPT`; threads share it
    (the web server places records too)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        answer = compute()
        with self._lock:
            self._kept[key] = answer
            while len(self._kept) > ANSWERS_KEPT:
                self._kept.popitem(last=False)
        return answer


_ANSWERS: WeakKeyDictionary[Gazetteer, _Answers] = WeakKeyDictionary()
_ANSWERS_LOCK = threading.Lock()


def _answers(gazetteer: Gazetteer) -> _Answers:
    """The answers kept for this gazetteer (for as long as it lives)."""
    with _ANSWERS_LOCK:
        answers = _ANSWERS.get(gazetteer)
        if answers is None:
            answers = _ANSWERS[gazetteer] = _Answers()
        return answers


class RecordGeocoder:
    """The coordinate the record itself carries (registry geoPoint: a city centre).

    A coordinate outside the record's own country (farther than a degree from the box of
    the country's places in the gazetteer) is not used: the gazetteer places the site from its
    address instead, or it stays unplaced with reason "registry position outside country".
    """

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self._gazetteer = gazetteer
        self._rejected: Site | None = None
        self._inside: dict[tuple[str, float | None, float | None], bool | None] = {}

    def position(self, site: Site) -> Position | None:
        self._rejected = None
        if not site.has_position:
            return None
        if self._gazetteer is None:
            from trialfinder.gazetteer import Gazetteer

            self._gazetteer = Gazetteer.bundled()
        point = (site.country, site.latitude, site.longitude)
        if point not in self._inside:
            gazetteer = self._gazetteer
            self._inside[point] = _answers(gazetteer).get(
                ("contains", *point),
                lambda: gazetteer.contains(*point))  # type: ignore[arg-type]
        if self._inside[point] is False:
            self._rejected = site
            return None
        return Position(
            site.latitude,  # type: ignore[arg-type]
            site.longitude,  # type: ignore[arg-type]
            site.precision,
            site.coordinate_source or "record",
        )

    def reason(self, site: Site) -> str | None:
        """Why the last `position` call gave nothing for this site (None: no coordinate)."""
        return "registry position outside country" if self._rejected is site else None


class CacheGeocoder:
    """Positions found online earlier and kept in the store (no network).

    ``max_age`` None serves any cached position, however old (offline, an old facility
    position beats a city centre); the online chain passes `CACHE_DAYS` so that older ones
    are asked again.
    """

    def __init__(
        self,
        store: PositionCache,
        *,
        max_age: timedelta | None = None,
        now: datetime | None = None,
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.now = now

    def position(self, site: Site) -> Position | None:
        cached = self.store.geocode_get(cache_key(site))
        if cached is None or _is_miss(cached):
            return None
        if self.max_age is not None and _now(self.now) - _fetched_at(cached) > self.max_age:
            return None
        return _cached_position(cached)


class GazetteerGeocoder:
    """The bundled gazetteer: the postal code's centroid when known, else the city centre,
    only where the record's city, state and postal code agree."""

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self._gazetteer = gazetteer
        self._last: tuple[Site, str | None] | None = None
        self._matches: dict[tuple[str | None, ...], SiteMatch] = {}
        """Answers by address: a trial's sites share a few cities (1,148 sites, 300 cities)."""

    @property
    def gazetteer(self) -> Gazetteer:
        if self._gazetteer is None:
            from trialfinder.gazetteer import Gazetteer

            self._gazetteer = Gazetteer.bundled()
        return self._gazetteer

    def position(self, site: Site) -> Position | None:
        address = (site.city, site.country, site.state, site.zip)
        match = self._matches.get(address)
        if match is None:
            gazetteer = self.gazetteer
            match = self._matches[address] = _answers(gazetteer).get(
                ("match_site", *address), lambda: gazetteer.match_site(*address))
        self._last = (site, match.reason)
        if match.place is None:
            return None
        place = match.place
        return Position(place.latitude, place.longitude, place.precision, GAZETTEER_SOURCE,
                        match.matched)

    def reason(self, site: Site) -> str | None:
        """Why the last `position` call left this site unplaced (`UNPLACED_REASONS`)."""
        return self._last[1] if self._last is not None and self._last[0] is site else None


class RateLimiter:
    """Calls ``func`` at most once every ``min_delay_seconds``, across every trialfinder
    process of this user: each call reserves its turn in a shared timestamp file (``stamp``,
    in the user cache directory by default, see `rate_stamp_path`) under a file lock.

    geopy's RateLimiter keeps its last call in memory, so two processes (two `geocode
    --online` run by cron and by hand) would each send one request a second; hence this one.
    A stamp that cannot be read or written (a read-only cache directory) falls back to the
    limit within this process, without a word. ``sleep`` and ``clock`` are injectable (tests
    pass fakes); ``clock`` must count seconds on the same scale in every process (the wall
    clock, by default). No retries: a failure falls back to the next step at once.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        min_delay_seconds: float = MIN_DELAY_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        stamp: Path | None = None,
    ) -> None:
        self.func = func
        self.min_delay_seconds = min_delay_seconds
        self.sleep = sleep
        self.clock = clock
        self.stamp = stamp
        self._next = -math.inf
        """When this process may next call, whatever the shared stamp says."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        now = self.clock()
        start = self._reserve(now)
        if start > now:
            self.sleep(start - now)
        return self.func(*args, **kwargs)

    def _reserve(self, now: float) -> float:
        """The time this call may start, the next call's turn recorded."""
        start = max(now, self._plausible(self._next, now))
        if self.stamp is not None:
            try:
                start = self._reserve_shared(start, now)
            except OSError:
                self.stamp = None  # cannot share: this process keeps its own pace
        self._next = start + self.min_delay_seconds
        return start

    def _plausible(self, turn: float, now: float) -> float:
        # Processes queue: the next free turn may be a few delays ahead. One farther ahead
        # than `QUEUE_LIMIT` delays was set by a clock since put back (or is a damaged file):
        # it would stall every process, so it is ignored.
        return now if turn > now + QUEUE_LIMIT * self.min_delay_seconds else turn

    def _reserve_shared(self, start: float, now: float) -> float:
        assert self.stamp is not None
        self.stamp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.stamp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd)
            try:
                text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                try:
                    turn = float(text) if text else -math.inf
                except ValueError:
                    turn = -math.inf
                if math.isnan(turn):
                    turn = -math.inf
                start = max(start, self._plausible(turn, now))
                data = repr(start + self.min_delay_seconds).encode("ascii")
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return start


QUEUE_LIMIT = 60
"""How many turns ahead processes may have reserved before a stamp is taken for damaged."""


def _lock(fd: int, patience: float = 5.0) -> None:
    """An exclusive lock on the stamp; another process holds it for microseconds only, so
    one that holds it longer (stopped in the middle) makes this one give up (OSError)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def rate_stamp_path() -> Path:
    """Where every trialfinder process of this user records Nominatim's next free turn."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("trialfinder", appauthor=False)) / "nominatim-next-request"


def _domain_and_scheme(url: str) -> tuple[str, str]:
    """geopy's (domain, scheme) for a Nominatim base URL, or a one-line `BadInput`."""
    from trialfinder.i18n import _

    text = url.strip()

    def bad(message: str, reason: str = "") -> BadInput:
        return BadInput(message.format(name=URL_ENV, url=repr(url), example=NOMINATIM_URL,
                                       reason=reason))

    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise bad(_("{name}={url} is not a usable http(s) URL (it holds spaces or control "
                    "characters); e.g. {example}"))
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        raise bad(_("{name}={url} is not a usable http(s) URL ({reason}); e.g. {example}"),
                  str(exc).lower()) from None
    if parts.scheme not in ("http", "https"):
        raise bad(_("{name}={url} is not a usable http(s) URL (it must start with http:// or "
                    "https://); e.g. {example}"))
    host = parts.hostname or ""
    if not host or not (_HOST.fullmatch(host) or ("[" in parts.netloc and ":" in host)):
        raise bad(_("{name}={url} is not a usable http(s) URL (no valid host name); e.g. "
                    "{example}"))
    if parts.query or parts.fragment:
        raise bad(_("{name}={url} is not a usable http(s) URL (a base URL takes no ?query or "
                    "#fragment); e.g. {example}"))
    if _BAD_ESCAPE.search(parts.path):
        raise bad(_("{name}={url} is not a usable http(s) URL (a % in its path is not "
                    "followed by two hex digits); e.g. {example}"))
    return parts.netloc + parts.path.rstrip("/"), parts.scheme


_HOST = re.compile(r"[\w-]+(\.[\w-]+)*\.?")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it, outermost first."""
    seen: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    return seen


def _connection_failure(error: BaseException, timeout: float) -> str:
    """One short line for a request that got no answer, from the innermost cause (geopy's
    own message quotes urllib3's 300 characters, the URL and the place searched included)."""
    import socket
    import ssl

    from trialfinder.i18n import _

    source = NOMINATIM_SOURCE
    causes = _causes(error)
    for exc in reversed(causes):  # innermost first
        if isinstance(exc, ssl.SSLCertVerificationError):
            return _("{source} unreachable (its TLS certificate could not be verified)"
                     ).format(source=source)
        if isinstance(exc, ssl.SSLError):
            return _("{source} unreachable (the TLS handshake failed)").format(source=source)
        if isinstance(exc, socket.gaierror) or "NameResolution" in type(exc).__name__:
            return _("{source} unreachable (host name not found)").format(source=source)
        if isinstance(exc, ConnectionRefusedError):
            return _("{source} unreachable (connection refused)").format(source=source)
        if isinstance(exc, ConnectionResetError):
            return _("{source} unreachable (connection reset)").format(source=source)
        if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
            return _("{source} timed out (no answer within {seconds:g} s)").format(
                source=source, seconds=timeout)
        if isinstance(exc, OSError) and exc.strerror:
            return _("{source} unreachable ({reason})").format(
                source=source, reason=exc.strerror.lower())
    return _("{source} unreachable").format(source=source)


def _http_status(error: BaseException) -> int | None:
    for cause in _causes(error):
        status = getattr(cause, "status_code", None)
        if isinstance(status, int):
            return status
    return None


class NominatimClient:
    """Searches a Nominatim server through geopy, one request a second at most across every
    trialfinder process of the user (`RateLimiter`).

    Every failure is a `GeocodingError` with one short line ("Nominatim/OpenStreetMap
    unreachable (connection refused)"). ``requests`` counts the requests made (shown by the
    `geocode` command; asserted by tests).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = TIMEOUT_SECONDS,
        min_delay_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rate_stamp: Path | None = None,
    ) -> None:
        """``min_delay_seconds`` None means `MIN_DELAY_SECONDS` (read at call time);
        ``rate_stamp`` None means `rate_stamp_path()`. A malformed URL (the argument, else
        ``TRIALFINDER_NOMINATIM_URL``) is a `BadInput`."""
        from functools import partial

        self.url = url or os.environ.get(URL_ENV) or NOMINATIM_URL
        domain, scheme = _domain_and_scheme(self.url)

        from geopy.adapters import RequestsAdapter
        from geopy.geocoders import Nominatim

        class _Nominatim(Nominatim):
            # Nominatim's structured search takes `amenity` (a POI's name); geopy 2.5 drops
            # the keys it does not know.
            structured_query_params = Nominatim.structured_query_params | {"amenity"}

        self.timeout = timeout
        self._geocoder = _Nominatim(
            domain=domain,
            scheme=scheme,
            user_agent=user_agent(),
            timeout=timeout,
            # One request per lookup: urllib3's own connection retries would hide failures.
            adapter_factory=partial(RequestsAdapter, max_retries=0),
        )
        self._search = RateLimiter(
            self._geocoder.geocode,
            min_delay_seconds=MIN_DELAY_SECONDS if min_delay_seconds is None else min_delay_seconds,
            sleep=sleep,
            clock=clock,
            stamp=rate_stamp_path() if rate_stamp is None else rate_stamp,
        )
        self.requests = 0

    def search(self, query: str | dict[str, str], *, country_code: str | None = None) -> Any:
        """The best match (geopy Location, ``.raw`` the JSON) or None when there is none."""
        from geopy import exc

        from trialfinder.i18n import _

        self.requests += 1
        try:
            return self._search(
                query,
                exactly_one=True,
                addressdetails=True,
                country_codes=country_code.lower() if country_code else None,
            )
        except exc.GeocoderRateLimited as error:
            raise GeocodingError(_("{source} refused: too many requests (429)").format(
                source=NOMINATIM_SOURCE)) from error
        except exc.GeocoderServiceError as error:
            raise GeocodingError(self._failure(error)) from error
        except (exc.GeopyError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise GeocodingError(_("{source} failed (an answer it could not use)").format(
                source=NOMINATIM_SOURCE)) from error

    def _failure(self, error: Exception) -> str:
        """One short line for a geopy service error."""
        from geopy import exc

        from trialfinder.i18n import _

        source = NOMINATIM_SOURCE
        status = _http_status(error)
        if status is not None:
            return _("{source} answered HTTP {status}").format(source=source, status=status)
        if isinstance(error, exc.GeocoderParseError):
            return _("{source} failed (its answer is not JSON)").format(source=source)
        if isinstance(error, exc.GeocoderQueryError):
            return _("{source} refused the query").format(source=source)
        if isinstance(error, exc.GeocoderTimedOut):
            return _("{source} timed out (no answer within {seconds:g} s)").format(
                source=source, seconds=self.timeout)
        if isinstance(error, exc.GeocoderUnavailable):
            return _connection_failure(error, self.timeout)
        return _("{source} failed (an answer it could not use)").format(source=source)


def _raw_point(location: Any) -> tuple[float, float]:
    return float(location.latitude), float(location.longitude)


def _result_precision(raw: dict[str, Any]) -> Precision:
    """How precise a Nominatim result is, from its kind and rank (30: a building, 16: a city)."""
    if "postcode" in (raw.get("addresstype"), raw.get("type")):
        return Precision.POSTAL_CODE
    try:
        rank = int(raw.get("place_rank", 0))
    except (TypeError, ValueError):
        rank = 0
    if rank >= 26 or raw.get("class") in {"amenity", "building", "healthcare"}:
        return Precision.FACILITY
    return Precision.CITY


class NominatimGeocoder:
    """A site's facility position from Nominatim, cached in the store.

    A structured query (amenity = facility name, city, postal code when the gazetteer knows
    it, country) restricted to the site's country. Fresh cache entries (hits younger than
    `CACHE_DAYS`, misses younger than `MISS_CACHE_DAYS`) are served without asking.
    """

    def __init__(
        self,
        client: NominatimClient,
        store: PositionCache | None,
        gazetteer: Gazetteer | None = None,
        *,
        now: datetime | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self._gazetteer = GazetteerGeocoder(gazetteer)
        self.now = now
        self.warnings: list[str] = [] if warnings is None else warnings

    def _warn(self, site: Site, message: str) -> None:
        self.warnings.append(f"{site.facility} ({site.city}): {message}")

    def position(self, site: Site) -> Position | None:
        if not site.facility.strip():
            return None
        now = _now(self.now)
        key = cache_key(site)
        cached = self.store.geocode_get(key) if self.store is not None else None
        if cached is not None:
            age = now - _fetched_at(cached)
            if _is_miss(cached) and age <= timedelta(days=MISS_CACHE_DAYS):
                return None
            if not _is_miss(cached) and age <= timedelta(days=CACHE_DAYS):
                return _cached_position(cached)
        stale = cached if cached is not None and not _is_miss(cached) else None

        gazetteer = self._gazetteer.gazetteer
        # The city centre under the same rules as offline placing (state and postal code must
        # agree): the yardstick for a namesake; the country restricts the query either way.
        centre = gazetteer.locate(site.city, site.country, None, site.state)
        postal = gazetteer.locate(site.city, site.country, site.zip, site.state)
        query = {"amenity": site.facility, "city": site.city, "country": site.country}
        if site.zip and postal is not None and postal.precision is Precision.POSTAL_CODE:
            query["postalcode"] = site.zip  # only codes the gazetteer knows: not CEDEX ones
        country_code = gazetteer.country_code(site.country)
        try:
            location = self.client.search(query, country_code=country_code)
        except GeocodingError as error:
            if stale is not None:
                self._warn(site, _("{error}; kept the position found earlier").format(
                    error=error))
                return _cached_position(stale)
            self._warn(site, _("{error}; using the next best position").format(error=error))
            return None

        found = None
        if location is not None:
            raw = dict(location.raw or {})
            latitude, longitude = _raw_point(location)
            precision = _result_precision(raw)
            if precision is not Precision.FACILITY:
                from trialfinder.words import precision_name

                self._warn(site, _("{source} found only the {precision}; ignored").format(
                    source=NOMINATIM_SOURCE, precision=precision_name(precision)))
            elif (
                centre is not None
                and (offset := _distance(latitude, longitude, centre.latitude, centre.longitude))
                > MAX_OFFSET_KM
            ):
                self._warn(site, _(
                    "{source} answered {answer}, {km} km from {city}: taken for a namesake "
                    "and discarded").format(
                    source=NOMINATIM_SOURCE, answer=raw.get("display_name", "?"),
                    km=format_decimal(offset, 0, grouping=False), city=site.city))
            else:
                found = (latitude, longitude)
        if found is None and location is None:
            self._warn(site, _("not found by {source}; using the next best position").format(
                source=NOMINATIM_SOURCE))

        if self.store is not None:
            stamp = now.isoformat(timespec="seconds")
            raw_text = json.dumps(location.raw, ensure_ascii=False) if location else None
            if found is None:
                self.store.geocode_put(
                    key, None, None, None, NOMINATIM_SOURCE, raw=raw_text, now=stamp
                )
            else:
                self.store.geocode_put(
                    key,
                    found[0],
                    found[1],
                    Precision.FACILITY.value,
                    NOMINATIM_SOURCE,
                    raw=raw_text,
                    now=stamp,
                )
        if found is None:
            return None
        return Position(
            found[0], found[1], Precision.FACILITY, f"{NOMINATIM_SOURCE}, {now.date().isoformat()}"
        )


def _distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from trialfinder.nearest import haversine_km

    return haversine_km(lat1, lon1, lat2, lon2)


def _confirms_address(position: Position) -> bool:
    """Whether a looked-up position agrees with the record's city and its postal code or
    state: then it outweighs a registry coordinate far from it (on the recorded registry
    records, each such registry coordinate was a namesake: Bryn Mawr Hospital near
    Pittsburgh, CHU de la Réunion in Marseille)."""
    return "city" in position.matched and len(position.matched) >= 2


class GeocoderChain:
    def __init__(self, steps: Sequence[Geocoder]) -> None:
        self.steps = tuple(steps)

    @property
    def warnings(self) -> list[str]:
        return [w for step in self.steps for w in getattr(step, "warnings", ())]

    def position(self, site: Site) -> Position | None:
        best: Position | None = None
        record: Position | None = None
        for step in self.steps:
            found = step.position(site)
            if found is None:
                continue
            if isinstance(step, RecordGeocoder):
                record = found
            elif record is not None and _distance(
                found.latitude, found.longitude, record.latitude, record.longitude
            ) > MAX_OFFSET_KM:
                if not _confirms_address(found):
                    continue  # a namesake: the registry's own coordinate stands
                if best is record:  # the registry geocoded a namesake of the address
                    best = None
                record = None
            if best is None or found.precision.rank < best.precision.rank:
                best = found
                if best.precision is Precision.FACILITY:
                    break
        return best

    def reason(self, site: Site) -> str | None:
        """Why the last `position` call left the site unplaced: the first step's reason."""
        for step in self.steps:
            explain = getattr(step, "reason", None)
            found = explain(site) if explain is not None else None
            if found:
                return str(found)
        return None


def default_chain(
    gazetteer: Gazetteer | None = None,
    store: PositionCache | None = None,
    *,
    client: NominatimClient | None = None,
    now: datetime | None = None,
) -> GeocoderChain:
    """record → cache (when a store is given) → gazetteer → Nominatim (only given a client).

    Without a client nothing leaves the machine.
    """
    steps: list[Geocoder] = [RecordGeocoder(gazetteer)]
    if store is not None:
        max_age = timedelta(days=CACHE_DAYS) if client is not None else None
        steps.append(CacheGeocoder(store, max_age=max_age, now=now))
    steps.append(GazetteerGeocoder(gazetteer))
    if client is not None:
        steps.append(NominatimGeocoder(client, store, gazetteer, now=now))
    return GeocoderChain(steps)


def locate_sites(
    trial: Trial,
    geocoder: Geocoder | None = None,
    *,
    on_site: Callable[[int, int], None] | None = None,
) -> Trial:
    """The trial with every site placed as precisely as the geocoder knows, and sites that
    share one position marked as such. ``on_site(done, total)`` is called after each site."""
    geocoder = geocoder or default_chain()
    explain = getattr(geocoder, "reason", None)
    placed = []
    for site in trial.sites:
        base = _as_recorded(site)
        position = geocoder.position(base)
        reason = explain(base) if position is None and explain is not None else None
        placed.append(_placed(base, position, reason))
        if on_site is not None:
            on_site(len(placed), len(trial.sites))
    return trial.replace(sites=tuple(mark_shared_positions(placed)))


def _derived(site: Site) -> bool:
    """Whether a site's position was decided by this chain (not given by its record)."""
    source = site.coordinate_source or ""
    return source == GAZETTEER_SOURCE or source.startswith(NOMINATIM_SOURCE)


def _as_recorded(site: Site) -> Site:
    """The site as its record gave it: positions this chain decided earlier are dropped, so
    that placing again decides them anew."""
    if not (_derived(site) or site.matched or site.unplaced_reason or site.shared_position):
        return site
    if not _derived(site):
        return dataclasses.replace(site, matched=(), unplaced_reason=None, shared_position=False)
    return dataclasses.replace(
        site, latitude=None, longitude=None, precision=Precision.UNKNOWN,
        coordinate_source=None, matched=(), unplaced_reason=None, shared_position=False,
    )


def _placed(site: Site, position: Position | None, reason: str | None = None) -> Site:
    if position is None:
        if site.has_position:  # a record coordinate the chain refused (outside the country)
            return dataclasses.replace(
                site, latitude=None, longitude=None, precision=Precision.UNKNOWN,
                coordinate_source=None, unplaced_reason=reason,
            )
        return dataclasses.replace(site, unplaced_reason=reason)
    return dataclasses.replace(
        site,
        latitude=position.latitude,
        longitude=position.longitude,
        precision=position.precision,
        coordinate_source=position.source,
        matched=position.matched,
        unplaced_reason=None,
    )


def mark_shared_positions(sites: Iterable[Site]) -> list[Site]:
    """Flag sites that sit at exactly one position (several sites at one city centre).

    Ranking cannot tell them apart by distance; `nearest.rank_sites` orders them by status
    (recruiting, then other known statuses, then unknown) and then by facility name.
    """
    from trialfinder.nearest import position_key

    sites = list(sites)
    keys = [position_key(s) for s in sites]
    counts = Counter(k for k in keys if k is not None)
    marked = []
    for s, key in zip(sites, keys, strict=True):
        shared = key is not None and counts[key] > 1
        marked.append(s if s.shared_position == shared
                      else dataclasses.replace(s, shared_position=shared))
    return marked


# --- a whole trial, with the store -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """A trial's sites placed, and what the user must be told about it."""

    trial: Trial
    warnings: tuple[str, ...] = ()
    """One line each: Nominatim misses, errors and discarded answers."""
    requests: int = 0
    """Requests sent to Nominatim (0 offline)."""



def place_sites(
    trial: Trial,
    db: StoreLike,
    *,
    client: NominatimClient | None = None,
    gazetteer: Gazetteer | None = None,
    now: datetime | None = None,
    on_site: Callable[[int, int], None] | None = None,
) -> Placement:
    """Every site of the trial at the most precise position known.

    Offline (no client): the record, the store's cache if the store exists, the gazetteer;
    nothing is written. Online: Nominatim too, its answers cached in the store (``db``: an
    open `Store` or a path; created if need be: Nominatim's usage policy asks clients to
    cache).
    """
    from trialfinder.store import using_store

    with using_store(db, create=client is not None) as store:
        chain = default_chain(gazetteer, store, client=client, now=now)
        placed = locate_sites(trial, chain, on_site=on_site)
    return Placement(
        trial=placed,
        warnings=tuple(chain.warnings),
        requests=client.requests if client is not None else 0,
    )


def placer(store: Any = None) -> Callable[[Trial], Trial]:
    """The one way trialfinder places a trial's sites offline (record, the store's cache,
    the gazetteer: `place_offline`), stamped with `placing_version()`: what a sync, a scrape,
    a refresh and a load of an outdated record all use."""
    return lambda trial: place_offline(trial, store)


def place_offline(
    trial: Trial,
    store: Any = None,
    gazetteer: Gazetteer | None = None,
    *,
    on_site: Callable[[int, int], None] | None = None,
) -> Trial:
    """The trial with every site placed by the offline chain (record → the store's cache →
    gazetteer), sites sharing a position marked, and `Trial.placed_by` set: what a store
    keeps. ``store`` is an open `Store`, a path or None (no cache); nothing is written and
    nothing leaves the machine."""
    from trialfinder.store import using_store

    with using_store(store) as opened:
        # A store that never went online holds no position: no look-up per site then.
        chain = default_chain(gazetteer, opened if _holds_positions(opened) else None)
        placed = locate_sites(trial, chain, on_site=on_site)
    return placed.replace(placed_by=placing_version(gazetteer))


def _holds_positions(store: Any) -> bool:
    """Whether a store's geocode cache may hold a position (any cache that cannot say may)."""
    if store is None:
        return False
    holds = getattr(store, "geocode_holds_positions", None)
    return bool(holds()) if holds is not None else True


def keep_positions(trial: Trial, store: Any, gazetteer: Gazetteer | None = None) -> Trial:
    """The trial stamped as placed by this version (`placing_version`), and written back to
    ``store`` (an open `Store`, or None) when the store holds this very record and can be
    written now (never waiting for a running sync): positions decided online (`geocode
    --online`, `nearest --online`) are then what every later answer reads, offline. A record
    the store no longer holds as it was loaded (a sync replaced it meanwhile) is left alone."""
    placed = trial.replace(placed_by=placing_version(gazetteer))
    if store is None or store.read_only:
        return placed
    stored = store.get_trial(trial.nct_id)
    if stored is None or _recorded(stored) != _recorded(placed):
        return placed
    if stored != placed:
        store.rewrite_trials([placed], wait=False)
    return placed


def _recorded(trial: Trial) -> Trial:
    """The trial as its sources gave it: what two placings of one record share."""
    return trial.replace(placed_by=None, sites=tuple(_as_recorded(s) for s in trial.sites))


def ensure_placed(trial: Trial, store: Any = None, gazetteer: Gazetteer | None = None) -> Trial:
    """The trial as is when the current rules and gazetteer placed it, else placed again
    (`place_offline`): for a stored or bundled record read by an older version."""
    if trial.placed_by == placing_version(gazetteer):
        return trial
    return place_offline(trial, store, gazetteer)


# --- the patient's place, online only on an explicit --online -----------------------------


def _place_from_result(location: Any, query: str) -> tuple[Place, str]:
    """A Nominatim answer as a gazetteer Place, and the address Nominatim gave for it."""
    from trialfinder.gazetteer import Place, department_of

    raw = dict(location.raw or {})
    address = raw.get("address") or {}
    name = next(
        (address[k] for k in ("city", "town", "village", "municipality", "suburb") if k in address),
        raw.get("name") or query,
    )
    country = str(address.get("country_code", "")).upper()
    postcode = address.get("postcode")
    place = Place(
        name=str(name),
        country=country,
        country_name=str(address.get("country", "")),
        region=address.get("state"),
        department=department_of(postcode) if country == "FR" and postcode else None,
        postal_code=postcode,
        latitude=float(location.latitude),
        longitude=float(location.longitude),
        population=None,
        precision=_result_precision(raw),
    )
    return place, str(raw.get("display_name") or location.address or query)


def resolve_place(
    query: str,
    *,
    gazetteer: Gazetteer | None = None,
    client: NominatimClient | None = None,
) -> Resolution:
    """Where the patient's place is: the bundled gazetteer, offline.

    Only given a client (an explicit ``--online``) is the text also sent to Nominatim
    (free-form, restricted to the gazetteer's country when it knows the place). Its answer
    replaces the gazetteer's when it is more precise and within `MAX_OFFSET_KM` of it, or when
    the gazetteer does not know the place; every such decision is a note on the answer.
    The place is never written to the store.
    """
    from trialfinder.errors import UnknownPlace
    from trialfinder.gazetteer import Gazetteer

    gazetteer = gazetteer or Gazetteer.bundled()
    if client is None:
        return gazetteer.resolve(query)
    base: Resolution | None = None
    unknown: UnknownPlace | None = None
    try:
        base = gazetteer.resolve(query)
    except UnknownPlace as error:
        unknown = error
    try:
        location = client.search(query, country_code=base.place.country if base else None)
    except GeocodingError as error:
        if base is None:
            raise UnknownPlace(_("{unknown} (online lookup failed: {error})").format(
                unknown=unknown, error=error)) from error
        return _with_note(base, base.place, _(
            "Online lookup failed ({error}); offline answer kept.").format(error=error))
    if location is None:
        if base is None:
            raise unknown  # type: ignore[misc]
        return _with_note(base, base.place, _(
            "{source} does not know {query}; offline answer kept.").format(
            source=NOMINATIM_SOURCE, query=repr(query)))
    online, display = _place_from_result(location, query)
    if base is None:
        from trialfinder.gazetteer import Resolution

        return Resolution(
            query=query,
            place=online,
            alternatives=(),
            corrected_from=None,
            notes=(
                _("Not in the bundled gazetteer; found online by {source}: {place}. Check "
                  "that it is the place you meant.").format(source=NOMINATIM_SOURCE,
                                                           place=display),
            ),
        )
    offset = _distance(online.latitude, online.longitude, base.place.latitude, base.place.longitude)
    if offset > MAX_OFFSET_KM:
        return _with_note(
            base,
            base.place,
            _("{source} placed {query} at {place}, {km} km away; offline answer kept: check "
              "the place.").format(source=NOMINATIM_SOURCE, query=repr(query), place=display,
                                   km=format_decimal(offset, 0, grouping=False)),
        )
    if online.precision.rank < base.place.precision.rank:
        return _with_note(base, online, _("Position refined online by {source}: {place}.")
                          .format(source=NOMINATIM_SOURCE, place=display))
    return _with_note(base, base.place, _("{source} agrees ({km} km apart).").format(
        source=NOMINATIM_SOURCE, km=format_decimal(offset, 1, grouping=False)))


def _with_note(resolution: Resolution, place: Place, note: str) -> Resolution:
    return dataclasses.replace(resolution, place=place, notes=(*resolution.notes, note))
