"""A fake ClinicalTrials.gov API v2 for sync tests and benchmarks, and synthetic studies.

`FakeRegistry` answers ``GET /studies/{nctId}`` and ``GET /studies`` the way the real API does
(see ../shared/reference/ctg-oas-v2.yaml): ``query.cond`` / ``query.locn``,
``filter.overallStatus``, ``filter.advanced`` with ``AREA[LastUpdatePostDate]RANGE[date,MAX]``
(the only Essie expression it knows; anything else is a 400, like an unknown parameter),
``pageSize`` (at most 1000), ``pageToken`` / ``nextPageToken`` (none on the last page),
``countTotal=true`` (``totalCount`` on the first page only), studies in identifier order. It
counts what it serves, so a test can tell what a sync downloaded.

`synthetic_studies` makes studies from the recorded fixtures: new identifiers, positions
shifted, a chosen last-update date; never hand-written records.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "ctgov"
TEMPLATES = (
    "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json",
    "study_NCT06620835_nsclc_FR27sites_sitestatus_withdrawn_contacts.json",
    "study_NCT03934567_26sites_1_no_geoPoint.json",
    "study_NCT05960149_prostate_zero_locations.json",
    "study_NCT06323538_COPLANT_excerpt_retyped.json",
    "study_NCT02210780_42sites_no_facility_names.json",
    "study_NCT01063855_73sites_no_facility_7_no_geoPoint.json",
)
"""Recorded studies the synthetic ones are made from (small and middling ones: the big
1,148- and 437-site studies are added only when asked for)."""
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10
_RANGE = re.compile(r"^AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),MAX\]$")
_PARAMS = frozenset({"query.cond", "query.locn", "filter.overallStatus",
                     "filter.advanced", "pageSize", "pageToken", "countTotal", "format",
                     "fields"})


def load_templates(names: Iterable[str] = TEMPLATES) -> list[dict[str, Any]]:
    return copy.deepcopy(_templates(tuple(names)))


@functools.cache
def _templates(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [json.loads((FIXTURES / name).read_text(encoding="utf-8")) for name in names]


def nct_of(study: dict[str, Any]) -> str:
    return str(study["protocolSection"]["identificationModule"]["nctId"])


def set_nct(study: dict[str, Any], nct: str) -> None:
    study["protocolSection"]["identificationModule"]["nctId"] = nct


def last_update(study: dict[str, Any]) -> str:
    return str(study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"])


def touch(study: dict[str, Any], day: str, status: str | None = None) -> None:
    """Give a study a new last-update date (and overall status)."""
    module = study["protocolSection"]["statusModule"]
    module["lastUpdatePostDateStruct"] = {"date": day, "type": "ACTUAL"}
    if status is not None:
        module["overallStatus"] = status


def synthetic_studies(
    n: int,
    *,
    first_id: int = 90_000_000,
    seed: int = 7,
    updated: str = "2025-01-15",
    status: str | None = "RECRUITING",
    verified: str | None = "2025-01",
    sites: Callable[[random.Random], int] | None = None,
    templates: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``n`` studies made from recorded ones: identifiers from ``first_id``, every position
    shifted by up to half a degree, last updated on ``updated`` (status and verification
    date set when given). ``sites(rng)``: how many sites each gets, drawn from the recorded
    studies' sites (default: its template's own)."""
    rng = random.Random(seed)
    templates = templates or _templates(TEMPLATES)
    pool = [loc for t in templates
            for loc in t["protocolSection"].get("contactsLocationsModule", {})
            .get("locations", [])]
    studies = []
    for i in range(n):
        study = copy.deepcopy(templates[(first_id + i) % len(templates)])
        set_nct(study, f"NCT{first_id + i:08d}")
        touch(study, updated, status)
        if verified is not None:
            study["protocolSection"]["statusModule"]["statusVerifiedDate"] = verified
        module = study["protocolSection"].setdefault("contactsLocationsModule", {})
        if sites is not None:
            module["locations"] = [copy.deepcopy(rng.choice(pool)) for _ in range(sites(rng))]
        dlat, dlon = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
        for loc in module.get("locations", []):
            point = loc.get("geoPoint")
            if isinstance(point, dict) and "lat" in point and "lon" in point:
                point["lat"] = round(max(-89.9, min(89.9, point["lat"] + dlat)), 4)
                point["lon"] = round((point["lon"] + dlon + 180) % 360 - 180, 4)
        studies.append(study)
    return studies


def registry_site_counts(rng: random.Random) -> int:
    """Sites per study, shaped like the registry's: half the studies have one site, most
    under ten, a few hundreds (mean about 8)."""
    r = rng.random()
    if r < 0.5:
        return 1
    if r < 0.85:
        return rng.randint(2, 10)
    if r < 0.98:
        return rng.randint(11, 40)
    return rng.randint(41, 300)


def _fold(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower()
                    .split())


class FakeRegistry:
    """The studies of a fake registry, and the answers the real API would give."""

    def __init__(self, studies: Iterable[dict[str, Any]] = ()) -> None:
        self.studies: dict[str, dict[str, Any]] = {}
        self.bodies: dict[str, bytes] = {}
        """Pre-encoded bodies to serve instead of a study (a broken record)."""
        self.pages: list[dict[str, str]] = []
        """The parameters of each search page asked for."""
        self.by_id: list[str] = []
        self.studies_served = 0
        self.broken_page: int | None = None
        """Serve this search page number (1-based, counted over the whole life) cut short."""
        for study in studies:
            self.put(study)

    def put(self, study: dict[str, Any]) -> None:
        self.studies[nct_of(study)] = study

    def remove(self, nct: str) -> None:
        del self.studies[nct]

    # -- answers --------------------------------------------------------------------------

    def answer(self, path: str, args: dict[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path`` with query ``args``."""
        if path.startswith("/studies/"):
            nct = path.rsplit("/", 1)[1]
            self.by_id.append(nct)
            if nct in self.bodies:
                return 200, "application/json", self.bodies[nct]
            if not re.fullmatch(r"NCT\d{8}", nct):
                return 400, "text/plain", f"Invalid NCT number {nct}".encode()
            if nct not in self.studies:
                return 404, "text/plain", f"Study {nct} not found".encode()
            self.studies_served += 1
            return 200, "application/json", json.dumps(self.studies[nct]).encode()
        if path.rstrip("/") != "/studies":
            return 404, "text/plain", b"Not found"
        return self.search(args)

    def search(self, args: dict[str, str]) -> tuple[int, str, bytes]:
        unknown = set(args) - _PARAMS
        if unknown:
            return 400, "text/plain", f"Unknown parameter {sorted(unknown)[0]}".encode()
        try:
            size = int(args.get("pageSize", DEFAULT_PAGE_SIZE))
        except ValueError:
            return 400, "text/plain", b"pageSize must be an integer"
        if not 0 < size <= MAX_PAGE_SIZE:
            return 400, "text/plain", b"pageSize must be between 1 and 1000"
        try:
            matching = [s for nct, s in sorted(self.studies.items()) if self._matches(s, args)]
        except ValueError as exc:
            return 400, "text/plain", str(exc).encode()
        self.pages.append(dict(args))
        token = args.get("pageToken")
        start = 0
        if token is not None:
            if not token.startswith("tok-") or not token[4:].isdigit():
                return 400, "text/plain", b"Invalid pageToken"
            start = int(token[4:])
        chunk = matching[start:start + size]
        page: dict[str, Any] = {"studies": chunk}
        if start + size < len(matching):
            page["nextPageToken"] = f"tok-{start + size}"
        if args.get("countTotal") == "true" and token is None:
            page["totalCount"] = len(matching)
        self.studies_served += len(chunk)
        body = json.dumps(page).encode()
        if self.broken_page is not None and len(self.pages) == self.broken_page:
            body = body[: len(body) // 2]
        return 200, "application/json", body

    def _matches(self, study: dict[str, Any], args: dict[str, str]) -> bool:
        ps = study["protocolSection"]
        if "query.cond" in args:
            conditions = ps.get("conditionsModule", {})
            ident = ps["identificationModule"]
            text = _fold(" ".join([*conditions.get("conditions", []),
                                   *conditions.get("keywords", []),
                                   ident.get("briefTitle", ""), ident.get("officialTitle", "")]))
            if _fold(args["query.cond"]) not in text:
                return False
        if "query.locn" in args:
            places = _fold(" ".join(
                f"{loc.get('city', '')} {loc.get('state', '')} {loc.get('country', '')}"
                for loc in ps.get("contactsLocationsModule", {}).get("locations", [])))
            if _fold(args["query.locn"]) not in places:
                return False
        if "filter.overallStatus" in args:
            wanted = set(args["filter.overallStatus"].split(","))
            if ps["statusModule"].get("overallStatus") not in wanted:
                return False
        if "filter.advanced" in args:
            found = _RANGE.match(args["filter.advanced"].strip())
            if found is None:
                raise ValueError(f"Unsupported filter.advanced {args['filter.advanced']!r}")
            if last_update(study) < found.group(1):
                return False
        return True

    # -- on pytest-httpserver ---------------------------------------------------------------

    def attach(self, server: Any) -> None:
        """Answer every /studies request of a pytest-httpserver from now on."""
        from werkzeug import Response

        def handler(request: Any) -> Response:
            status, kind, body = self.answer(request.path, dict(request.args))
            return Response(body, status=status, content_type=kind)

        server.expect_request(re.compile(r"^/studies(/.*)?$")).respond_with_handler(handler)
