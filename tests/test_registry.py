"""The ClinicalTrials.gov client against a local server, and the pure parser on recorded data.

The HTTP tests replay the recorded responses of tests/fixtures/ctgov byte for byte from a real
server on 127.0.0.1 (pytest-httpserver, or a raw socket where werkzeug would fix the bytes).
Sleeping and the clock are injected, so retries and throttling cost no wall time.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import random
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from trialfinder.errors import BadInput, InvalidTrialId, RegistryError, TrialNotFound
from trialfinder.models import Precision, Status, to_jsonable, trial_from_jsonable
from trialfinder.registry import (
    DEFAULT_BASE_URL,
    GEOPOINT_SOURCE,
    MAX_RETRY_AFTER,
    NO_DATE,
    USER_AGENT,
    ParsedStudy,
    RegistryClient,
    _decode_json,
    _retry_after_seconds,
    _walk_search_page,
    decode_search_page,
    parse_search_page,
    parse_study,
    split_search_page,
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


class TruncatingServer:
    """A raw socket server that announces more bytes than it sends, then hangs up."""

    def __init__(self, body: bytes, sent: int) -> None:
        self.body, self.sent = body, sent
        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.stopping = threading.Event()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                self.connections += 1
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                conn.sendall(head + self.body[: self.sent])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_truncated_body_is_retried_then_reported(fake_time):
    """Content-Length larger than the bytes sent: a transient failure, retried, then an error."""
    server = TruncatingServer(asset(STUDY_FR27), sent=4000)
    try:
        client = RegistryClient(
            f"http://127.0.0.1:{server.port}{API}", max_retries=2,
            sleep=fake_time.sleep, clock=fake_time.clock, rng=random.Random(1),
        )
        with client, pytest.raises(RegistryError) as info:
            client.get_study("NCT06620835")
    finally:
        server.close()
    message = str(info.value)
    assert message == "ClinicalTrials.gov's answer was cut short: incomplete read (3 tries)"
    assert message.endswith("(3 tries)")
    assert "\n" not in message
    assert server.connections == 3


# ---------------------------------------------------------------------------------------------
# retries, throttle, timeouts
# ---------------------------------------------------------------------------------------------


def test_429_retry_after_is_obeyed_then_the_throttle_waits_the_rest(
    httpserver, client_for, fake_time
):
    """Retry-After: 2 is slept exactly; the 3 s throttle then waits the remaining 1 s."""
    httpserver.expect_ordered_request(f"{API}/studies/NCT03830788").respond_with_data(
        "Too many requests", status=429, headers={"Retry-After": "2"}
    )
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))

    data = client_for(min_interval=3.0).get_study("NCT03830788")

    assert data["protocolSection"]["identificationModule"]["nctId"] == "NCT03830788"
    assert fake_time.sleeps == [2.0, 1.0]
    assert len(httpserver.log) == 2


def test_a_long_retry_after_is_capped(httpserver, client_for, fake_time):
    """Retry-After: 3600 waits MAX_RETRY_AFTER (120 s), not an hour."""
    httpserver.expect_ordered_request(f"{API}/version").respond_with_data(
        "", status=503, headers={"Retry-After": "3600"}
    )
    serve_json(httpserver, "/version",
               b'{"apiVersion":"2.0.3","dataTimestamp":"2025-12-09T09:00:05"}')
    assert client_for().version()["apiVersion"] == "2.0.3"
    assert fake_time.sleeps == [MAX_RETRY_AFTER]


def test_retry_after_reads_seconds_and_http_dates():
    """Both Retry-After forms become seconds from now; nonsense is ignored."""
    assert _retry_after_seconds("2") == 2.0
    assert _retry_after_seconds(" 0 ") == 0.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after_seconds(when) <= 31
    past = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
    assert _retry_after_seconds(past) == 0.0
    assert _retry_after_seconds("soon") is None
    assert _retry_after_seconds("nan") is None
    assert _retry_after_seconds(None) is None


def test_server_errors_are_retried_with_jittered_backoff_then_given_up(
    httpserver, client_for, fake_time
):
    """Five 503s: five attempts, four backoff waits within full-jitter bounds, one line."""
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


def test_connection_refused_is_retried_then_reported(fake_time):
    """Nothing listening: every attempt fails fast; the message names the URL and the cause."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{API}"
    client = RegistryClient(url, max_retries=2, sleep=fake_time.sleep, clock=fake_time.clock)
    with client, pytest.raises(RegistryError) as info:
        client.get_study("NCT03830788")
    assert str(info.value) == (
        f"Could not reach ClinicalTrials.gov at {url}: connection refused (3 tries)"
    )
    assert len(fake_time.sleeps) == 2


def test_throttle_spaces_requests_by_min_interval(httpserver, client_for, fake_time):
    """Two back-to-back requests with a 1 s interval: the second waits 1 s, via sleep."""
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    serve_json(httpserver, "/studies/NCT03830788", asset(STUDY_FR16))
    client = client_for(min_interval=1.0)
    client.get_study("NCT03830788")
    fake_time.now += 0.25  # the caller spends a quarter of a second
    client.get_study("NCT03830788")
    assert fake_time.sleeps == [0.75]


def test_defaults_are_polite_for_the_live_host_and_fast_for_loopback(monkeypatch):
    """Live API: 1 s between requests; loopback: no wait; env var picks the base URL."""
    monkeypatch.delenv("TRIALFINDER_REGISTRY_URL", raising=False)
    live = RegistryClient()
    assert (live.base_url, live.min_interval, live.timeout) == (DEFAULT_BASE_URL, 1.0,
                                                                (5.0, 30.0))
    assert live._session.headers["User-Agent"] == USER_AGENT
    live.close()
    monkeypatch.setenv("TRIALFINDER_REGISTRY_URL", "http://127.0.0.1:9/api/v2/")
    local = RegistryClient()
    assert (local.base_url, local.min_interval) == ("http://127.0.0.1:9/api/v2", 0.0)
    local.close()
    with pytest.raises(BadInput):
        RegistryClient("ftp://example.org/api")


def test_version(httpserver, client_for):
    """/version is returned as a dict."""
    serve_json(httpserver, "/version",
               b'{"apiVersion":"2.0.3","dataTimestamp":"2025-12-09T09:00:05"}')
    assert client_for().version() == {"apiVersion": "2.0.3",
                                      "dataTimestamp": "2025-12-09T09:00:05"}


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------

PHELAN_FIELDS = ("NCTId,BriefTitle,OverallStatus,Phase,StudyType,Condition,InterventionName,"
                 "LeadSponsorName,EnrollmentCount,BriefSummary,StartDate,CompletionDate,"
                 "MinimumAge,MaximumAge")
PHELAN_QUERY = {"query.cond": "Phelan-McDermid Syndrome", "pageSize": "5",
                "fields": PHELAN_FIELDS}


def ids(studies: list[dict[str, Any]]) -> list[str]:
    return [s["protocolSection"]["identificationModule"]["nctId"] for s in studies]


def test_search_follows_page_tokens_to_the_last_page(httpserver, client_for):
    """Recorded pages 1 and 2 chained by their tokens, then a last page without a token."""
    page1, page2 = load(PHELAN_1), load(PHELAN_2)
    last = {"studies": load(SEARCH_2)["studies"]}
    serve_json(httpserver, "/studies", asset(PHELAN_1),
               query_string={**PHELAN_QUERY, "countTotal": "true"})
    serve_json(httpserver, "/studies", asset(PHELAN_2),
               query_string={**PHELAN_QUERY, "pageToken": page1["nextPageToken"]})
    serve_json(httpserver, "/studies", json.dumps(last).encode(),
               query_string={**PHELAN_QUERY, "pageToken": page2["nextPageToken"]})

    results = client_for().search(condition="Phelan-McDermid Syndrome", page_size=5,
                                  fields=PHELAN_FIELDS)
    assert results.total_count == 21  # known before iterating: feeds a progress bar
    studies = list(results)

    assert ids(studies) == ids(page1["studies"]) + ids(page2["studies"]) + ["NCT00184067",
                                                                           "NCT03934567"]
    assert results.pages == 3
    httpserver.check_assertions()


def test_search_sends_filters_in_the_api_format(httpserver, client_for):
    """Statuses are validated and comma-joined; geo, location and term pass through."""
    serve_json(httpserver, "/studies", b'{"studies": []}', query_string={
        "query.term": "ALK", "query.locn": "France",
        "filter.overallStatus": "RECRUITING,NOT_YET_RECRUITING",
        "filter.geo": "distance(45.76,4.83,50km)", "pageSize": "100", "countTotal": "true",
    })
    results = client_for().search(term="ALK", location="France",
                                  overall_status=["recruiting", "Not yet recruiting"],
                                  geo="distance(45.76, 4.83, 50km)")
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
        for study in results:
            received.append(study)
    assert len(received) == 5
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
        ({"overall_status": ["OPEN-ISH"]}, "Unknown recruitment status 'OPEN-ISH'"),
        ({"geo": "near(Lyon)"}, "is not distance(lat,lon,radius)"),
        ({}, "Give a condition"),
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
    "page", [[], {"studies": {}}, {"studies": [1]}, {"studies": [], "nextPageToken": 5}, {}]
)
def test_parse_search_page_refuses_malformed_pages(page):
    """A page of the wrong shape is a RegistryError."""
    with pytest.raises(RegistryError):
        parse_search_page(page)


def test_search_with_text_yields_each_study_as_served(httpserver, client_for):
    """with_text(): the studies of every page, each with its exact text in the page."""
    page1, page2 = asset(PHELAN_1).decode(), asset(PHELAN_2).decode()
    serve_json(httpserver, "/studies", page1.encode(),
               query_string={**PHELAN_QUERY, "countTotal": "true"})
    serve_json(httpserver, "/studies", page2.encode(),
               query_string={**PHELAN_QUERY, "pageToken": load(PHELAN_1)["nextPageToken"]})
    serve_json(httpserver, "/studies", b'{"studies": []}',
               query_string={**PHELAN_QUERY, "pageToken": load(PHELAN_2)["nextPageToken"]})
    results = client_for().search(condition="Phelan-McDermid Syndrome", page_size=5,
                                  fields=PHELAN_FIELDS)
    pairs = list(results.with_text())
    assert [study for study, _ in pairs] == load(PHELAN_1)["studies"] + load(PHELAN_2)["studies"]
    for study, raw in pairs:
        assert json.loads(raw) == study
        assert raw in (page1 if study in load(PHELAN_1)["studies"] else page2)
    assert results.buffered == 0


@pytest.mark.parametrize("name", [PHELAN_1, PHELAN_2, SEARCH_2, SEARCH_60, SEARCH_SITESTATUS])
def test_split_search_page_equals_parse_search_page(name):
    """On recorded pages: the same studies, token and total, each study with its own text."""
    text = asset(name).decode()
    pairs, token, total = split_search_page(text)
    assert ([s for s, _ in pairs], token, total) == parse_search_page(json.loads(text))
    assert all(json.loads(raw) == study for study, raw in pairs)
    assert_array_elements(text, [raw for _, raw in pairs])


def assert_array_elements(text: str, raws: list[str]) -> None:
    """``raws`` are, in order, the elements of one array of ``text``: the first just after a
    "[", each next one just after a comma, the last just before a "]", with only JSON
    whitespace around the punctuation."""
    end = 0
    for n, raw in enumerate(raws):
        start = text.index(raw, end)
        if n:
            assert text[end:start].strip(" \t\n\r") == ","
        else:
            assert text[:start].rstrip(" \t\n\r").endswith("[")
        end = start + len(raw)
    if raws:
        assert text[end:].lstrip(" \t\n\r").startswith("]")


def studies_page(raws: list[str], before: str = '{"studies": [', between: str = ", ",
                 after: str = "]}") -> tuple[str, list[int]]:
    """A page whose studies array holds ``raws`` verbatim, and where each of them starts."""
    starts, position = [], len(before)
    for raw in raws:
        starts.append(position)
        position += len(raw) + len(between)
    return before + between.join(raws) + after, starts


def test_split_search_page_in_any_key_order_and_whitespace():
    """Members in any order, any JSON whitespace between tokens: the raw texts are exactly
    the study elements as written, inner whitespace included."""
    raws = ['{"a": 1}', '{ "b" :\t[1 ,2] ,\r\n"c":{} }', "{}"]
    pages = [
        studies_page(raws, '{"studies":[', ",", '],"nextPageToken":"abc","totalCount":3}'),
        studies_page(raws, ' \r\n\t{ "totalCount" : 3 ,\n"nextPageToken"\t:\t"abc" ,\n '
                     '"studies" :\n[\n\t', "\n ,\r\n\t", "\r\n]\n}\n\t "),
        studies_page(raws, '{"nextPageToken": "abc", "studies": [ ', " , ",
                     ' ], "totalCount": 3}'),
    ]
    for text, starts in pages:
        pairs, token, total = split_search_page(text)
        assert pairs == [({"a": 1}, raws[0]), ({"b": [1, 2], "c": {}}, raws[1]), ({}, raws[2])]
        assert (token, total) == ("abc", 3)
        assert [text[a:a + len(raw)] for a, raw in zip(starts, raws, strict=True)] == raws


def test_split_search_page_keeps_escapes_and_non_ascii_text_as_written():
    """Escapes stay escaped in the raw text (decoded in the study); non-ASCII text, brackets
    and commas inside strings are no boundaries."""
    raws = [
        r'{"t": "caf\u00e9 \ud83e\uddec \"q\" \\ \/ \n", "k\u00e9y": ["]", "}", ","]}',
        '{"t": "Hôpital Édouard-Herriot – 🧬 « ≥ 18 ans »", "x": "[{,}]"}',
        r'{"s": "\"}, {\""}',
    ]
    text, starts = studies_page(raws, '{"studies":[', ",", '],"nextPageToken":"t\\u00e9"}')
    pairs, token, total = split_search_page(text)
    assert [raw for _, raw in pairs] == raws
    assert [s for s, _ in pairs] == json.loads(text)["studies"]
    assert pairs[0][0] == {"t": 'café 🧬 "q" \\ / \n', "kéy": ["]", "}", ","]}
    assert pairs[1][0]["t"] == "Hôpital Édouard-Herriot – 🧬 « ≥ 18 ans »"
    assert pairs[2][0] == {"s": '"}, {"'}
    assert (token, total) == ("té", None)
    assert all(text[start:start + len(raw)] == raw for start, raw in zip(starts, raws, strict=True))


@pytest.mark.parametrize("text", ['{"studies": []}', '{"studies":[ \n\t]}', ' {"studies":[]} ',
                                  '{"nextPageToken": "", "studies": []}'])
def test_split_search_page_with_no_studies(text):
    """An empty studies list (an empty token meaning none)."""
    assert split_search_page(text) == ([], None, None)


@pytest.mark.parametrize(
    ("text", "studies", "raws", "token", "total"),
    [
        ('{"studies": [{"a": 1}], "studies": [{"b": 2}]}', [{"b": 2}], ['{"b": 2}'], None, None),
        ('{"studies": 3, "studies": [{"b": 2}]}', [{"b": 2}], ['{"b": 2}'], None, None),
        ('{"studies": [{"a": 1}], "studies": []}', [], [], None, None),
        ('{"stud\\u0069es": 3, "studies": [{}], "\\u0073tudies": [{"c": 3}]}', [{"c": 3}],
         ['{"c": 3}'], None, None),
        ('{"nextPageToken": 5, "totalCount": "x", "studies": [], "nextPageToken": "t", '
         '"totalCount": 4}', [], [], "t", 4),
        ('{"nextPageToken": "t", "totalCount": 4, "studies": [], "nextPageToken": null, '
         '"totalCount": -1}', [], [], None, None),
    ],
)
def test_split_search_page_duplicate_keys_the_last_one_wins(text, studies, raws, token, total):
    """As json.loads: of repeated keys (however escaped), the last one counts."""
    pairs, got_token, got_total = split_search_page(text)
    assert ([s for s, _ in pairs], got_token, got_total) == (studies, token, total)
    assert [raw for _, raw in pairs] == raws
    assert ([s for s, _ in pairs], got_token, got_total) == parse_search_page(json.loads(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "a list"),
        (' [{"studies": []}] ', "a list"),
        ('"x"', "text"),
        ("3", "a number"),
        ("null", "null"),
        ("true", "true/false"),
        ('{"studies": {}}', "no 'studies' list"),
        ('{"studies": null}', "no 'studies' list"),
        ("{}", "no 'studies' list"),
        ('{"Studies": []}', "no 'studies' list"),
        ('{"studies": [1]}', "study 1 is a number"),
        ('{"studies": [{}, []]}', "study 2 is a list"),
        ('{"studies": [{}, {}, null]}', "study 3 is null"),
        ('{"studies": ["x"]}', "study 1 is text"),
        ('{"studies": [false]}', "study 1 is true/false"),
        ('{"studies": [], "nextPageToken": 5}', "nextPageToken is a number"),
        ('{"studies": [], "nextPageToken": true}', "nextPageToken is true/false"),
        ('{"studies": [], "nextPageToken": ["t"]}', "nextPageToken is a list"),
        ('{"studies": [], "nextPageToken": {}}', "nextPageToken is an object"),
        ('{"studies": [], "studies": 3}', "no 'studies' list"),
        ('{"studies": [{}], "studies": [1]}', "study 1 is a number"),
    ],
)
def test_split_search_page_refuses_what_parse_search_page_refuses(text, message):
    """Same checks, same messages as parse_search_page on the decoded page."""
    expected = f"ClinicalTrials.gov sent an unreadable search page: {message}"
    with pytest.raises(RegistryError) as info:
        parse_search_page(json.loads(text))
    assert str(info.value) == expected
    with pytest.raises(RegistryError) as info:
        split_search_page(text)
    assert str(info.value) == expected


@pytest.mark.parametrize(
    ("total", "expected"),
    [("12", 12), ("0", 0), ("-1", None), ("true", None), ("12.0", None), ('"12"', None),
     ("null", None), ("[12]", None), ("120000000000000000000000", 120000000000000000000000)],
)
def test_split_search_page_total_count_rules(total, expected):
    """totalCount: a count (an integer, not true/false, not negative) or None, as
    parse_search_page has it; absent is None too."""
    text = f'{{"studies": [], "totalCount": {total}}}'
    assert split_search_page(text) == ([], None, expected)
    assert parse_search_page(json.loads(text)) == ([], None, expected)
    assert split_search_page('{"studies": []}') == ([], None, None)


MALFORMED_PAGES = [
    '{"studies": [{}', '{"studies": [{} {}]}', '{"studies": []', '{"studies": [] x',
    '{"studies": []}}', '{studies: []}', '{"studies" []}', '{"studies": [],}', "",
    '{"studies": [{"a": 1,}]}', '{"a": 1 "studies": []}', "   ", "{", "[", '{"stud',
    '{"studies": [{},]}', '{"studies": [{}, ]}', '{"studies": [{}]} x', '{"studies": [{}]}]',
    '{"studies": [{}],', '{"studies": [{"a": "\x01"}]}', '{"studies": [{"a": NaNa}]}',
    '{\x0c"studies": []}', '{"studies":\xa0[]}', '{"studies": [{}\u2028]}', "\ufeff{}",
    '{"studies": [], "x": tru}', '{"studies": [], "x": [1, 2}', '{"studies": [{"a": 1]}]}',
    '{"studies": [{"a": "b\\"}]}', '{"studies": [{"a": "\\x"}]}',
]


@pytest.mark.parametrize("text", MALFORMED_PAGES)
def test_split_search_page_fails_where_json_loads_fails(text):
    """Invalid JSON: a JSONDecodeError at the very position json.loads gives."""
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        split_search_page(text)
    assert (got.value.pos, got.value.msg) == (expected.value.pos, expected.value.msg)
    with pytest.raises(json.JSONDecodeError) as got:
        decode_search_page(text)
    assert (got.value.pos, got.value.msg) == (expected.value.pos, expected.value.msg)
    with pytest.raises(json.JSONDecodeError):
        _walk_search_page(text)  # the walk itself notices; json.loads words it


@pytest.mark.parametrize("text", [*MALFORMED_PAGES, *(asset(SEARCH_2)[:n].decode()
                                                       for n in (1, 2, 500, 9000, 34478))])
def test_unreadable_search_pages_read_as_unreadable_bodies(text):
    """Through `_decode_json`, a broken page gives the message of any unreadable body."""
    with pytest.raises(RegistryError) as expected:
        _decode_json(text.encode(), "search page 2")
    with pytest.raises(RegistryError) as got:
        _decode_json(text.encode(), "search page 2", loads=split_search_page)
    assert str(got.value) == str(expected.value)
    assert str(got.value).startswith(
        "ClinicalTrials.gov sent an unreadable response for search page 2: ")


def assert_split_agrees_with_json_loads(text: str) -> None:
    """split_search_page(text) fails where and as json.loads(text) does, or refuses what
    parse_search_page refuses with the same message, or gives what it gives."""
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as expected:
        with pytest.raises(json.JSONDecodeError):
            _walk_search_page(text)  # the walk itself notices
        with pytest.raises(json.JSONDecodeError) as got:
            split_search_page(text)
        assert (got.value.pos, got.value.msg) == (expected.pos, expected.msg)
        return
    try:
        expected_result = parse_search_page(decoded)
    except RegistryError as expected_error:
        with pytest.raises(RegistryError) as refused:
            split_search_page(text)
        assert str(refused.value) == str(expected_error)
        return
    pairs, token, total = split_search_page(text)
    assert ([s for s, _ in pairs], token, total) == expected_result
    assert all(json.loads(raw) == study for study, raw in pairs)


def test_split_search_page_agrees_with_json_loads_at_every_cut():
    """A page cut anywhere, or with a stray character anywhere, fails where json.loads does
    (or, where still valid, gives what it gives)."""
    recorded = asset(PHELAN_2)
    for cut in range(len(recorded)):
        assert_split_agrees_with_json_loads(recorded[:cut].decode("utf-8", "ignore"))
    text = ('{ "totalCount": 2, "studies": [ {"a": [1, {"b": "\\u00e9]"}], "c": null},\n'
            '\t{"d": "é \\"}\\"", "e": -1.5e3} ], "nextPageToken": "t" }')
    assert split_search_page(text)[0][1][1] == '{"d": "é \\"}\\"", "e": -1.5e3}'
    for cut in range(len(text) + 1):
        assert_split_agrees_with_json_loads(text[:cut])
        for stray in ("#", ",", ":", "[", "]", "{", "}", '"', "\\", " ", "\x0b", "1", "é"):
            assert_split_agrees_with_json_loads(text[:cut] + stray + text[cut:])


def test_split_search_page_pauses_the_collector_and_restores_it(monkeypatch):
    """The walk runs with the cyclic collector off; its previous state comes back, errors
    included."""
    from trialfinder import registry

    seen: list[bool] = []
    real = registry.decode_search_page

    def spy(text: str) -> Any:
        seen.append(gc.isenabled())
        return real(text)

    monkeypatch.setattr(registry, "decode_search_page", spy)
    assert gc.isenabled()
    split_search_page('{"studies": [{}]}')
    with pytest.raises(RegistryError):
        split_search_page('{"studies": [1]}')
    with pytest.raises(json.JSONDecodeError):
        split_search_page('{"studies": [')
    assert seen == [False, False, False]
    assert gc.isenabled()
    gc.disable()
    try:
        split_search_page('{"studies": []}')
        assert not gc.isenabled()
    finally:
        gc.enable()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    studies=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4),
                     max_size=4),
    extra=st.dictionaries(st.sampled_from(["totalCount", "nextPageToken", "x", "studies2"]),
                          json_values, max_size=3),
    studies_first=st.booleans(),
    indent=st.sampled_from([None, 0, 2, "\t"]),
    separators=st.sampled_from([None, (",", ":"), (" ,  ", " :  ")]),
    ensure_ascii=st.booleans(),
)
def test_decode_search_page_is_json_loads_with_study_texts(
    studies, extra, studies_first, indent, separators, ensure_ascii
):
    """Any page, any layout: the members json.loads gives, and per study a slice of the page
    that decodes to that study."""
    members = {"studies": studies, **extra} if studies_first else {**extra, "studies": studies}
    text = json.dumps(members, indent=indent, separators=separators, ensure_ascii=ensure_ascii)
    page = decode_search_page(text)
    assert page.studies is not None
    assert page.members is not None
    assert [s for s, _, _ in page.studies] == json.loads(text)["studies"]
    assert {k: v for k, v in page.members.items() if k != "studies"} == {
        k: v for k, v in json.loads(text).items() if k != "studies"}
    position = 0
    for study, start, end in page.studies:
        assert start >= position  # in order, never overlapping
        assert json.loads(text[start:end]) == study
        assert text[start] in "{" and text[end - 1] == "}"
        position = end


BLANKS = ["", "", " ", "\n", "\t", "\r\n", " \n\t  \r"]
DUMPS_STYLES = [{}, {"indent": 2}, {"indent": "\t"}, {"indent": 0}, {"separators": (",", ":")},
                {"separators": (" ,  ", " :  ")}, {"indent": 1, "separators": (" ,", ":")}]
PAGE_KEYS = ["totalCount", "nextPageToken", "studies", "x", "studies2"]


def spaced_json(value: Any, blank: Any, ensure_ascii: bool) -> str:
    """``value`` as JSON with ``blank()`` whitespace around every token."""
    if isinstance(value, dict):
        inner = ",".join(
            f"{blank()}{json.dumps(k, ensure_ascii=ensure_ascii)}{blank()}:{blank()}"
            f"{spaced_json(v, blank, ensure_ascii)}{blank()}" for k, v in value.items())
        return "{" + (inner or blank()) + "}"
    if isinstance(value, list):
        inner = ",".join(f"{blank()}{spaced_json(v, blank, ensure_ascii)}{blank()}"
                         for v in value)
        return "[" + (inner or blank()) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


def spaced_page(members: list[tuple[str, Any]], render: Any, blank: Any, ensure_ascii: bool,
                escape_key: bool) -> tuple[str, list[tuple[int, str]]]:
    """A page of ``members`` in that order (repeats allowed), ``blank()`` whitespace around
    every token, each study written by ``render``; and (start, text) of each element of
    the last "studies" array."""
    pieces: list[str] = []
    length = 0
    placed: list[tuple[int, str]] = []

    def put(piece: str) -> None:
        nonlocal length
        pieces.append(piece)
        length += len(piece)

    put(blank() + "{" + blank())
    for n, (key, value) in enumerate(members):
        if n:
            put("," + blank())
        written = '"\\u0073tudies"' if key == "studies" and escape_key else json.dumps(key)
        put(written + blank() + ":" + blank())
        if key == "studies" and isinstance(value, list):
            placed = []
            put("[" + blank())
            for m, element in enumerate(value):
                if m:
                    put(blank() + "," + blank())
                raw = render(element)
                placed.append((length, raw))
                put(raw)
            put(blank() + "]")
        else:
            if key == "studies":
                placed = []
            put(spaced_json(value, blank, ensure_ascii))
        put(blank())
    put("}" + blank())
    return "".join(pieces), placed


def dumped_page(members: dict[str, Any], **options: Any) -> tuple[str, list[tuple[int, str]]]:
    """``json.dumps(members, **options)`` and (start, text) of each element of its
    "studies" array, from json.dumps' own layout (checked against the real output)."""
    text = json.dumps(members, **options)
    studies = members.get("studies")
    if not isinstance(studies, list):
        return text, []
    indent = options.get("indent")
    if indent is None:
        comma = (options.get("separators") or (", ", ": "))[0]
        raws = [json.dumps(s, **options) for s in studies]
        opening, between, closing = "[", comma, "]"
    else:
        unit = " " * indent if isinstance(indent, int) else indent
        comma = (options.get("separators") or (",", ": "))[0]
        raws = [json.dumps(s, **options).replace("\n", "\n" + unit * 2) for s in studies]
        opening, between, closing = "[\n" + unit * 2, comma + "\n" + unit * 2, "\n" + unit + "]"
    skeleton = json.dumps({**members, "studies": "@@studies@@"}, **options)
    at = skeleton.index('"@@studies@@"')
    array = opening + between.join(raws) + closing if raws else "[]"
    assert skeleton[:at] + array + skeleton[at + len('"@@studies@@"'):] == text
    placed, position = [], at + len(opening)
    for raw in raws:
        placed.append((position, raw))
        position += len(raw) + len(between)
    return text, placed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    studies=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=5),
    intruder=st.none() | st.tuples(st.integers(0, 5), json_values),
    others=st.lists(st.tuples(st.sampled_from(PAGE_KEYS), json_values), max_size=4),
    where=st.integers(0, 4),
    layout=st.sampled_from(["spaced", "dumps"]),
    study_style=st.sampled_from([None, *DUMPS_STYLES]),
    page_style=st.sampled_from(DUMPS_STYLES),
    ensure_ascii=st.booleans(),
    escape_key=st.booleans(),
    rnd=st.randoms(use_true_random=False),
)
def test_split_search_page_is_json_loads_with_each_study_text_in_place(
    studies, intruder, others, where, layout, study_style, page_style, ensure_ascii,
    escape_key, rnd,
):
    """Any studies, any other members in any order (repeated keys too), random whitespace
    around tokens or json.dumps layouts: the studies json.loads gives, the checks and
    messages of parse_search_page, and each study's text exactly where it is in the page."""
    if intruder is not None:
        studies.insert(min(intruder[0], len(studies)), intruder[1])
    members = [*others]
    members.insert(min(where, len(members)), ("studies", studies))

    def blank() -> str:
        return rnd.choice(BLANKS)

    def render(study: Any) -> str:
        if study_style is None:
            return spaced_json(study, blank, ensure_ascii)
        return json.dumps(study, ensure_ascii=ensure_ascii, **study_style)

    if layout == "spaced":
        text, placed = spaced_page(members, render, blank, ensure_ascii, escape_key)
    else:
        text, placed = dumped_page(dict(members), ensure_ascii=ensure_ascii, **page_style)

    assert_split_agrees_with_json_loads(text)
    try:
        pairs, _, _ = split_search_page(text)
    except RegistryError:
        return
    assert [study for study, _ in pairs] == json.loads(text)["studies"]
    assert [raw for _, raw in pairs] == [raw for _, raw in placed]
    for (study, raw), (start, _) in zip(pairs, placed, strict=True):
        assert text[start:start + len(raw)] == raw
        assert json.loads(raw) == study


def test_search_with_text_gives_the_exact_slices_of_every_served_page(httpserver, client_for):
    """Three pages in three layouts (as recorded, hand-spaced with escapes and non-ASCII
    text, one line): with_text() yields each study with its exact slice of the page it came
    in; iterating the same search yields the same studies."""
    page1 = asset(PHELAN_1).decode()
    text1, placed1 = dumped_page(load(PHELAN_1), indent=2, ensure_ascii=False)
    assert text1 + "\n" == page1  # so placed1 are the offsets of the studies in page1

    studies2 = load(PHELAN_2)["studies"]
    studies2[0]["protocolSection"]["identificationModule"]["briefTitle"] = (
        'Étude « pilote » – 🧬 "quoted" [a], {b}, \\ /')
    layouts = [{"ensure_ascii": False, "indent": "\t"}, {}, {"separators": (",", ":")},
               {"ensure_ascii": False, "indent": 3}, {"ensure_ascii": True}]
    raws2 = [json.dumps(s, **layout) for s, layout in zip(studies2, layouts, strict=True)]
    page2, starts2 = studies_page(
        raws2, '\r\n{ "nextPageToken" : "t2" ,\n"studies":\t[\r\n', " ,\n ", "\n] }\n")

    studies3 = load(SEARCH_2)["studies"]
    raws3 = [json.dumps(s, separators=(",", ":")) for s in studies3]
    page3, starts3 = studies_page(raws3, '{"totalCount":99,"studies":[', ",", "]}")

    def serve_all() -> None:
        serve_json(httpserver, "/studies", page1.encode(),
                   query_string={**PHELAN_QUERY, "countTotal": "true"})
        serve_json(httpserver, "/studies", page2.encode(),
                   query_string={**PHELAN_QUERY, "pageToken": load(PHELAN_1)["nextPageToken"]})
        serve_json(httpserver, "/studies", page3.encode(),
                   query_string={**PHELAN_QUERY, "pageToken": "t2"})

    serve_all()
    results = client_for().search(condition="Phelan-McDermid Syndrome", page_size=5,
                                  fields=PHELAN_FIELDS)
    assert results.total_count == 21
    pairs = list(results.with_text())
    httpserver.check_assertions()

    served = ([(page1, start, raw) for start, raw in placed1]
              + [(page2, start, raw) for start, raw in zip(starts2, raws2, strict=True)]
              + [(page3, start, raw) for start, raw in zip(starts3, raws3, strict=True)])
    assert [raw for _, raw in pairs] == [page[start:start + len(raw)]
                                         for page, start, raw in served]
    assert [raw for _, raw in pairs] == [raw for _, _, raw in served]
    assert [study for study, _ in pairs] == load(PHELAN_1)["studies"] + studies2 + studies3
    assert all(json.loads(raw) == study for study, raw in pairs)
    assert (results.pages, results.received, results.buffered, results.total_count) == (
        3, 12, 0, 21)
    assert list(results.with_text()) == []

    httpserver.clear()
    serve_all()
    again = client_for().search(condition="Phelan-McDermid Syndrome", page_size=5,
                                fields=PHELAN_FIELDS)
    assert list(again) == [study for study, _ in pairs]
    httpserver.check_assertions()


def test_a_broken_search_page_is_an_unreadable_response(httpserver, client_for):
    """A page cut short, or with junk after it, stops the search with _decode_json's
    message, after the studies of the pages before it."""
    serve_json(httpserver, "/studies", asset(SEARCH_2))
    serve_json(httpserver, "/studies", asset(PHELAN_2)[:5000])
    results = client_for().search(term="x", page_size=2)
    received = []
    with pytest.raises(RegistryError) as info:
        for _, raw in results.with_text():
            received.append(raw)
    assert len(received) == 2
    assert str(info.value) == ("ClinicalTrials.gov sent an unreadable response for search "
                               "page 2: the JSON stops after 5000 bytes (cut short?)")
    httpserver.clear()
    serve_json(httpserver, "/studies", b'{"studies": [{}]} {}')
    with pytest.raises(RegistryError) as info:
        list(client_for().search(term="x"))
    assert str(info.value) == ("ClinicalTrials.gov sent an unreadable response for search "
                               "page 1: invalid JSON at character 18 of 20")


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
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
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
    assert all("\n" not in w for w in result.warnings)
    trial = result.trial
    trial.source.as_of_date()  # a usable date, always
    for site in trial.sites:
        if site.has_position:
            assert math.isfinite(site.latitude) and -90 <= site.latitude <= 90
            assert math.isfinite(site.longitude) and -180 <= site.longitude <= 180
    trial_from_jsonable(json.loads(json.dumps(to_jsonable(trial))))


# ---------------------------------------------------------------------------------------------
# the fast location reader agrees with the careful one
# ---------------------------------------------------------------------------------------------

odd_text = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["  ", " Lyon ", ""]),
                     st.integers(), st.booleans(), st.lists(st.text(max_size=2), max_size=1))
statuses_text = st.one_of(st.none(), st.integers(), st.sampled_from(
    ["RECRUITING", "COMPLETED", "WITHDRAWN", "recruiting", "BOGUS", " RECRUITING", ""]))
numbers = st.one_of(st.none(), st.floats(), st.integers(-200, 200), st.booleans(),
                    st.text(max_size=3))
contact = st.dictionaries(
    st.sampled_from(["name", "role", "phone", "phoneExt", "email", "affiliation", "other"]),
    odd_text, max_size=6)
location = st.fixed_dictionaries({}, optional={
    "facility": odd_text, "city": odd_text, "state": odd_text, "zip": odd_text,
    "country": odd_text, "status": statuses_text,
    "geoPoint": st.one_of(st.none(), st.integers(), st.fixed_dictionaries(
        {}, optional={"lat": numbers, "lon": numbers})),
    "contacts": st.one_of(st.none(), st.integers(), st.lists(st.one_of(contact, st.integers()),
                                                             max_size=3)),
})


@settings(max_examples=400, deadline=None)
@given(st.one_of(location, st.integers(), st.none()))
def test_fast_location_is_the_careful_reading_without_warnings(loc):
    """Whenever the fast path reads a location, the careful path reads the same values and
    has nothing to warn about; when it declines, the careful path decides."""
    from trialfinder.registry import _fast_location, _parse_location, _Reader

    fast = _fast_location(loc)
    reader = _Reader()
    careful = _parse_location(0, loc, reader)
    if fast is not None:
        assert fast == careful
        assert reader.warnings == []
