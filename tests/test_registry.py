"""The ClinicalTrials.gov client against a local server, and the pure parser on recorded data.

The HTTP tests replay the recorded responses of tests/fixtures/ctgov byte for byte from a real
server on 127.0.0.1 (pytest-httpserver, or a raw socket server where werkzeug would fix the
bytes or the pace). Sleeping, the clock and the jitter are injected, so retries and throttling
cost no wall time; only the deadline tests wait, a fraction of a second, for a slow server.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import math
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from trialfinder.cli import app
from trialfinder.errors import BadInput, InvalidTrialId, RegistryError, TrialNotFound
from trialfinder.models import Precision, Status, to_jsonable, trial_from_jsonable
from trialfinder.recruitment import Standing, trial_recruitment
from trialfinder.registry import (
    DEFAULT_BASE_URL,
    DEFAULT_DEADLINE,
    DEFAULT_GIVE_UP,
    DEFAULT_MAX_BYTES,
    GEOPOINT_SOURCE,
    MAX_RETRY_AFTER,
    NO_DATE,
    USER_AGENT,
    ParsedStudy,
    RegistryClient,
    SearchPage,
    parse_search_page,
    parse_study,
    study_nct_id,
)

CTGOV = Path(__file__).parent / "fixtures" / "ctgov"
API = "/api/v2"

STUDY_1148 = "study_NCT04267848_nsclc_1148sites_sitestatus_contacts.json"
STUDY_437 = "study_NCT02513394_breast_437sites_21countries_withResults.json"
STUDY_73 = "study_NCT01063855_73sites_no_facility_7_no_geoPoint.json"
STUDY_42 = "study_NCT02210780_42sites_no_facility_names.json"
STUDY_26 = "study_NCT03934567_26sites_1_no_geoPoint.json"
STUDY_FR16 = "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json"
STUDY_FR27 = "study_NCT06620835_nsclc_FR27sites_sitestatus_withdrawn_contacts.json"
STUDY_NO_LOCS = "study_NCT05960149_prostate_zero_locations.json"
STUDY_NO_CLM = "study_NCT06179316_no_contactsLocationsModule.json"
STUDY_COPLANT = "study_NCT06323538_COPLANT_excerpt_retyped.json"
PHELAN_1 = "search_phelan_page1_fields_countTotal_trimmed.json"
PHELAN_2 = "search_phelan_page2_pageToken_trimmed.json"
SEARCH_2 = "search_page_2studies_nextPageToken.json"
SEARCH_60 = "search_NCT04280705_60sites_10countries_nextPageToken.json"
SEARCH_SITESTATUS = "search_page_nextPageToken_NCT05147467_sitestatus.json"


def asset(name: str) -> bytes:
    """The recorded bytes of a fixture."""
    return (CTGOV / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(asset(name).decode("utf-8"))


def parsed(name: str) -> ParsedStudy:
    return parse_study(load(name), retrieved="2025-12-10T08:00:00+00:00")


class FakeTime:
    """An injected clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client_for(httpserver, fake_time):
    """A client on the local server with fake time; keyword arguments override defaults."""
    made: list[RegistryClient] = []

    def make(**kwargs: Any) -> RegistryClient:
        options: dict[str, Any] = {
            "sleep": fake_time.sleep, "clock": fake_time.clock, "rng": random.Random(7),
        }
        options.update(kwargs)
        client = RegistryClient(httpserver.url_for(API), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def serve_json(httpserver, path: str, body: bytes, **kwargs: Any) -> None:
    httpserver.expect_ordered_request(f"{API}{path}", **kwargs).respond_with_data(
        body, content_type="application/json"
    )


# ---------------------------------------------------------------------------------------------
# get_study over HTTP
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [STUDY_FR16, STUDY_FR27, STUDY_1148, STUDY_NO_CLM, STUDY_COPLANT, STUDY_26]
)
def test_get_study_text_returns_the_recorded_bytes_and_record(httpserver, client_for, name):
    """A recorded study comes back decoded and as the exact text received."""
    body = asset(name)
    nct = load(name)["protocolSection"]["identificationModule"]["nctId"]
    httpserver.expect_request(
        f"{API}/studies/{nct}",
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    ).respond_with_data(body, content_type="application/json")

    data, text = client_for().get_study_text(nct.lower() + " ")

    assert text.encode("utf-8") == body
    assert data == json.loads(body)
    httpserver.check_assertions()


def test_get_study_makes_no_request_for_a_malformed_id(httpserver, client_for):
    """An id that is not NCT + 8 digits is refused before any network traffic."""
    with pytest.raises(InvalidTrialId):
        client_for().get_study("NCT123")
    assert len(httpserver.log) == 0


def test_unknown_study_is_trial_not_found_from_a_plain_text_404(httpserver, client_for):
    """404 with the API's plain-text body becomes TrialNotFound with a one-line message."""
    httpserver.expect_request(f"{API}/studies/NCT09999999").respond_with_data(
        "Study not found: NCT09999999", status=404, content_type="text/plain"
    )
    with pytest.raises(TrialNotFound) as info:
        client = client_for()
        client.get_study("NCT09999999")
    # Not the default registry: the URL is named, in case the 404 means a wrong --registry-url.
    assert str(info.value) == f"No study NCT09999999 in ClinicalTrials.gov (at {client.base_url})"


def test_registry_rejection_400_is_invalid_trial_id_with_its_first_line(httpserver, client_for):
    """400 with a plain-text body becomes InvalidTrialId quoting the first line of the body."""
    httpserver.expect_request(f"{API}/studies/NCT00000000").respond_with_data(
        "\nIncorrect format of NCT number: NCT00000000\nsee docs\n", status=400,
        content_type="text/plain",
    )
    with pytest.raises(InvalidTrialId) as info:
        client_for().get_study("NCT00000000")
    assert str(info.value) == (
        "ClinicalTrials.gov rejected 'NCT00000000' as malformed: "
        "Incorrect format of NCT number: NCT00000000"
    )
    assert info.value.exit_code == 2


def test_html_instead_of_json_is_an_unreadable_response(httpserver, client_for):
    """A captive-portal page (200, HTML) is reported, not parsed."""
    httpserver.expect_request(f"{API}/studies/NCT03830788").respond_with_data(
        "<html><body>Sign in to the Wi-Fi</body></html>", content_type="text/html"
    )
    with pytest.raises(RegistryError) as info:
        client_for().get_study("NCT03830788")
    message = str(info.value)
    assert message.startswith("ClinicalTrials.gov sent an unreadable response for NCT03830788: ")
    assert "\n" not in message


def test_json_without_protocol_section_is_an_unreadable_response(httpserver, client_for):
    """Valid JSON that is not a study (here a search page) is refused."""
    serve_json(httpserver, "/studies/NCT03830788", asset(PHELAN_1))
    with pytest.raises(RegistryError, match="unreadable response for NCT03830788: an object "
                       "without a protocolSection"):
        client_for().get_study("NCT03830788")


def test_an_answer_about_another_study_is_refused(httpserver, client_for):
    """The record must be the one asked for (or list the asked id among its aliases)."""
    serve_json(httpserver, "/studies/NCT00000001", asset(STUDY_FR16))
    with pytest.raises(RegistryError, match="answered with NCT03830788 when asked for "
                       "NCT00000001"):
        client_for().get_study("NCT00000001")


def test_an_alias_answer_is_accepted(httpserver, client_for):
    """An obsolete id listed in nctIdAliases is a legitimate way to find a study."""
    data = load(STUDY_FR16)
    data["protocolSection"]["identificationModule"]["nctIdAliases"] = ["NCT00000001"]
    serve_json(httpserver, "/studies/NCT00000001", json.dumps(data).encode())
    assert client_for().get_study("NCT00000001")["protocolSection"]["identificationModule"][
        "nctId"] == "NCT03830788"


def test_body_cut_mid_json_is_unreadable_and_not_retried(httpserver, client_for):
    """A complete HTTP answer whose JSON stops half-way is an error, asked for once."""
    serve_json(httpserver, "/studies/NCT04267848", asset(STUDY_1148)[:5000])
    with pytest.raises(RegistryError) as info:
        client_for().get_study("NCT04267848")
    assert str(info.value) == (
        "ClinicalTrials.gov sent an unreadable response for NCT04267848: "
        "the JSON stops after 5000 bytes (cut short?)"
    )
    assert len(httpserver.log) == 1


@pytest.fixture(autouse=True)
def _no_registry_settings(monkeypatch):
    """The developer's own TRIALFINDER_REGISTRY_* settings never leak into a test."""
    for name in ("TRIALFINDER_REGISTRY_URL", "TRIALFINDER_REGISTRY_DEADLINE",
                 "TRIALFINDER_REGISTRY_MAX_BYTES", "TRIALFINDER_REGISTRY_GIVE_UP"):
        monkeypatch.delenv(name, raising=False)


class RawServer:
    """A raw socket server on 127.0.0.1: each connection's request head is read, then
    ``respond(conn)`` writes whatever bytes, at whatever pace, it likes. ``stopping`` is set
    when the test is over (a slow responder waits on it instead of sleeping)."""

    def __init__(self, respond: Callable[[socket.socket, RawServer], None],
                 wait_for_head: bool = True) -> None:
        self.respond = respond
        self.wait_for_head = wait_for_head
        self.connections = 0
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{API}"
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self.threads.append(worker)
            worker.start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        # The client may hang up at any time: some tests want that.
        with conn, contextlib.suppress(OSError):
            data = b""
            while self.wait_for_head and b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.respond(conn, self)

    def close(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def raw_server():
    """Make RawServers that are stopped at the end of the test."""
    made: list[RawServer] = []

    def make(respond: Callable[[socket.socket, RawServer], None], **kwargs: Any) -> RawServer:
        server = RawServer(respond, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def head(length: int | None = None, **headers: str) -> bytes:
    """An HTTP/1.1 200 head for a JSON body (Content-Length when given, else chunked)."""
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", "Connection: close"]
    lines.append(f"Content-Length: {length}" if length is not None
                 else "Transfer-Encoding: chunked")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------------------------------------
# base URL and settings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "is not a valid URL"),
        ("http://127.0.0.1:99999/api", "is not a valid URL"),
        ("http://host:port/api", "is not a valid URL"),
        ("ftp://x", "is not an http(s) URL"),
        ("clinicaltrials.gov/api/v2", "is not an http(s) URL"),
        ("", "is empty: give the API's base URL"),
        ("   ", "is empty: give the API's base URL"),
        ("http:///api/v2", "names no host"),
        ("https://clinicaltrials.gov/api/v2?x=1", "must not carry a query or a fragment"),
        ("https://clinical trials.gov/api/v2", "contains spaces or control characters"),
        ("https://clinicaltrials.gov/\x1b[2J", "contains spaces or control characters"),
        ("http://\u2603..x/api", "is not a valid URL"),
        ("http://*/api", "is not a valid URL"),
    ],
)
def test_a_malformed_registry_url_is_a_usage_error(monkeypatch, url, problem):
    """From the argument or the environment, a URL that cannot be a base URL is BadInput
    (exit 2) naming where it came from, before any request."""
    with pytest.raises(BadInput) as info:
        RegistryClient(url)
    assert info.value.exit_code == 2
    assert str(info.value) == (
        f"Registry URL {' '.join(url.split())!r} {problem} (e.g. {DEFAULT_BASE_URL})")
    monkeypatch.setenv("TRIALFINDER_REGISTRY_URL", url)
    with pytest.raises(BadInput) as info:
        RegistryClient()
    assert str(info.value).startswith(f"TRIALFINDER_REGISTRY_URL={' '.join(url.split())!r} "
                                      f"{problem}")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRIALFINDER_REGISTRY_URL": "http://[::1"},
         "TRIALFINDER_REGISTRY_URL='http://[::1' is not a valid URL (e.g. "
         "https://clinicaltrials.gov/api/v2)"),
        ({"TRIALFINDER_REGISTRY_URL": ""},
         "TRIALFINDER_REGISTRY_URL='' is empty: give the API's base URL (e.g. "
         "https://clinicaltrials.gov/api/v2)"),
        ({"TRIALFINDER_REGISTRY_DEADLINE": "soon"},
         "TRIALFINDER_REGISTRY_DEADLINE='soon' is not a number of seconds above 0 "
         "(default 120)"),
        ({"TRIALFINDER_REGISTRY_GIVE_UP": "0"},
         "TRIALFINDER_REGISTRY_GIVE_UP='0' is not a number of seconds above 0 (default 300)"),
        ({"TRIALFINDER_REGISTRY_MAX_BYTES": "-5"},
         "TRIALFINDER_REGISTRY_MAX_BYTES='-5' is not a size above 0 (bytes, or e.g. 64MB, "
         "1GiB; default 256 MB)"),
        ({"TRIALFINDER_REGISTRY_MAX_BYTES": "12 parsecs"},
         "TRIALFINDER_REGISTRY_MAX_BYTES='12 parsecs' is not a size above 0 (bytes, or e.g. "
         "64MB, 1GiB; default 256 MB)"),
    ],
)
def test_cli_bad_registry_settings_exit_2_in_one_line(tmp_path, env, message):
    """`sync` with an unusable registry setting: one line, exit 2, no store created."""
    db = tmp_path / "store.sqlite"
    result = CliRunner().invoke(app, ["sync", "--db", str(db)], env=env)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")
    assert not db.exists()


def test_cli_bad_registry_url_option_exits_2(tmp_path):
    """`--registry-url ftp://x` is a usage error too."""
    result = CliRunner().invoke(app, ["sync", "--db", str(tmp_path / "s.sqlite"),
                                      "--registry-url", "ftp://x"])
    assert (result.exit_code, result.stderr) == (
        2, "Error: Registry URL 'ftp://x' is not an http(s) URL (e.g. "
           "https://clinicaltrials.gov/api/v2)\n")


def test_limits_come_from_the_environment_or_the_defaults(monkeypatch):
    """Defaults 120 s, 256 MB and 300 s; environment values (sizes with units) replace them;
    arguments win over both."""
    with RegistryClient("http://127.0.0.1:9") as client:
        assert (client.deadline, client.max_bytes, client.give_up) == (
            DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, DEFAULT_GIVE_UP) == (120.0, 256_000_000, 300.0)
    monkeypatch.setenv("TRIALFINDER_REGISTRY_DEADLINE", " 2.5 ")
    monkeypatch.setenv("TRIALFINDER_REGISTRY_GIVE_UP", "60")
    for text, size in (("1000", 1000), ("64MB", 64_000_000), ("1 GiB", 2**30), ("8kib", 8192)):
        monkeypatch.setenv("TRIALFINDER_REGISTRY_MAX_BYTES", text)
        with RegistryClient("http://127.0.0.1:9") as client:
            assert (client.deadline, client.max_bytes, client.give_up) == (2.5, size, 60.0)
    with RegistryClient("http://127.0.0.1:9", deadline=1, max_bytes=5, give_up=9) as client:
        assert (client.deadline, client.max_bytes, client.give_up) == (1.0, 5, 9.0)


def test_defaults_are_polite_for_the_live_host_and_fast_for_loopback(monkeypatch):
    """Live API: 1 s between requests; loopback: no wait; env var picks the base URL."""
    live = RegistryClient()
    assert (live.base_url, live.min_interval, live.timeout) == (DEFAULT_BASE_URL, 1.0,
                                                                (5.0, 30.0))
    assert live._session.headers["User-Agent"] == USER_AGENT
    live.close()
    monkeypatch.setenv("TRIALFINDER_REGISTRY_URL", "http://127.0.0.1:9/api/v2/")
    local = RegistryClient()
    assert (local.base_url, local.min_interval) == ("http://127.0.0.1:9/api/v2", 0.0)
    local.close()


def test_an_injected_session_gets_the_retrying_adapter(httpserver, fake_time):
    """A caller's session is used as given (its headers kept), with our retries mounted
    for the base URL only."""
    import requests

    session = requests.Session()
    session.headers["X-Caller"] = "yes"
    httpserver.expect_ordered_request(f"{API}/version").respond_with_data("", status=503)
    httpserver.expect_ordered_request(f"{API}/version", headers={"X-Caller": "yes"}
                                      ).respond_with_json({"apiVersion": "2"})
    client = RegistryClient(httpserver.url_for(API), session=session, sleep=fake_time.sleep,
                            clock=fake_time.clock)
    assert client.version() == {"apiVersion": "2"}
    assert session.get_adapter(httpserver.url_for(API) + "/x") is client._adapter
    assert session.get_adapter("http://example.org/") is not client._adapter
    client.close()  # the caller's session stays open
    assert session.get_adapter("http://example.org/") is not None


# ---------------------------------------------------------------------------------------------
# retries (urllib3's Retry, our rules), throttle, timeouts
# ---------------------------------------------------------------------------------------------


def retry_after_date(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        ("2", 2.0),
        ("0", 1.0),  # 0 still waits the base backoff
        (" 7 ", 7.0),
        (retry_after_date(-86400), 1.0),  # a date in the past: the base backoff
        ("soon", None),  # nonsense: ignored, the jittered backoff applies
        ("-3", None),
        ("3600", MAX_RETRY_AFTER),  # an hour: cut to 120 s
    ],
)
def test_429_retry_after_is_obeyed_within_our_rules(
    httpserver, client_for, fake_time, retry_after, waited
):
    """A 429 is retried after its Retry-After (seconds or an HTTP date), never less than the
    base backoff nor more than MAX_RETRY_AFTER; one wait, then the answer."""
    httpserver.expect_ordered_request(f"{API}/studies/NCT03830788").respond_with_data(
        "Too many requests", status=429, headers={"Retry-After": retry_after}
    )
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    data = client_for(backoff=1.0).get_study("NCT03830788")
    assert data["protocolSection"]["identificationModule"]["nctId"] == "NCT03830788"
    assert len(fake_time.sleeps) == 1
    if waited is None:
        assert 0.0 <= fake_time.sleeps[0] <= 1.0
    else:
        assert fake_time.sleeps == [waited]
    assert len(httpserver.log) == 2


def test_a_future_http_date_is_waited_for(httpserver, client_for, fake_time):
    """Retry-After as an HTTP date 30 s ahead: about 30 s of waiting."""
    httpserver.expect_ordered_request(f"{API}/version").respond_with_data(
        "", status=503, headers={"Retry-After": retry_after_date(30)})
    serve_json(httpserver, "/version", b'{"apiVersion":"2.0.3"}')
    assert client_for().version() == {"apiVersion": "2.0.3"}
    (waited,) = fake_time.sleeps
    assert 25 <= waited <= 31


def test_a_retry_after_beyond_the_bound_gives_up_at_once(httpserver, client_for, fake_time):
    """Retry-After: 3600 when the fetch may only take 100 s: no wait at all, one line."""
    httpserver.expect_request(f"{API}/studies/NCT03830788").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RegistryError) as info:
        client_for(give_up=100).get_study("NCT03830788")
    assert str(info.value) == ("ClinicalTrials.gov answered 429 once and asked to wait 3600 s; "
                               "giving up")
    assert fake_time.sleeps == []
    assert len(httpserver.log) == 1


def test_retry_after_waits_stop_at_the_bound(httpserver, client_for, fake_time):
    """Endless 429s with Retry-After: 3600 and the default 300 s bound: two waits of 120 s
    (each leaving time for one more try), then giving up, well before any real hour."""
    httpserver.expect_request(f"{API}/version").respond_with_data(
        "", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RegistryError) as info:
        client_for(max_retries=10).version()
    assert fake_time.sleeps == [MAX_RETRY_AFTER, MAX_RETRY_AFTER]
    assert str(info.value) == ("ClinicalTrials.gov answered 429 three times and asked to wait "
                               "3600 s; giving up")


def test_server_errors_are_retried_with_jittered_backoff_then_given_up(
    httpserver, client_for, fake_time
):
    """Five 503s: five attempts, four full-jitter waits within 0..2**n s, one line."""
    httpserver.expect_request(f"{API}/studies/NCT03830788").respond_with_data(
        "Service Unavailable", status=503
    )
    with pytest.raises(RegistryError) as info:
        client_for(backoff=1.0).get_study("NCT03830788")
    assert str(info.value) == "ClinicalTrials.gov answered 503 five times; giving up"
    assert len(httpserver.log) == 5
    assert len(fake_time.sleeps) == 4
    for attempt, waited in enumerate(fake_time.sleeps):
        assert 0.0 <= waited <= 2**attempt
    assert len(set(fake_time.sleeps)) == 4  # jittered, not fixed


def test_backoff_is_never_shorter_than_the_throttle(httpserver, client_for, fake_time):
    """With a 1 s interval between requests (the live host's), no retry comes sooner."""
    httpserver.expect_request(f"{API}/version").respond_with_data("", status=500)
    with pytest.raises(RegistryError):
        client_for(min_interval=1.0, backoff=0.01).version()
    assert len(fake_time.sleeps) == 4
    assert all(waited >= 1.0 for waited in fake_time.sleeps)


def test_mixed_server_errors_then_success(httpserver, client_for):
    """500 then 502 then 200: the third answer is used."""
    for status in (500, 502):
        httpserver.expect_ordered_request(f"{API}/studies/NCT03830788").respond_with_data(
            "oops", status=status
        )
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    assert client_for().get_study("NCT03830788")["protocolSection"]
    assert len(httpserver.log) == 3


def test_mixed_statuses_give_up_message_lists_them(httpserver, client_for):
    """Different failing statuses are all named in the give-up message."""
    for status in (500, 502, 504):
        httpserver.expect_ordered_request(f"{API}/studies/NCT03830788").respond_with_data(
            "", status=status
        )
    with pytest.raises(RegistryError, match=r"^ClinicalTrials.gov answered 500, 502, 504; "
                       r"giving up$"):
        client_for(max_retries=2).get_study("NCT03830788")


def test_other_statuses_are_not_retried(httpserver, client_for):
    """A 403 is an answer, not a hiccup: reported at once with its first line."""
    httpserver.expect_request(f"{API}/studies/NCT03830788").respond_with_data(
        "Forbidden\nby policy", status=403
    )
    with pytest.raises(RegistryError) as info:
        client_for().get_study("NCT03830788")
    assert str(info.value) == "ClinicalTrials.gov answered 403 for NCT03830788: Forbidden"
    assert len(httpserver.log) == 1


def test_a_redirect_is_not_followed(httpserver, client_for):
    """A 301 is reported with its target (its body unread, no second request)."""
    httpserver.expect_request(f"{API}/version").respond_with_data(
        "moved", status=301, headers={"Location": "https://elsewhere.example/api/v2/version"})
    with pytest.raises(RegistryError) as info:
        client_for().version()
    assert str(info.value) == (
        f"ClinicalTrials.gov at {httpserver.url_for(API)} answered 301, a redirect to "
        "https://elsewhere.example/api/v2/version; set TRIALFINDER_REGISTRY_URL to the new "
        "address")
    assert len(httpserver.log) == 1


def test_a_retried_error_body_is_not_read(raw_server, fake_time):
    """A 503 whose body never ends is dropped, not drained: the retry comes at once."""
    answers = iter([b"HTTP/1.1 503 Busy\r\nContent-Length: 999999999\r\n\r\nwait",
                    head(len(asset(STUDY_FR16))) + asset(STUDY_FR16)])

    def respond(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(next(answers))
        server.stopping.wait(10)  # the 503 never finishes

    server = raw_server(respond)
    started = time.monotonic()
    with RegistryClient(server.url, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        assert client.get_study("NCT03830788")["protocolSection"]
    assert time.monotonic() - started < 5
    assert server.connections == 2


def test_truncated_body_is_retried_then_reported(raw_server, fake_time):
    """Content-Length larger than the bytes sent: outside urllib3's Retry, retried by our own
    loop with the same count, then one line."""
    body = asset(STUDY_FR27)
    server = raw_server(lambda conn, _: conn.sendall(head(len(body)) + body[:4000]))
    client = RegistryClient(server.url, max_retries=2, sleep=fake_time.sleep,
                            clock=fake_time.clock, rng=random.Random(1))
    with client, pytest.raises(RegistryError) as info:
        client.get_study("NCT06620835")
    assert str(info.value) == "ClinicalTrials.gov's answer was cut short: incomplete read (3 tries)"
    assert server.connections == 3
    assert len(fake_time.sleeps) == 2


def test_a_truncated_body_then_a_whole_one(raw_server, fake_time):
    """A body cut short, then the whole answer: the second is used."""
    body = asset(STUDY_FR27)
    answers = iter([head(len(body)) + body[:100], head(len(body)) + body])
    server = raw_server(lambda conn, _: conn.sendall(next(answers)))
    with RegistryClient(server.url, sleep=fake_time.sleep, clock=fake_time.clock) as client:
        _, text = client.get_study_text("NCT06620835")
    assert text.encode() == body
    assert server.connections == 2


def test_read_timeout_is_retried_then_reported(fake_time):
    """A server slower than the read timeout: retried, then a one-line timeout message.

    It runs on its own threaded server so the slow answers still in flight afterwards
    cannot reach the next test's handlers.
    """

    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(asset(STUDY_FR16), content_type="application/json")

    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.expect_request(f"{API}/studies/NCT03830788").respond_with_handler(slow)
    server.start()
    try:
        client = RegistryClient(server.url_for(API), timeout=(2.0, 0.2), max_retries=1,
                                sleep=fake_time.sleep, clock=fake_time.clock)
        started = time.monotonic()
        with client, pytest.raises(RegistryError) as info:
            client.get_study("NCT03830788")
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert str(info.value) == "ClinicalTrials.gov did not answer within 0.2 s (2 tries)"
    assert elapsed < 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_is_retried_then_reported(fake_time):
    """Nothing listening: every attempt fails fast; the message names the URL and the cause."""
    url = f"http://127.0.0.1:{free_port()}{API}"
    client = RegistryClient(url, max_retries=2, sleep=fake_time.sleep, clock=fake_time.clock)
    with client, pytest.raises(RegistryError) as info:
        client.get_study("NCT03830788")
    assert str(info.value) == (
        f"Could not reach ClinicalTrials.gov at {url}: connection refused (3 tries)"
    )
    assert len(fake_time.sleeps) == 2


def test_a_server_that_hangs_up_without_answering(raw_server, fake_time):
    """The connection closed before any answer: retried, then said in plain words."""
    server = raw_server(lambda conn, _: None)
    client = RegistryClient(server.url, max_retries=1, sleep=fake_time.sleep,
                            clock=fake_time.clock)
    with client, pytest.raises(RegistryError) as info:
        client.version()
    assert str(info.value) == (
        f"Could not reach ClinicalTrials.gov at {server.url}: the server closed the "
        "connection without answering (2 tries)")
    assert server.connections == 2


def test_an_unknown_host_is_named(fake_time):
    """A host name that does not resolve: one line saying so."""
    client = RegistryClient("http://no-such-host.invalid/api", max_retries=0,
                            sleep=fake_time.sleep, clock=fake_time.clock)
    with client, pytest.raises(RegistryError) as info:
        client.version()
    assert str(info.value) == ("Could not reach ClinicalTrials.gov at "
                               "http://no-such-host.invalid/api: host name not found")


def test_a_certificate_failure_is_not_retried(raw_server, fake_time):
    """https to a server that does not speak TLS: reported at once, not retried."""
    server = raw_server(lambda conn, _: conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n"),
                        wait_for_head=False)
    url = f"https://127.0.0.1:{server.port}{API}"
    client = RegistryClient(url, sleep=fake_time.sleep, clock=fake_time.clock)
    with client, pytest.raises(RegistryError) as info:
        client.version()
    assert str(info.value).startswith(f"Secure connection to ClinicalTrials.gov at {url} "
                                      "failed: ")
    assert "\n" not in str(info.value)
    assert fake_time.sleeps == []


def test_throttle_spaces_requests_by_min_interval(httpserver, client_for, fake_time):
    """Two back-to-back requests with a 1 s interval: the second waits 1 s, via sleep."""
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    client = client_for(min_interval=1.0)
    client.get_study("NCT03830788")
    fake_time.now += 0.25  # the caller spends a quarter of a second
    client.get_study("NCT03830788")
    assert fake_time.sleeps == [0.75]


def test_a_retry_counts_for_the_throttle(httpserver, client_for, fake_time):
    """429 with Retry-After: 2 and a 3 s interval: one 3 s wait before the retry, and the
    next request waits the interval after the retry, not after the first try."""
    httpserver.expect_ordered_request(f"{API}/version").respond_with_data(
        "", status=429, headers={"Retry-After": "2"})
    serve_json(httpserver, "/version", b"{}")
    serve_json(httpserver, "/version", b"{}")
    client = client_for(min_interval=3.0)
    client.version()
    assert fake_time.sleeps == [3.0]
    client.version()
    assert fake_time.sleeps == [3.0, 3.0]


def test_version(httpserver, client_for):
    """/version is returned as a dict."""
    serve_json(httpserver, "/version",
               b'{"apiVersion":"2.0.3","dataTimestamp":"2025-12-09T09:00:05"}')
    assert client_for().version() == {"apiVersion": "2.0.3",
                                      "dataTimestamp": "2025-12-09T09:00:05"}


# ---------------------------------------------------------------------------------------------
# size cap, deadline per response, overall bound per fetch
# ---------------------------------------------------------------------------------------------


def test_an_announced_answer_over_the_cap_is_not_read(httpserver, client_for):
    """A 2 MB page with a 1 MB cap (a 200 MB page with the default one): refused from its
    Content-Length, not retried."""
    page = json.dumps({"studies": [load(STUDY_FR27)] * 80}).encode()
    assert len(page) > 2_000_000
    httpserver.expect_request(f"{API}/studies").respond_with_data(page)
    with pytest.raises(RegistryError) as info:
        client_for(max_bytes=1_000_000).search(condition="x").total_count  # noqa: B018
    assert str(info.value) == (
        f"ClinicalTrials.gov's answer for search page 1 is {len(page):,} bytes, more than the "
        "1 MB allowed (TRIALFINDER_REGISTRY_MAX_BYTES); not read")
    assert len(httpserver.log) == 1


def test_an_endless_answer_is_cut_at_the_cap(raw_server, fake_time):
    """No length announced and no end: reading stops at the cap (memory stays bounded)."""
    sent = [0]

    def respond(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(head() + b"1\r\n[\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"1," * 32768)
        while not server.stopping.is_set():
            conn.sendall(chunk)
            sent[0] += 65536

    server = raw_server(respond)
    with RegistryClient(server.url, max_bytes=1_000_000, sleep=fake_time.sleep,
                        clock=fake_time.clock) as client, pytest.raises(RegistryError) as info:
        client.version()
    assert str(info.value) == (
        "ClinicalTrials.gov's answer for /version is larger than the 1 MB allowed "
        "(TRIALFINDER_REGISTRY_MAX_BYTES); stopped reading")
    assert server.connections == 1  # not retried


def test_the_cap_counts_decompressed_bytes(raw_server, fake_time):
    """A small gzip body that inflates past the cap is stopped too (a zip bomb)."""
    bomb = gzip.compress(b"[" + b"0," * 2_000_000 + b"0]")
    assert len(bomb) < 100_000
    server = raw_server(lambda conn, _: conn.sendall(
        head(len(bomb), Content_Encoding="gzip") + bomb))
    with RegistryClient(server.url, max_bytes=1_000_000, sleep=fake_time.sleep,
                        clock=fake_time.clock) as client, pytest.raises(RegistryError) as info:
        client.version()
    assert "is larger than the 1 MB allowed" in str(info.value)


def test_a_gzip_answer_under_the_cap_is_read(raw_server, fake_time):
    """A compressed record within the cap decodes to the recorded text."""
    body = asset(STUDY_FR16)
    packed = gzip.compress(body)
    server = raw_server(lambda conn, _: conn.sendall(
        head(len(packed), Content_Encoding="gzip") + packed))
    with RegistryClient(server.url, max_bytes=len(body), sleep=fake_time.sleep,
                        clock=fake_time.clock) as client:
        _, text = client.get_study_text("NCT03830788")
    assert text.encode() == body


def dripping(every: float, size: int = 50) -> Callable[[socket.socket, RawServer], None]:
    """A server that announces a record and sends ``size`` bytes every ``every`` seconds."""
    body = asset(STUDY_FR16)

    def respond(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(head(len(body)))
        for start in range(0, len(body), size):
            conn.sendall(body[start:start + size])
            if server.stopping.wait(every):
                return

    return respond


@pytest.mark.parametrize("every", [1.0, 0.01], ids=["50-bytes-a-second", "fast-drip"])
def test_a_dripping_server_meets_the_deadline(raw_server, every):
    """50 bytes a second (each read waits: the socket timeout is cut to the deadline), or
    50 bytes every 10 ms (reads never wait long: the deadline is checked between them):
    either way the answer is given up at the 0.3 s deadline, not after hours."""
    server = raw_server(dripping(every))
    client = RegistryClient(server.url, deadline=0.3, max_retries=0)
    started = time.monotonic()
    with client, pytest.raises(RegistryError) as info:
        client.get_study("NCT03830788")
    elapsed = time.monotonic() - started
    assert str(info.value) == ("ClinicalTrials.gov took more than 0.3 s to send NCT03830788 "
                               "(TRIALFINDER_REGISTRY_DEADLINE)")
    assert 0.3 <= elapsed < 1.5


def test_a_dripping_server_is_retried_within_the_bound(raw_server):
    """Deadline 0.3 s, bound 0.75 s: a second try (there is time for it), no third (there is
    not), and the whole fetch is over within the bound."""
    server = raw_server(dripping(0.01))
    client = RegistryClient(server.url, deadline=0.3, give_up=0.75, timeout=(0.1, 0.1),
                            max_retries=9, backoff=0.0, sleep=lambda _s: None)
    started = time.monotonic()
    with client, pytest.raises(RegistryError) as info:
        client.get_study("NCT03830788")
    elapsed = time.monotonic() - started
    assert str(info.value) == ("ClinicalTrials.gov took more than 0.3 s to send NCT03830788 "
                               "(TRIALFINDER_REGISTRY_DEADLINE) (2 tries)")
    assert server.connections == 2
    assert elapsed < 0.75 + 0.3


def test_the_bound_cuts_a_response_short_of_its_deadline(raw_server):
    """Bound 0.4 s, deadline 120 s: the one answer is cut at the bound, and said so."""
    server = raw_server(dripping(0.01))
    client = RegistryClient(server.url, give_up=0.4, timeout=(0.1, 0.1))
    started = time.monotonic()
    with client, pytest.raises(RegistryError) as info:
        client.get_study("NCT03830788")
    assert time.monotonic() - started < 1.0
    assert str(info.value) == (
        "ClinicalTrials.gov was still sending NCT03830788 when the 0.4 s allowed for the fetch "
        "ran out (TRIALFINDER_REGISTRY_GIVE_UP)")


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------

PHELAN_FIELDS = ("NCTId,BriefTitle,OverallStatus,Phase,StudyType,Condition,InterventionName,"
                 "LeadSponsorName,EnrollmentCount,BriefSummary,StartDate,CompletionDate,"
                 "MinimumAge,MaximumAge")
PHELAN_QUERY = {"query.cond": "Phelan-McDermid Syndrome", "pageSize": "5",
                "fields": PHELAN_FIELDS}


def ids(studies: Any) -> list[str]:
    return [s["protocolSection"]["identificationModule"]["nctId"] for s in studies]


def serve_phelan(httpserver) -> None:
    """Recorded pages 1 and 2 chained by their tokens, then a last page without a token."""
    page1, page2 = load(PHELAN_1), load(PHELAN_2)
    serve_json(httpserver, "/studies", asset(PHELAN_1),
               query_string={**PHELAN_QUERY, "countTotal": "true"})
    serve_json(httpserver, "/studies", asset(PHELAN_2),
               query_string={**PHELAN_QUERY, "pageToken": page1["nextPageToken"]})
    serve_json(httpserver, "/studies", json.dumps({"studies": load(SEARCH_2)["studies"]}).encode(),
               query_string={**PHELAN_QUERY, "pageToken": page2["nextPageToken"]})


def phelan_search(client: RegistryClient):  # type: ignore[no-untyped-def]
    return client.search(condition="Phelan-McDermid Syndrome", page_size=5, fields=PHELAN_FIELDS)


def test_search_follows_page_tokens_to_the_last_page(httpserver, client_for):
    """Every study of every page, in order; the total is known before iterating."""
    serve_phelan(httpserver)
    results = phelan_search(client_for())
    assert results.total_count == 21  # known before iterating: feeds a progress bar
    studies = list(results)
    assert ids(studies) == (ids(load(PHELAN_1)["studies"]) + ids(load(PHELAN_2)["studies"])
                            + ["NCT00184067", "NCT03934567"])
    assert (results.pages_read, results.received) == (3, 12)
    assert list(results) == []
    httpserver.check_assertions()


def test_search_pages_as_a_sync_takes_them(httpserver, client_for):
    """pages(): numbered pages with their studies, the search's total and the next token."""
    serve_phelan(httpserver)
    results = phelan_search(client_for())
    assert results.total_count == 21
    pages = list(results.pages())
    assert [(p.number, len(p.studies), p.total_count) for p in pages] == [
        (1, 5, 21), (2, 5, 21), (3, 2, 21)]
    assert [p.next_token for p in pages] == [load(PHELAN_1)["nextPageToken"],
                                             load(PHELAN_2)["nextPageToken"], None]
    assert isinstance(pages[0], SearchPage)
    assert list(pages[1].studies) == load(PHELAN_2)["studies"]
    assert list(results.pages()) == []
    httpserver.check_assertions()


def test_a_search_read_by_a_worker_thread(httpserver, client_for):
    """A client made here, a search's pages fetched by a worker thread (the sync's prefetch)
    and handed over through a queue; then the client still serves this thread."""
    serve_phelan(httpserver)
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    client = client_for()
    results = phelan_search(client)
    handed: queue.Queue[SearchPage | BaseException | None] = queue.Queue(maxsize=1)

    def prefetch() -> None:
        try:
            for page in results.pages():
                handed.put(page)
        except BaseException as exc:  # handed over, as a sync would
            handed.put(exc)
        handed.put(None)

    worker = threading.Thread(target=prefetch)
    worker.start()
    received: list[SearchPage] = []
    while (item := handed.get(timeout=10)) is not None:
        assert not isinstance(item, BaseException), item
        received.append(item)
    worker.join(timeout=10)
    assert [p.number for p in received] == [1, 2, 3]
    assert sum(len(p.studies) for p in received) == 12
    assert client.get_study("NCT03830788")["protocolSection"]
    httpserver.check_assertions()


def test_search_sends_filters_in_the_api_format(httpserver, client_for):
    """Statuses are validated, deduplicated and comma-joined; geo, location and term pass
    through; pages are as large as the API allows by default."""
    serve_json(httpserver, "/studies", b'{"studies": []}', query_string={
        "query.term": "ALK", "query.locn": "France",
        "filter.overallStatus": "RECRUITING,NOT_YET_RECRUITING",
        "filter.geo": "distance(45.76,4.83,50km)", "pageSize": "1000", "countTotal": "true",
    })
    results = client_for().search(term="ALK", location="France",
                                  statuses=["recruiting", "Not yet recruiting", "RECRUITING"],
                                  geo="distance(45.76, 4.83, 50km)")
    assert list(results) == []
    httpserver.check_assertions()


def test_search_for_updates_since_a_day(httpserver, client_for):
    """updated_since asks only for studies whose last update was posted on that day or later
    (Essie AREA[LastUpdatePostDate]RANGE[day,MAX]); statuses alone make a query."""
    serve_json(httpserver, "/studies", b'{"studies": []}', query_string={
        "filter.overallStatus": "RECRUITING",
        "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2025-02-27,MAX]",
        "pageSize": "1000", "countTotal": "true",
    })
    assert list(client_for().search(statuses="RECRUITING",
                                    updated_since=date(2025, 2, 27))) == []
    httpserver.check_assertions()


def test_updated_since_is_combined_with_another_advanced_filter(httpserver, client_for):
    """Both expressions must hold: each in parentheses, joined by AND; a datetime counts by
    its day."""
    serve_json(httpserver, "/studies", b'{"studies": []}', query_string={
        "query.cond": "lung cancer",
        "filter.advanced": "(AREA[Phase]PHASE3 OR AREA[Phase]PHASE2) AND "
                           "(AREA[LastUpdatePostDate]RANGE[2024-12-31,MAX])",
        "pageSize": "200", "countTotal": "true",
    })
    results = client_for().search(condition="lung cancer", page_size=200,
                                  advanced=" AREA[Phase]PHASE3 OR AREA[Phase]PHASE2 ",
                                  updated_since=datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    assert list(results) == []
    httpserver.check_assertions()


def test_empty_page_repeating_a_token_stops_without_looping(httpserver, client_for):
    """A page that repeats an earlier token ends the search (no total known: quietly)."""
    first = load(SEARCH_2)
    serve_json(httpserver, "/studies", asset(SEARCH_2))
    echo = {"studies": [], "nextPageToken": first["nextPageToken"]}
    serve_json(httpserver, "/studies", json.dumps(echo).encode())
    studies = list(client_for().search(term="lymphoma", page_size=2))
    assert ids(studies) == ["NCT00184067", "NCT03934567"]
    assert len(httpserver.log) == 2


def test_a_repeated_token_short_of_the_total_is_an_error_after_the_studies(
    httpserver, client_for
):
    """With totalCount known, stopping early raises after yielding what was received."""
    page1 = load(PHELAN_1)
    serve_json(httpserver, "/studies", asset(PHELAN_1))
    echo = {"studies": [], "nextPageToken": page1["nextPageToken"]}
    serve_json(httpserver, "/studies", json.dumps(echo).encode())
    results = client_for().search(condition="Phelan-McDermid Syndrome", page_size=5)
    received = []
    with pytest.raises(RegistryError) as info:
        for page in results.pages():
            received.append(page)
    assert [len(p.studies) for p in received] == [5, 0]
    assert str(info.value) == (
        "ClinicalTrials.gov search stopped after 5 of 21 studies: it repeated the page token "
        "'ZVt07cGHkvI2wRk2CJf6_LLq'"
    )


def test_endless_empty_pages_with_fresh_tokens_stop(httpserver, client_for):
    """Empty pages carrying new tokens are followed a few times, then the search ends."""
    for n in range(3):
        serve_json(httpserver, "/studies",
                   json.dumps({"studies": [], "nextPageToken": f"t{n}"}).encode())
    assert list(client_for().search(term="x")) == []
    assert len(httpserver.log) == 3


def test_max_pages_guard(httpserver, client_for):
    """More pages than max_pages is an error, not an endless crawl."""
    studies = load(SEARCH_2)["studies"]
    for n in range(2):
        serve_json(httpserver, "/studies",
                   json.dumps({"studies": studies, "nextPageToken": f"t{n}"}).encode())
    results = client_for().search(term="x", page_size=2, max_pages=2)
    with pytest.raises(RegistryError, match="did not end after 2 pages"):
        list(results)


def test_search_400_is_bad_input(httpserver, client_for):
    """The API's plain-text 400 for a bad search becomes BadInput quoting it."""
    httpserver.expect_request(f"{API}/studies").respond_with_data(
        "Invalid filter.geo value", status=400, content_type="text/plain"
    )
    with pytest.raises(BadInput, match=r"^ClinicalTrials\.gov rejected the search: Invalid "
                       r"filter\.geo value$"):
        list(client_for().search(term="x"))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"term": "x", "page_size": 0}, "Page size must be between 1 and 1000"),
        ({"term": "x", "page_size": 1001}, "Page size must be between 1 and 1000"),
        ({"statuses": ["OPEN-ISH"]}, "Unknown recruitment status 'OPEN-ISH'"),
        ({"statuses": "RECRUITING,closed"}, "Unknown recruitment status 'closed'"),
        ({"geo": "near(Lyon)"}, "is not distance(lat,lon,radius)"),
        ({}, "Give a condition"),
        ({"condition": "  ", "statuses": []}, "Give a condition"),
    ],
)
def test_search_arguments_are_checked_before_any_request(httpserver, client_for, kwargs,
                                                         fragment):
    """Bad search arguments are BadInput and cost no request."""
    with pytest.raises(BadInput, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        client_for().search(**kwargs)
    assert len(httpserver.log) == 0


def test_parse_search_page_on_recorded_pages():
    """(studies, token, total) of each recorded search page; totalCount only on page 1."""
    studies, token, total = parse_search_page(load(PHELAN_1))
    assert (len(studies), token, total) == (5, "ZVt07cGHkvI2wRk2CJf6_LLq14bEL8swd7KrgP4dnDeTsPkw",
                                            21)
    studies, token, total = parse_search_page(load(PHELAN_2))
    assert (len(studies), token, total) == (5, "ZVt07cGHkvI2wRk2CJf6_LLq14bEL8swd7KrgP4bmjeauvk_IQ",
                                            None)
    for name in (SEARCH_60, SEARCH_SITESTATUS, SEARCH_2):
        studies, token, total = parse_search_page(load(name))
        assert studies and token and total is None


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ([], "a list"),
        ({"studies": {}}, "no 'studies' list"),
        ({}, "no 'studies' list"),
        ({"studies": [1]}, "study 1 is a number"),
        ({"studies": [{}, None]}, "study 2 is null"),
        ({"studies": [], "nextPageToken": 5}, "nextPageToken is a number"),
    ],
)
def test_parse_search_page_refuses_malformed_pages(page, problem):
    """A page of the wrong shape is a RegistryError for the whole page, saying why."""
    with pytest.raises(RegistryError) as info:
        parse_search_page(page, "search page 4")
    assert str(info.value) == f"ClinicalTrials.gov sent an unreadable search page 4: {problem}"


@pytest.mark.parametrize(("total", "expected"), [(21, 21), (0, 0), (-1, None), ("21", None),
                                                 (True, None), (2.5, None), (None, None)])
def test_parse_search_page_total_count_rules(total, expected):
    """totalCount is kept only when it is a whole number, 0 or more."""
    assert parse_search_page({"studies": [], "totalCount": total})[2] == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (asset(PHELAN_2)[:5000], "the JSON stops after 5000 bytes (cut short?)"),
        (b'{"studies": [{}]} {}', "invalid JSON at character 18 of 20"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        (b'{"studies": [{"x": "\xff\xfe"}]}', "not UTF-8 (byte 20 of 26)"),
        (b"", "an empty body"),
        (b'{"studies": 3}', None),
    ],
)
def test_an_unreadable_search_page_fails_alone_after_the_pages_before_it(
    httpserver, client_for, body, problem
):
    """Page 2 cannot be decoded (cut short, junk, nesting, bytes, shape): the studies of
    page 1 were given, then one RegistryError for page 2, and nothing more is asked."""
    serve_json(httpserver, "/studies", asset(SEARCH_2))
    serve_json(httpserver, "/studies", body)
    results = client_for().search(term="x", page_size=2)
    received = []
    with pytest.raises(RegistryError) as info:
        for study in results:
            received.append(study)
    assert len(received) == 2
    expected = problem or "no 'studies' list"
    what = "response for search page 2" if problem else "search page 2"
    assert str(info.value) == f"ClinicalTrials.gov sent an unreadable {what}: {expected}"
    assert list(results) == []
    assert len(httpserver.log) == 2


# ---------------------------------------------------------------------------------------------
# hostile records by id
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"protocolSection": ' * 50_000 + b"{}" + b"}" * 50_000, "JSON nested too deeply"),
        (b'{"protocolSection": {"x": "caf\xe9"}}', "not UTF-8 (byte 30 of 34)"),
        (b"\xef\xbb\xbf{}", "invalid JSON at character 0 of 3"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "invalid JSON"),
    ],
)
def test_a_record_that_cannot_be_decoded_is_a_registry_error(httpserver, client_for, body,
                                                            problem):
    """Deep nesting, invalid UTF-8, a byte-order mark, an integer too long to convert: one
    RegistryError line for that trial, never RecursionError or ValueError."""
    serve_json(httpserver, "/studies/NCT03830788", body)
    with pytest.raises(RegistryError) as info:
        client_for().get_study_text("NCT03830788")
    assert str(info.value) == (
        f"ClinicalTrials.gov sent an unreadable response for NCT03830788: {problem}")


def test_ascii_ids_only_in_search_results():
    """study_nct_id: the id of a search result when it is NCT + 8 ASCII digits (case and
    spaces forgiven), else None, for whatever shape the result has."""
    def study(nct: Any) -> dict[str, Any]:
        return {"protocolSection": {"identificationModule": {"nctId": nct}}}

    assert study_nct_id(study("NCT03830788")) == "NCT03830788"
    assert study_nct_id(study(" nct03830788")) == "NCT03830788"
    for bad in ("NCT０３８３０７８８", "NCT٠٣٨٣٠٧٨٨", "NCT0383078", "NCT038307888", 3830788, None,
                ["NCT03830788"]):
        assert study_nct_id(study(bad)) is None
    for shape in (None, [], "NCT03830788", {"protocolSection": []},
                  {"protocolSection": {"identificationModule": "NCT03830788"}}):
        assert study_nct_id(shape) is None
    assert [study_nct_id(s) for s in load(SEARCH_2)["studies"]] == ["NCT00184067",
                                                                    "NCT03934567"]

# ---------------------------------------------------------------------------------------------
# parse_study on every recorded study
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "nct", "sites", "without_position", "without_facility"),
    [
        (STUDY_1148, "NCT04267848", 1148, 4, 0),
        (STUDY_437, "NCT02513394", 437, 2, 0),
        (STUDY_73, "NCT01063855", 73, 7, 73),
        (STUDY_42, "NCT02210780", 42, 0, 42),
        (STUDY_26, "NCT03934567", 26, 1, 0),
        (STUDY_FR16, "NCT03830788", 16, 0, 0),
        (STUDY_FR27, "NCT06620835", 27, 0, 0),
        (STUDY_NO_LOCS, "NCT05960149", 0, 0, 0),
        (STUDY_NO_CLM, "NCT06179316", 0, 0, 0),
        (STUDY_COPLANT, "NCT06323538", 8, 0, 0),
    ],
)
def test_site_counts_of_recorded_studies(name, nct, sites, without_position, without_facility):
    """Every location becomes a site; missing geoPoints and facility names are kept as gaps."""
    result = parsed(name)
    trial = result.trial
    assert trial.nct_id == nct
    assert len(trial.sites) == sites
    assert sum(not s.has_position for s in trial.sites) == without_position
    assert sum(s.facility == "" for s in trial.sites) == without_facility
    assert all(s.city for s in trial.sites)
    for site in trial.sites:
        if site.has_position:
            assert (site.precision, site.coordinate_source) == (Precision.CITY, GEOPOINT_SOURCE)
        else:
            assert (site.precision, site.coordinate_source) == (Precision.UNKNOWN, None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (STUDY_FR27, {Status.NOT_YET_RECRUITING: 23, Status.WITHDRAWN: 2, Status.RECRUITING: 2}),
        (STUDY_1148, {Status.RECRUITING: 659, Status.SUSPENDED: 393,
                      Status.ACTIVE_NOT_RECRUITING: 96}),
        (STUDY_FR16, {Status.NOT_YET_RECRUITING: 10, Status.RECRUITING: 6}),
        (STUDY_437, {None: 437}),
    ],
)
def test_per_site_statuses(name, expected):
    """Each site keeps its own recorded status; None where the record gives none."""
    assert Counter(s.status for s in parsed(name).trial.sites) == expected


def test_recorded_fields_of_a_french_trial():
    """NCT06620835: identification, dates, sponsor, design, arms, contacts and sources."""
    result = parsed(STUDY_FR27)
    trial = result.trial
    assert result.warnings == ()
    assert trial.acronym == "OPTALK"
    assert trial.status is Status.RECRUITING
    assert trial.title == load(STUDY_FR27)["protocolSection"]["identificationModule"][
        "officialTitle"]
    assert trial.brief_title and trial.brief_title != trial.title
    assert trial.sponsor == "Groupe Francais De Pneumo-Cancerologie"
    assert trial.secondary_ids == ("OTHER:2024-A00356-41",)
    assert (trial.start_date, trial.primary_completion_date, trial.completion_date) == (
        "2025-06-19", "2030-10-01", "2030-10-01")
    assert (trial.last_update, trial.verified_date) == ("2025-07-29", "2025-07")
    assert (trial.phases, trial.study_type, trial.enrollment) == (("PHASE2",), "INTERVENTIONAL",
                                                                  45)
    assert trial.arms[0].label == "Clinical Trial population"
    assert "Procedure: Local Ablative Therapy (LAT)" in trial.arms[0].interventions
    assert trial.source.kind == "registry"
    assert trial.source.description == "ClinicalTrials.gov API v2"
    assert trial.source.as_of == "2025-07-29"
    assert trial.source.url == "https://clinicaltrials.gov/study/NCT06620835"
    assert trial.source.retrieved == "2025-12-10T08:00:00+00:00"
    assert trial.central_contacts[0].phone == "+330231455160"
    official = trial.officials[1]
    assert (official.name, official.role, official.affiliation) == (
        "Isabelle MARTEL LAFAY", "PRINCIPAL_INVESTIGATOR",
        "Centre Léon Bérard Service Radiothérapie")

    nancy = next(s for s in trial.sites if s.city == "Nancy")
    assert (nancy.facility, nancy.zip, nancy.country, nancy.status) == (
        "CHRU de Nancy", "54000", "France", Status.RECRUITING)
    (contact,) = nancy.contacts
    assert (contact.name, contact.role, contact.phone, contact.email) == (
        "Bertrand MENNECIER", "CONTACT", "+33 (0)3 83 15 46 53", "b.mennecier@chru-nancy.fr")
    lyon = next(s for s in trial.sites if s.city == "Lyon")
    assert (lyon.status, lyon.contacts) == (Status.WITHDRAWN, ())
    rouen = next(s for s in trial.sites if s.city == "Rouen")
    assert [c.role for c in rouen.contacts] == ["CONTACT", "PRINCIPAL_INVESTIGATOR"]
    assert rouen.investigators[0].name == "Florian GUISIER"


def test_accented_names_survive_intact():
    """UTF-8 facility, city and contact names come out exactly as recorded."""
    raw = load(STUDY_FR27)["protocolSection"]["contactsLocationsModule"]["locations"]
    trial = parsed(STUDY_FR27).trial
    assert [s.facility for s in trial.sites] == [loc["facility"] for loc in raw]
    assert [s.city for s in trial.sites] == [loc["city"] for loc in raw]
    cities = {s.city for s in trial.sites}
    assert {"Épagny", "Nîmes", "Chambéry", "Créteil", "Villefranche-sur-Saône"} <= cities
    assert "Centre Georges-François Leclerc" in {s.facility for s in trial.sites}
    assert "Stéphanie HOMINAL" in {c.name for s in trial.sites for c in s.contacts}
    coplant = parsed(STUDY_COPLANT).trial
    assert "Tilman Kühn, Prof" in {c.name for s in coplant.sites for c in s.contacts}


def test_phone_extensions_are_kept_with_the_number():
    """phoneExt is appended to the phone ("203-937-3421 ext. 2832")."""
    phones = {c.phone for s in parsed(STUDY_1148).trial.sites for c in s.contacts}
    assert "203-937-3421 ext. 2832" in phones
    assert "608-256-1901 ext. 17007" in phones


def test_sites_in_one_city_share_the_city_centre_geopoint():
    """geoPoint is a city centre: the two Rennes sites are flagged as sharing a position."""
    trial = parsed(STUDY_FR27).trial
    rennes = [s for s in trial.sites if s.city == "Rennes"]
    assert len(rennes) == 2 and all(s.shared_position for s in rennes)
    assert rennes[0].latitude == rennes[1].latitude == 48.11109
    brest = next(s for s in trial.sites if s.city == "Brest")
    assert not brest.shared_position


def test_sites_without_facility_names_keep_city_and_country():
    """NCT01063855 names no facility: sites are kept with facility "" and their city."""
    first = parsed(STUDY_73).trial.sites[0]
    assert (first.facility, first.city, first.state, first.country) == (
        "", "Decatur", "Alabama", "United States")


def test_study_without_contacts_locations_module():
    """No contactsLocationsModule: no sites, no contacts, no warnings."""
    result = parsed(STUDY_NO_CLM)
    assert (result.trial.sites, result.trial.central_contacts, result.warnings) == ((), (), ())
    assert result.trial.study_type == "OBSERVATIONAL"


def test_eudract_and_other_secondary_ids():
    """EudraCT numbers read "EudraCT:…", others "TYPE:id", without repeats."""
    assert parsed(STUDY_437).trial.secondary_ids == (
        "OTHER:ABCSG 42", "OTHER:BIG 14-03", "EudraCT:2014-005181-30")
    assert "EudraCT:2009-013616-12" in parsed(STUDY_73).trial.secondary_ids
    assert parsed(STUDY_1148).trial.secondary_ids == (
        "REGISTRY:NCI-2020-00751", "OTHER:A081801", "NIH:U10CA180821")


def test_enrollment_sentinel_means_unknown():
    """99999999 is the API's "unknown"; a real count is kept."""
    assert parsed(STUDY_1148).trial.enrollment == 1210
    data = load(STUDY_FR16)
    data["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = 99999999
    assert parse_study(data).trial.enrollment is None


def test_coplant_provenance_key_is_ignored():
    """The retyped excerpt's _provenance key changes nothing."""
    with_key = load(STUDY_COPLANT)
    without = {k: v for k, v in with_key.items() if k != "_provenance"}
    assert parse_study(with_key) == parse_study(without)
    assert parse_study(with_key).warnings == ()


def test_search_page_studies_parse_and_date_falls_back():
    """fields-filtered search studies parse; with no date in them, as_of is the fetch date."""
    study = load(PHELAN_1)["studies"][0]
    assert parse_study(study, retrieved="2026-08-11T23:00:00Z").trial.source.as_of == "2026-08-11"
    bare = parse_study(study)
    assert bare.trial.source.as_of == NO_DATE
    assert bare.warnings == ("no date in the record (last update, version); treated as very old",)


def test_parsed_trials_round_trip_through_json():
    """What the store will do: to_jsonable then trial_from_jsonable gives the same Trial."""
    for name in (STUDY_FR27, STUDY_73, STUDY_NO_CLM):
        trial = parsed(name).trial
        again = trial_from_jsonable(json.loads(json.dumps(to_jsonable(trial))))
        assert again == trial


# -- eligibility --------------------------------------------------------------------------------


def test_eligibility_keeps_the_recorded_text():
    """The registry parser keeps the criteria as recorded (the one parser reads the lists)."""
    eligibility = parsed(STUDY_NO_CLM).trial.eligibility
    assert (eligibility.sex, eligibility.minimum_age, eligibility.healthy_volunteers) == (
        "MALE", None, False)
    assert eligibility.criteria.startswith("Inclusion Criteria:\n\n* Having bilateral")
    result = parse_study(load(SEARCH_60)["studies"][0])
    assert "Exclusion Criteria:" in result.trial.eligibility.criteria
    assert not any("eligibility" in w for w in result.warnings)


def test_old_records_with_stored_lists_still_read():
    """A record stored with inclusion/exclusion lists (before the one parser) still reads."""
    data = to_jsonable(parsed(STUDY_NO_CLM).trial)
    data["eligibility"]["inclusion"] = ["old"]
    data["eligibility"]["exclusion"] = ["old too"]
    assert trial_from_jsonable(data) == parsed(STUDY_NO_CLM).trial


# -- malformed input ----------------------------------------------------------------------------


def test_malformed_locations_are_reported_and_skipped():
    """Bad locations are skipped or lose their coordinate, each with a warning; no crash."""
    data = load(STUDY_FR16)
    data["protocolSection"]["contactsLocationsModule"]["locations"] = [
        "not a location",
        {"country": "France"},
        {"city": "Lyon", "country": "France", "geoPoint": {"lat": "45.7", "lon": 4.8}},
        {"facility": "Far away", "city": "Nowhere", "geoPoint": {"lat": 95.0, "lon": 10.0}},
        {"facility": "Null island", "city": "Sea", "geoPoint": {"lat": 0, "lon": 0}},
        {"facility": "Good", "city": "Paris", "country": "France",
         "geoPoint": {"lat": 48.85341, "lon": 2.3488}, "status": "RECRUITING",
         "contacts": [{"role": "CONTACT"}, 7, {"name": "Ok", "phoneExt": "12"}]},
        None,
    ]
    result = parse_study(data)
    sites = result.trial.sites
    assert [s.city for s in sites] == ["Lyon", "Nowhere", "Sea", "Paris"]
    assert [s.has_position for s in sites] == [False, False, False, True]
    assert sites[-1].contacts[0].phone == "ext. 12"
    assert result.warnings == (
        "location 1 skipped: text instead of an object",
        "location 2 skipped: neither a facility nor a city",
        "location 3 (Lyon): geoPoint ignored (not two numbers); position left to the geocoder",
        "location 4 (Far away): geoPoint ignored (95, 10 is not a place); position left to the "
        "geocoder",
        "location 5 (Null island): geoPoint ignored (0, 0 is not a place); position left to the "
        "geocoder",
        "location 6 (Good) contact 1 ignored: no name, phone or email",
        "location 6 (Good) contact 2 ignored: a number",
        "location 7 skipped: null instead of an object",
    )


@pytest.mark.parametrize(
    "data",
    [
        [],
        {},
        {"protocolSection": []},
        {"protocolSection": {}},
        {"protocolSection": {"identificationModule": {}}},
        {"protocolSection": {"identificationModule": {"nctId": 3}}},
        {"protocolSection": {"identificationModule": {"nctId": "NCT12\n"}}},
    ],
)
def test_records_without_identity_are_registry_errors(data):
    """No protocolSection, identificationModule or valid nctId: RegistryError, one line."""
    with pytest.raises(RegistryError) as info:
        parse_study(data)
    assert "\n" not in str(info.value)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


_MUTATION_BASE = load(STUDY_FR27)
_MUTATION_PATHS = [p for p in _paths(_MUTATION_BASE) if p]
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["\ud800", 10**400, "UNKNOWN", "NCT０３８３０７８８"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def _mutate(data: Any, path: tuple, action: str, value: Any) -> None:
    node = data
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int)
                                  and last < len(node)):
        if action == "delete":
            if isinstance(node, dict):
                node.pop(last, None)
            else:
                del node[last]
        else:
            node[last] = value


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_MUTATION_PATHS),
                          st.sampled_from(["delete", "replace"]), _JSON_VALUES),
                min_size=1, max_size=6))
def test_parse_study_only_ever_raises_registry_error(mutations):
    """Random deletions and replacements anywhere in a recorded study never crash the parser."""
    data = copy.deepcopy(_MUTATION_BASE)
    for path, action, value in mutations:
        _mutate(data, path, action, value)
    try:
        result = parse_study(data)
    except RegistryError as exc:
        assert "\n" not in str(exc)
        return
    assert_usable(result)




# ---------------------------------------------------------------------------------------------
# what the status and search rules need: lastKnownStatus, MeSH condition terms
# ---------------------------------------------------------------------------------------------


def with_status(overall: Any, last_known: Any = None, verified: str = "2024-11") -> dict:
    data = load(STUDY_FR16)
    module = data["protocolSection"]["statusModule"]
    module["overallStatus"] = overall
    module["statusVerifiedDate"] = verified
    if last_known is not None:
        module["lastKnownStatus"] = last_known
    return data


def test_the_registrys_unknown_keeps_its_last_known_status():
    """UNKNOWN with lastKnownStatus RECRUITING: both kept; the status rule then says "status
    unknown (last known: recruiting)", never recruiting."""
    result = parse_study(with_status("UNKNOWN", "RECRUITING", "2019-01"))
    trial = result.trial
    assert (trial.status, trial.last_known_status, trial.status_text) == (
        Status.UNKNOWN, Status.RECRUITING, None)
    assert (trial.verified_date, result.warnings) == ("2019-01", ())
    rule = trial_recruitment(trial)
    assert (rule.standing, rule.last_known, rule.recruiting) == (
        Standing.UNKNOWN, Status.RECRUITING, False)


def test_recorded_studies_have_no_last_known_status():
    """None of the recorded studies is UNKNOWN: no lastKnownStatus, no invented one."""
    for name in (STUDY_FR16, STUDY_FR27, STUDY_1148, STUDY_437, STUDY_73):
        assert parsed(name).trial.last_known_status is None


@pytest.mark.parametrize("words", ["PAUSED_FOR_REVIEW", "Open", "closed", "?"])
def test_an_unrecognised_overall_status_is_kept_as_words_not_as_unknown(words):
    """A value the registry's enum does not have: status None, the words kept, a warning;
    never the registry's UNKNOWN, never recruiting ("Open" is a listing's word, not the
    registry's)."""
    result = parse_study(with_status(words))
    trial = result.trial
    assert (trial.status, trial.status_text) == (None, words)
    assert result.warnings == (f"unrecognised overall status {words!r}",)


def test_registry_status_values_forgive_case_and_spacing():
    """'recruiting', 'Not yet recruiting', 'ACTIVE-NOT-RECRUITING' are registry values."""
    for words, status in (("recruiting", Status.RECRUITING),
                          ("Not yet recruiting", Status.NOT_YET_RECRUITING),
                          ("ACTIVE-NOT-RECRUITING", Status.ACTIVE_NOT_RECRUITING),
                          (" UNKNOWN ", Status.UNKNOWN)):
        result = parse_study(with_status(words, last_known=words))
        assert (result.trial.status, result.trial.last_known_status) == (status, status)
        assert result.warnings == ()


def test_an_unrecognised_last_known_or_site_status_is_reported():
    """A last known status or a site status outside the enum: warned; the site's is "status
    unknown" (never taken for recruiting), the last known one is left out."""
    data = with_status("UNKNOWN", "SOMETHING")
    data["protocolSection"]["contactsLocationsModule"]["locations"][0]["status"] = "Open"
    result = parse_study(data)
    assert result.trial.last_known_status is None
    assert result.trial.sites[0].status is Status.UNKNOWN
    facility = result.trial.sites[0].facility
    assert result.warnings == (
        "unrecognised last known status 'SOMETHING'",
        f"location 1 ({facility}): unrecognised status 'Open'",
    )


def test_condition_terms_of_a_recorded_study():
    """NCT03830788: its MeSH terms, then their ancestors, then no LOW-relevance leaf (the
    stray "Psychotic Disorders") and no browse branch ("All Conditions")."""
    terms = parsed(STUDY_FR16).trial.condition_terms
    assert terms == (
        "Prostatic Neoplasms", "Erectile Dysfunction", "Genital Neoplasms, Male",
        "Urogenital Neoplasms", "Neoplasms by Site", "Neoplasms", "Genital Diseases, Male",
        "Genital Diseases", "Urogenital Diseases", "Prostatic Diseases",
        "Male Urogenital Diseases", "Sexual Dysfunction, Physiological",
        "Sexual Dysfunctions, Psychological", "Mental Disorders",
    )
    assert "Psychotic Disorders" not in terms and "All Conditions" not in terms


def test_condition_terms_take_the_conditions_as_found():
    """NCT03934567 (follicular lymphoma): HIGH-relevance leaves name the conditions as the
    record gives them, beyond the MeSH tree."""
    terms = parsed(STUDY_26).trial.condition_terms
    assert terms == (
        "Lymphoma", "Lymphoma, Follicular", "Neoplasms by Histologic Type", "Neoplasms",
        "Lymphoproliferative Disorders", "Lymphatic Diseases", "Immunoproliferative Disorders",
        "Immune System Diseases", "Lymphoma, Non-Hodgkin", "Lymphosarcoma",
        "Follicular Lymphoma")
    assert len(terms) == len({t.casefold() for t in terms})


def test_condition_terms_of_every_recorded_study_are_clean():
    """Every recorded study: terms are non-empty, stripped, unique (case ignored); a study
    without a conditionBrowseModule has none."""
    for name in (STUDY_1148, STUDY_437, STUDY_73, STUDY_42, STUDY_FR27, STUDY_NO_LOCS,
                 STUDY_NO_CLM):
        terms = parsed(name).trial.condition_terms
        assert terms and all(t == t.strip() and t for t in terms)
        assert len({t.casefold() for t in terms}) == len(terms)
    assert parsed(STUDY_COPLANT).trial.condition_terms == ()
    assert parse_study(load(PHELAN_1)["studies"][0]).trial.condition_terms == ()


def test_condition_terms_from_shapes_of_our_own():
    """Duplicates across meshes, ancestors and leaves (any case) once; odd items warned and
    skipped; a browse module of the wrong type warned."""
    data = load(STUDY_NO_CLM)
    data["derivedSection"]["conditionBrowseModule"] = {
        "meshes": [{"id": "D1", "term": " Melanoma "}, {"id": "D2"}, "Skin", {"term": 4}],
        "ancestors": [{"term": "Neoplasms"}, {"term": "melanoma"}, {"term": "NEOPLASMS"}],
        "browseLeaves": [{"name": "Uveal Melanoma", "relevance": "HIGH"},
                         {"name": "Psychotic Disorders", "relevance": "LOW"},
                         {"name": "Naevus"}, {"name": "Neoplasms", "relevance": "HIGH"}],
        "browseBranches": [{"abbrev": "All", "name": "All Conditions"}],
    }
    result = parse_study(data)
    assert result.trial.condition_terms == ("Melanoma", "Neoplasms", "Uveal Melanoma")
    where = "derivedSection.conditionBrowseModule"
    assert result.warnings == (f"{where}.meshes 3 ignored: text",
                               f"{where}.meshes.term ignored: a number instead of text")
    data["derivedSection"]["conditionBrowseModule"] = ["Melanoma"]
    result = parse_study(data)
    assert result.trial.condition_terms == ()
    assert result.warnings == (f"{where} ignored: a list instead of an object",)


def test_a_lone_surrogate_becomes_a_replacement_character():
    """JSON may carry "\\ud800" (UTF-8 cannot): replaced by U+FFFD with a warning, so the
    record can be stored and printed."""
    text = (asset(STUDY_FR16).decode()
            .replace('"facility":"', '"facility":"\\ud800 ', 1)
            .replace('"Prostate Cancer"', '"Prostate \\udfff Cancer"', 1))
    result = parse_study(json.loads(text))
    site = result.trial.sites[0]
    assert site.facility.startswith("\ufffd ")
    assert result.trial.conditions[0] == "Prostate \ufffd Cancer"
    assert json.dumps(to_jsonable(result.trial), ensure_ascii=False).encode("utf-8")
    assert len([w for w in result.warnings if "lone surrogate" in w]) == 2


def test_an_emoji_is_not_a_broken_character():
    """A surrogate pair in JSON is one character: kept, no warning."""
    data = load(STUDY_NO_CLM)
    data["protocolSection"]["identificationModule"]["acronym"] = "🧬 STUDY"
    result = parse_study(json.loads(json.dumps(data)))
    assert (result.trial.acronym, result.warnings) == ("🧬 STUDY", ())


def test_a_geopoint_too_large_for_a_float_is_ignored():
    """lat = 10**400 (valid JSON): ignored with a warning, no OverflowError."""
    data = load(STUDY_FR16)
    data["protocolSection"]["contactsLocationsModule"]["locations"][0]["geoPoint"] = {
        "lat": 10**400, "lon": 2.0}
    result = parse_study(json.loads(json.dumps(data)))
    assert not result.trial.sites[0].has_position
    assert "geoPoint ignored (not two numbers)" in result.warnings[0]



# ---------------------------------------------------------------------------------------------
# random shapes: parse_study never raises anything but RegistryError
# ---------------------------------------------------------------------------------------------


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


# Every key the recorded studies use, so that random shapes put odd values where the parser
# looks, at any depth.
_RECORDED_KEYS = sorted(set().union(*(_keys(load(name)) for name in (
    STUDY_FR27, STUDY_1148, STUDY_437, STUDY_COPLANT, SEARCH_SITESTATUS))))
_HOSTILE_TEXT = st.sampled_from(["", " ", "\ud800", "a\udfffb", "\x00", "\x1b]0;title\x07",
                                 "RECRUITING", "UNKNOWN", "HIGH", "2019", "2019-02-30",
                                 "NCT03830788", "NCT０３８３０７８８", "9" * 30])
_LEAVES = (st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, -(10**30)])
           | st.floats() | st.text(max_size=12) | _HOSTILE_TEXT)
_SHAPES = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(_RECORDED_KEYS) | st.text(max_size=4), children,
                      max_size=5),
    max_leaves=15,
)
_MODULES = ["identificationModule", "statusModule", "sponsorCollaboratorsModule",
            "descriptionModule", "conditionsModule", "designModule", "armsInterventionsModule",
            "eligibilityModule", "contactsLocationsModule"]
_STUDIES = st.fixed_dictionaries(
    {"protocolSection": st.fixed_dictionaries(
        {"identificationModule": st.fixed_dictionaries(
            {"nctId": st.sampled_from(["NCT03830788", "nct03830788 "]) | _LEAVES},
            optional=dict.fromkeys(("briefTitle", "officialTitle", "acronym",
                                    "secondaryIdInfos", "nctIdAliases"), _SHAPES))},
        optional=dict.fromkeys(_MODULES[1:], _SHAPES))},
    optional={"derivedSection": st.fixed_dictionaries(
        {}, optional={"miscInfoModule": _SHAPES, "conditionBrowseModule": _SHAPES})
        | _SHAPES},
) | _SHAPES


def assert_usable(result: ParsedStudy) -> None:
    """What a sync does next with a parsed study works: warnings are one line each, the
    trial serialises to UTF-8 JSON and back, its dates and positions are sane."""
    assert all("\n" not in w for w in result.warnings)
    trial = result.trial
    trial.source.as_of_date()  # a usable date, always
    for site in trial.sites:
        if site.has_position:
            assert math.isfinite(site.latitude) and -90 <= site.latitude <= 90
            assert math.isfinite(site.longitude) and -180 <= site.longitude <= 180
    text = json.dumps(to_jsonable(trial), ensure_ascii=False)
    text.encode("utf-8")  # what the store writes: no lone surrogate survives
    assert trial_from_jsonable(json.loads(text)) == trial


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_STUDIES)
def test_random_shapes_only_ever_raise_registry_error(data):
    """Random JSON shapes, built on the recorded studies' keys: a ParsedStudy that a sync can
    use, or a one-line RegistryError; nothing else ever escapes."""
    try:
        result = parse_study(data, retrieved="2025-12-10T08:00:00+00:00")
    except RegistryError as exc:
        assert "\n" not in str(exc)
        return
    assert_usable(result)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SHAPES, max_size=3))
def test_random_search_pages_fail_as_pages(studies):
    """A decoded search page of random studies: parse_search_page accepts it only when every
    study is an object, and each accepted study then parses or fails alone."""
    try:
        accepted, _, _ = parse_search_page({"studies": studies})
    except RegistryError as exc:
        assert any(not isinstance(s, dict) for s in studies)
        assert "\n" not in str(exc)
        return
    for study in accepted:
        with contextlib.suppress(RegistryError):  # a study that fails, fails alone
            assert_usable(parse_study(study))
