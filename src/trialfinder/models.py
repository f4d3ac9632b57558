"""Domain values shared by every part of trialfinder: frozen, plain, serialisable.

Parsers (listing, registry) produce these; the store keeps them; ranking, maps and the CLI
read them. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Recruitment status, with the ClinicalTrials.gov API v2 enum values.

    Used for a trial's overall status and for a site's own status.
    """

    RECRUITING = "RECRUITING"
    NOT_YET_RECRUITING = "NOT_YET_RECRUITING"
    ENROLLING_BY_INVITATION = "ENROLLING_BY_INVITATION"
    ACTIVE_NOT_RECRUITING = "ACTIVE_NOT_RECRUITING"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"
    COMPLETED = "COMPLETED"
    WITHDRAWN = "WITHDRAWN"
    AVAILABLE = "AVAILABLE"
    NO_LONGER_AVAILABLE = "NO_LONGER_AVAILABLE"
    TEMPORARILY_NOT_AVAILABLE = "TEMPORARILY_NOT_AVAILABLE"
    APPROVED_FOR_MARKETING = "APPROVED_FOR_MARKETING"
    WITHHELD = "WITHHELD"
    UNKNOWN = "UNKNOWN"


def status_key(text: str) -> str:
    """A registry status as typed or written ("not yet recruiting", "Not-Yet-Recruiting,")
    in the form of its `Status` value ("NOT_YET_RECRUITING"); whether it is one is the
    caller's question."""
    return text.strip().upper().replace(" ", "_").replace("-", "_").replace(",", "")


class Precision(StrEnum):
    """How precisely a coordinate places a site or a patient, best first."""

    FACILITY = "facility"
    POSTAL_CODE = "postal code"
    CITY = "city centre"
    REGION = "region"
    """A French region, department or overseas territory a patient named (its centre)."""
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """Lower is more precise."""
        return list(Precision).index(self)


@dataclass(frozen=True, slots=True)
class Contact:
    """A person or desk to reach: a site contact, an investigator, a central contact."""

    name: str
    role: str | None = None
    """API v2 role (CONTACT, PRINCIPAL_INVESTIGATOR, SUB_INVESTIGATOR, STUDY_CHAIR …)."""
    title: str | None = None
    """Academic or medical title shown by a listing ("Pr", "Dr")."""
    phone: str | None = None
    email: str | None = None
    affiliation: str | None = None

    @property
    def is_investigator(self) -> bool:
        return bool(self.role) and "INVESTIGATOR" in (self.role or "")

    @property
    def display(self) -> str:
        return person_words(self.name, self.title)


def person_words(name: str, title: str | None) -> str:
    """"Jean-Yves BLAY, Pr": a name with its title, unless the name already says it."""
    return f"{name}, {title}" if title and title not in name else name


@dataclass(frozen=True, slots=True)
class Site:
    """One investigator site (a "location" in API v2 terms)."""

    facility: str
    """Facility name as shown to users (dropped accents repaired where confident)."""
    city: str
    country: str
    status: Status | None = None
    """The site's own recorded status; None when the record gives none. What it means for a
    patient is `recruitment.site_recruitment`'s to say."""
    state: str | None = None
    zip: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    precision: Precision = Precision.UNKNOWN
    coordinate_source: str | None = None
    """Where the coordinate came from ("registry geoPoint", "gazetteer", "nominatim …")."""
    contacts: tuple[Contact, ...] = ()
    facility_raw: str | None = None
    """The facility exactly as the source gave it, when repair changed it."""
    unrepaired: tuple[str, ...] = ()
    """Tokens of the facility name that look damaged but could not be repaired confidently."""
    listing_match: bool | None = None
    """After a merge: True if a listing site matched this registry site, False if the site is
    known to only one of the two sources, None when no merge took place."""
    listing_only: bool = False
    """After a merge: the listing names this site but the registry does not (any more). Kept
    for reference with status UNKNOWN; a sync records it as removed from the trial."""
    shared_position: bool = False
    """True when another site of the trial sits at exactly the same coordinate (then they are
    equally near any place: `nearest.rank_sites` gives them one rank)."""
    matched: tuple[str, ...] = ()
    """The record's address fields a looked-up position agrees with, e.g. ("city", "state")
    or ("postal code", "city"); empty when the position came with the record or is unknown."""
    unplaced_reason: str | None = None
    """Why a site has no position, as a short code ("ambiguous", "not found", …); None when
    it is placed or nobody tried."""
    city_raw: str | None = None
    """The city exactly as the source gave it, when repair changed it (a listing's "N mes")."""

    @property
    def investigators(self) -> tuple[Contact, ...]:
        return tuple(c for c in self.contacts if c.is_investigator)

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def key(self) -> str:
        """Stable identity of a site within a trial (facility + city + country, folded)."""
        from trialfinder.text import fold

        return "|".join(fold(part) for part in (self.facility, self.city, self.country))


@dataclass(frozen=True, slots=True)
class Eligibility:
    criteria: str | None = None
    """The registry's eligibility text (Markdown with backslash escapes). The inclusion and
    exclusion lists are read from it by `trialfinder.criteria.parse_criteria`, the one parser
    (records stored with lists of their own still read: the lists are ignored)."""
    minimum_age: str | None = None
    maximum_age: str | None = None
    sex: str | None = None
    healthy_volunteers: bool | None = None


@dataclass(frozen=True, slots=True)
class Arm:
    label: str
    type: str | None = None
    description: str | None = None
    interventions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from and as of when: shown with every answer."""

    kind: str
    """"listing" (a scraped listing page), "registry" (ClinicalTrials.gov API v2),
    or "built" (a record assembled by hand from another source, for tests)."""
    description: str
    """Human words: "CenterWatch-style listing page", "ClinicalTrials.gov API v2"."""
    as_of: str
    """ISO date, possibly partial ("2019-01" for a listing's "Last updated on January 2019")."""
    url: str | None = None
    retrieved: str | None = None
    """ISO timestamp of the fetch, for registry records."""

    def as_of_date(self) -> date:
        """The last day the data is known to hold: the 1st of the month for a month.

        An unknown date (a page that shows none) counts as very old, so it is flagged stale.
        """
        if not self.as_of:
            return date.min
        parts = [int(p) for p in self.as_of.split("-")]
        while len(parts) < 3:
            parts.append(1)
        return date(parts[0], parts[1], parts[2])

    @property
    def as_of_label(self) -> str:
        if not self.as_of:
            return "an unknown date"
        parts = self.as_of.split("-")
        if len(parts) == 2:
            return self.as_of_date().strftime("%B %Y")
        return self.as_of


@dataclass(frozen=True, slots=True)
class Trial:
    nct_id: str
    title: str
    source: Source
    status: Status | None = None
    """Overall recruitment status as recorded."""
    brief_title: str | None = None
    acronym: str | None = None
    brief_summary: str | None = None
    detailed_description: str | None = None
    last_update: str | None = None
    """ISO date (maybe partial) of the record's last update as the source states it."""
    phases: tuple[str, ...] = ()
    sponsor: str | None = None
    conditions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    arms: tuple[Arm, ...] = ()
    eligibility: Eligibility | None = None
    central_contacts: tuple[Contact, ...] = ()
    officials: tuple[Contact, ...] = ()
    secondary_ids: tuple[str, ...] = ()
    """Other identifiers (EudraCT number, sponsor protocol id …) as "TYPE:value"."""
    start_date: str | None = None
    primary_completion_date: str | None = None
    completion_date: str | None = None
    verified_date: str | None = None
    enrollment: int | None = None
    """None when unknown (the API's 99999999 sentinel included)."""
    study_type: str | None = None
    status_text: str | None = None
    """The source's own words for the trial's status when they are not a registry value (a
    listing page's "Open", "Closed"); ``status`` is then None."""
    last_known_status: Status | None = None
    """The registry's ``lastKnownStatus`` of a study whose status is UNKNOWN."""
    condition_terms: tuple[str, ...] = ()
    """MeSH terms of the conditions and their ancestors (the registry's derivedSection):
    what a condition search matches besides the record's own words."""
    not_seen_since: str | None = None
    """ISO date of the full registry refresh that no longer found this study under the query
    that brought it in; such a trial is no longer called recruiting."""
    placed_by: str | None = None
    """Version of the placing rules and gazetteer that decided the sites' positions (None:
    positions as the source gave them)."""
    merged_with: Source | None = None
    """Of a registry record merged with a listing page (`merge.merge`): the page's source;
    None when the record is one source's copy."""
    status_source: Source | None = None
    """Of a merged record: the source the trial's status was taken from, the more recent of
    the two that states one (`merge.merge`)."""
    sites: tuple[Site, ...] = field(default_factory=tuple)

    @property
    def registry_url(self) -> str:
        return f"https://clinicaltrials.gov/study/{self.nct_id}"

    def replace(self, **changes: Any) -> Trial:
        return dataclasses.replace(self, **changes)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and tuples to plain JSON types (enums as their value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def trial_from_jsonable(data: dict[str, Any]) -> Trial:
    """Inverse of ``to_jsonable`` for a Trial (used for the bundled record and the store)."""

    def contact(d: dict[str, Any]) -> Contact:
        return Contact(**_known(Contact, d))

    def site(d: dict[str, Any]) -> Site:
        d = _known(Site, d)
        d["status"] = Status(d["status"]) if d.get("status") else None
        d["precision"] = Precision(d.get("precision") or Precision.UNKNOWN)
        d["contacts"] = tuple(contact(c) for c in d.get("contacts", ()))
        d["unrepaired"] = tuple(d.get("unrepaired", ()))
        d["matched"] = tuple(d.get("matched", ()))
        return Site(**d)

    d = _known(Trial, data)
    d["source"] = Source(**_known(Source, d["source"]))
    for key in ("merged_with", "status_source"):
        d[key] = Source(**_known(Source, d[key])) if d.get(key) else None
    d["status"] = Status(d["status"]) if d.get("status") else None
    d["last_known_status"] = (
        Status(d["last_known_status"]) if d.get("last_known_status") else None
    )
    d["arms"] = tuple(
        Arm(**{**_known(Arm, a), "interventions": tuple(a.get("interventions", ()))})
        for a in d.get("arms", ())
    )
    if d.get("eligibility"):
        d["eligibility"] = Eligibility(**_known(Eligibility, d["eligibility"]))
    for key in ("central_contacts", "officials"):
        d[key] = tuple(contact(c) for c in d.get(key, ()))
    for key in ("phases", "conditions", "keywords", "secondary_ids", "condition_terms"):
        d[key] = tuple(d.get(key, ()))
    d["sites"] = tuple(site(s) for s in d.get("sites", ()))
    return Trial(**d)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of ``cls``: a record written by another version
    (a field added or dropped since) still reads."""
    names = _field_names(cls)
    return {k: v for k, v in data.items() if k in names}


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))
