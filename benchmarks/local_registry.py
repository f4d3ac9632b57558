"""A local ClinicalTrials.gov API v2 for the sync benchmarks, in its own process.

It serves a *catalogue* of synthetic studies (tests/fake_registry.py: made from the recorded
fixtures, new ids, shifted positions, registry-like site counts) in segments that each have a
last-update date and a status, so a benchmark can grow the registry and touch studies
without holding them all in memory. ``GET /studies`` understands what the sync asks
(``filter.overallStatus``, ``filter.advanced`` with
``AREA[LastUpdatePostDate]RANGE[day,MAX]``, ``pageSize`` ≤ 1000, ``pageToken``,
``countTotal``); each page is generated once and kept encoded. With ``rate`` (studies per
second), a page is sent in chunks spread over ``studies / rate`` seconds, like a registry
that sets the pace.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_registry import registry_site_counts, synthetic_studies

_RANGE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),MAX\]")
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Segment:
    """``count`` studies NCT<first_id…>, last updated on ``updated``, with ``status``."""

    first_id: int
    count: int
    updated: str
    status: str = "RECRUITING"
    seed: int = 0
    """Which site draw (a touched study keeps its sites unless the seed changes)."""


class Catalogue:
    """The registry's studies as segments; a later segment replaces earlier ids (a study
    updated again)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self._pages: dict[tuple[Any, ...], bytes] = {}
        self._lock = threading.Lock()

    def _live(self) -> list[tuple[int, Segment]]:
        """(id, segment) of every study, the last segment naming an id winning, id order."""
        owner: dict[int, Segment] = {}
        for segment in self.segments:
            for i in range(segment.first_id, segment.first_id + segment.count):
                owner[i] = segment
        return sorted(owner.items())

    def page(self, args: dict[str, str]) -> tuple[int, bytes, int]:
        """(status, body, studies on the page)."""
        size = int(args.get("pageSize", "10"))
        if not 0 < size <= 1000:
            return 400, b"pageSize must be between 1 and 1000", 0
        token = args.get("pageToken")
        start = int(token[4:]) if token else 0
        statuses = frozenset((args.get("filter.overallStatus") or "").split(",")) - {""}
        since = None
        if "filter.advanced" in args:
            found = _RANGE.fullmatch(args["filter.advanced"].strip())
            if found is None:
                return 400, b"unsupported filter.advanced", 0
            since = found.group(1)
        key = (statuses, since, size, start, args.get("countTotal"))
        with self._lock:
            cached = self._pages.get(key)
            if cached is not None:
                return 200, cached, cached.count(b'"protocolSection"')
            matching = [(i, s) for i, s in self._live()
                        if (not statuses or s.status in statuses)
                        and (since is None or s.updated >= since)]
            chunk = matching[start:start + size]
            studies = [self._study(i, s) for i, s in chunk]
            page: dict[str, Any] = {"studies": studies}
            if start + size < len(matching):
                page["nextPageToken"] = f"tok-{start + size}"
            if args.get("countTotal") == "true" and not token:
                page["totalCount"] = len(matching)
            body = json.dumps(page).encode()
            self._pages[key] = body
            return 200, body, len(studies)

    @staticmethod
    def _study(nct: int, segment: Segment) -> dict[str, Any]:
        (study,) = synthetic_studies(1, first_id=nct, seed=nct * 31 + segment.seed,
                                     updated=segment.updated, status=segment.status,
                                     sites=registry_site_counts)
        return study


def _serve(segments: list[Segment], rate: float | None,
           port_out: multiprocessing.connection.Connection) -> None:
    catalogue = Catalogue(segments)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            args = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if parts.path.rstrip("/") != "/studies":
                self._send(404, b"not found", "text/plain")
                return
            status, body, studies = catalogue.page(args)
            if status != 200:
                self._send(status, body, "text/plain")
                return
            paced = rate and not self.headers.get("X-Bench-Warm")
            self._send(200, body, "application/json",
                       seconds=studies / rate if paced and rate else 0.0)

        def _send(self, status: int, body: bytes, kind: str, seconds: float = 0.0) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if seconds <= 0:
                self.wfile.write(body)
                return
            started = time.monotonic()
            chunks = max(1, len(body) // CHUNK)
            for n in range(chunks):
                end = len(body) if n == chunks - 1 else (n + 1) * CHUNK
                self.wfile.write(body[n * CHUNK:end])
                wait = started + seconds * (n + 1) / chunks - time.monotonic()
                if wait > 0:
                    time.sleep(wait)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.send(server.server_address[1])
    server.serve_forever()


class LocalRegistry:
    """The server process: ``with LocalRegistry(segments, rate=300) as url: …``."""

    def __init__(self, segments: list[Segment], rate: float | None = None) -> None:
        self.segments = segments
        self.rate = rate
        self._process: multiprocessing.Process | None = None
        self.url = ""

    def __enter__(self) -> str:
        receive, send = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(self.segments, self.rate, send), daemon=True)
        self._process.start()
        self.url = f"http://127.0.0.1:{receive.recv()}"
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join()


def download(url: str, params: dict[str, str], *, paced: bool = True
             ) -> tuple[float, int, int]:
    """What a plain client needs to fetch a whole search: every page in turn (decoded, for
    its next token). Returns (seconds, studies, bytes)."""
    import requests

    started = time.perf_counter()
    studies = size = 0
    token = None
    with requests.Session() as session:
        if not paced:
            session.headers["X-Bench-Warm"] = "1"
        while True:
            query = dict(params)
            if token:
                query["pageToken"] = token
            else:
                query["countTotal"] = "true"
            response = session.get(f"{url}/studies", params=query, timeout=600)
            response.raise_for_status()
            size += len(response.content)
            page = response.json()
            studies += len(page["studies"])
            token = page.get("nextPageToken")
            if not token:
                break
    return time.perf_counter() - started, studies, size


def warm(url: str, params: dict[str, str]) -> None:
    """Make the server generate and keep every page of this search (untimed, unpaced)."""
    download(url, params, paced=False)
