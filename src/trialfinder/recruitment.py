"""The one rule for whether a trial or a site is recruiting, and why.

Every output (nearest, sites, show, search, maps, exports, the web page) asks here; none
decides from a raw status itself. The rule, in order:

- A record that states no status is "not stated", not the registry's UNKNOWN.
- A listing page's own words ("Open", "Closed") mean recruiting / not recruiting / not stated;
  no registry status is invented from them.
- The registry's UNKNOWN is "status unknown", with its last known status. So is a
  recruiting-type status whose ``statusVerifiedDate`` is more than two years old: the
  registry itself turns such a record to UNKNOWN, and a copy taken before it did must not go
  on calling it recruiting.
- A site's own status wins over the trial's, except that a site still marked recruiting is
  not believed when the trial as a whole is not recruiting (closed, suspended, not yet open)
  or its status is unknown: registries leave site statuses stale when a trial closes.
- A site that only a listing page names (the registry no longer lists it) is "status unknown".
- A study that a full registry refresh no longer returns is "status unknown" (not seen since).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from trialfinder import clock
from trialfinder.freshness import date_words, parse_partial_date
from trialfinder.i18n import _
from trialfinder.models import Site, Status, Trial

UNVERIFIED_AFTER_YEARS = 2
"""The registry calls a recruiting-type status UNKNOWN when not verified for this long."""

RECRUITING_TYPE = frozenset({
    Status.RECRUITING,
    Status.NOT_YET_RECRUITING,
    Status.ENROLLING_BY_INVITATION,
    Status.ACTIVE_NOT_RECRUITING,
})
"""Statuses that the registry turns to UNKNOWN when their verification grows old."""


class Standing(StrEnum):
    """What a status means for a patient looking for a site (JSON values: stable)."""

    RECRUITING = "recruiting"
    NOT_YET_RECRUITING = "not_yet_recruiting"
    NOT_RECRUITING = "not_recruiting"
    UNKNOWN = "unknown"
    """The registry's UNKNOWN, a status unverified for two years, or a site only a listing
    names."""
    NOT_STATED = "not_stated"
    """The record gives no status at all."""


class StatusFrom(StrEnum):
    """Where a status comes from (JSON values: stable)."""

    SITE = "site"
    """The site's own recorded status."""
    TRIAL = "trial"
    """The trial's overall status (the record gives none for the site, or the site's own
    cannot be believed)."""
    PAGE = "page"
    """A listing page's own words for the trial's status."""
    LISTING_ONLY = "listing_only"
    """The site is named by a listing page but not by the registry record."""
    NONE = "none"
    """Nothing in the record."""


@dataclass(frozen=True, slots=True)
class Recruitment:
    """A status as a patient must read it: the standing, and what it rests on."""

    standing: Standing
    status: Status | None
    """The registry status it rests on; None when not stated or from a page's words."""
    status_from: StatusFrom
    recorded: Status | None = None
    """The site's own recorded status when it differs from ``status`` (a site "still marked
    recruiting" in a closed trial)."""
    last_known: Status | None = None
    """For UNKNOWN: the last status known (the registry's lastKnownStatus, or the status
    whose verification is too old)."""
    verified: str | None = None
    """For UNKNOWN from age: the ISO (maybe partial) date the status was last verified."""
    words: str | None = None
    """For a page's status: the page's own words ("Open")."""
    not_seen_since: str | None = None
    """For UNKNOWN: the registry's full refresh stopped returning the study on this date."""

    @property
    def recruiting(self) -> bool:
        """Only this is ever offered to a patient as recruiting."""
        return self.standing is Standing.RECRUITING


_STANDING_OF = {
    Status.RECRUITING: Standing.RECRUITING,
    Status.NOT_YET_RECRUITING: Standing.NOT_YET_RECRUITING,
    Status.UNKNOWN: Standing.UNKNOWN,
    Status.WITHHELD: Standing.UNKNOWN,
}

# A listing page's words (folded: lower case, single spaces), by what they mean.
_PAGE_WORDS = {
    Standing.RECRUITING: (
        "open", "recruiting", "actively recruiting", "open to enrollment",
        "open to enrolment", "enrolling", "currently recruiting", "recrutement en cours",
        "ouvert", "en cours de recrutement",
    ),
    Standing.NOT_YET_RECRUITING: (
        "not yet recruiting", "not yet open", "opening soon", "pas encore ouvert",
    ),
    Standing.NOT_RECRUITING: (
        "closed", "completed", "terminated", "suspended", "withdrawn", "not recruiting",
        "active, not recruiting", "active not recruiting", "closed to enrollment",
        "closed to enrolment", "no longer recruiting", "recruitment closed",
        "recruitment complete", "enrollment closed", "ferme", "fermé", "clos", "termine",
        "terminé", "recrutement termine", "recrutement terminé",
    ),
}
_PAGE_STANDING = {words: standing for standing, all_words in _PAGE_WORDS.items()
                  for words in all_words}


def page_standing(words: str | None) -> Standing:
    """What a listing page's status words mean; NOT_STATED when none or not understood."""
    if not words:
        return Standing.NOT_STATED
    key = " ".join(words.strip().strip(".").lower().split())
    return _PAGE_STANDING.get(key, Standing.NOT_STATED)


def standing_of(status: Status) -> Standing:
    """The standing of a registry status taken at its word (no date rule)."""
    return _STANDING_OF.get(status, Standing.NOT_RECRUITING)


def unverified_since(trial: Trial, today: date | None = None) -> str | None:
    """The verification date when it is too old for a recruiting-type status, else None."""
    limit = verification_expires(trial)
    if limit is None:
        return None
    return trial.verified_date if (today or clock.today()) > limit else None


def verification_expires(trial: Trial) -> date | None:
    """The last day a recruiting-type status still counts as verified (the day the 2-year
    rule turns it to UNKNOWN is the next); None when the rule does not apply. For indexes
    that store a standing computed on one day and must still be right on a later one."""
    if trial.status not in RECRUITING_TYPE or not trial.verified_date:
        return None
    verified = parse_partial_date(trial.verified_date)
    if verified is None:
        return None
    try:
        return verified.replace(year=verified.year + UNVERIFIED_AFTER_YEARS)
    except ValueError:  # 29 February
        return verified.replace(year=verified.year + UNVERIFIED_AFTER_YEARS, day=28)


def trial_recruitment(trial: Trial, today: date | None = None) -> Recruitment:
    """The trial's overall status as a patient must read it."""
    status = trial.status
    if trial.not_seen_since:
        return Recruitment(Standing.UNKNOWN, status, StatusFrom.TRIAL,
                           last_known=status if status is not Status.UNKNOWN
                           else trial.last_known_status,
                           not_seen_since=trial.not_seen_since)
    if status is None:
        if trial.status_text:
            return Recruitment(page_standing(trial.status_text), None, StatusFrom.PAGE,
                               words=trial.status_text)
        return Recruitment(Standing.NOT_STATED, None, StatusFrom.NONE)
    if status is Status.UNKNOWN:
        return Recruitment(Standing.UNKNOWN, status, StatusFrom.TRIAL,
                           last_known=trial.last_known_status, verified=trial.verified_date)
    verified = unverified_since(trial, today)
    if verified is not None:
        return Recruitment(Standing.UNKNOWN, Status.UNKNOWN, StatusFrom.TRIAL,
                           last_known=status, verified=verified)
    return Recruitment(standing_of(status), status, StatusFrom.TRIAL)


def site_recruitment(
    site: Site, trial: Trial, today: date | None = None, *,
    overall: Recruitment | None = None,
) -> Recruitment:
    """A site's status as a patient must read it. ``overall``: the trial's, when the caller
    already has it (`trial_recruitment` of the same trial and day)."""
    overall = overall or trial_recruitment(trial, today)
    if site.listing_only:
        return Recruitment(Standing.UNKNOWN, None, StatusFrom.LISTING_ONLY,
                           recorded=site.status)
    own = site.status
    if own is None:
        return overall
    if overall.standing is Standing.UNKNOWN:
        # Nothing in a record whose status is unknown is verified, the site's status included.
        last_known = own if own is not Status.UNKNOWN else overall.last_known
        return Recruitment(Standing.UNKNOWN, overall.status, StatusFrom.TRIAL, recorded=own,
                           last_known=last_known, verified=overall.verified,
                           not_seen_since=overall.not_seen_since)
    own_standing = standing_of(own)
    if own_standing is Standing.RECRUITING and overall.standing in (
        Standing.NOT_RECRUITING, Standing.NOT_YET_RECRUITING
    ) and trial.status is not Status.ENROLLING_BY_INVITATION:
        return Recruitment(overall.standing, overall.status, overall.status_from, recorded=own,
                           words=overall.words)
    return Recruitment(own_standing, own, StatusFrom.SITE)


# -- words ------------------------------------------------------------------------------------

STANDING_ORDER = {
    Standing.RECRUITING: 0,
    Standing.NOT_YET_RECRUITING: 1,
    Standing.NOT_RECRUITING: 2,
    Standing.UNKNOWN: 3,
    Standing.NOT_STATED: 4,
}
"""How statuses are ordered among sites that are equally near: recruiting first."""


def status_label(status: Status) -> str:
    """A registry status in words: "Recruiting", "Active, not recruiting", "Completed"."""
    labels = {
        Status.RECRUITING: _("Recruiting"),
        Status.NOT_YET_RECRUITING: _("Not yet recruiting"),
        Status.ENROLLING_BY_INVITATION: _("Enrolling by invitation"),
        Status.ACTIVE_NOT_RECRUITING: _("Active, not recruiting"),
        Status.SUSPENDED: _("Suspended"),
        Status.TERMINATED: _("Terminated"),
        Status.COMPLETED: _("Completed"),
        Status.WITHDRAWN: _("Withdrawn"),
        Status.AVAILABLE: _("Available"),
        Status.NO_LONGER_AVAILABLE: _("No longer available"),
        Status.TEMPORARILY_NOT_AVAILABLE: _("Temporarily not available"),
        Status.APPROVED_FOR_MARKETING: _("Approved for marketing"),
        Status.WITHHELD: _("Withheld"),
        Status.UNKNOWN: _("Unknown"),
    }
    return labels[status]


def status_words(answer: Recruitment) -> str:
    """The status as a person must read it, in one phrase that stands alone: "Recruiting",
    "Status unknown (last known: recruiting, not verified since September 2022)", "No status
    in the record", or a listing page's own words as the page gave them."""
    if answer.standing is Standing.UNKNOWN:
        return unknown_words(answer)
    if answer.status_from is StatusFrom.PAGE and answer.status is None:
        if answer.standing is Standing.NOT_STATED:
            return _("“{words}” (as the listing page says; not understood as a status)").format(
                words=answer.words)
        return _("“{words}” (as the listing page says)").format(words=answer.words)
    if answer.status is None:
        return _("No status in the record")
    return status_label(answer.status)


def unknown_words(answer: Recruitment) -> str:
    """"Status unknown (last known: recruiting, not verified since September 2022)"."""
    if answer.status_from is StatusFrom.LISTING_ONLY:
        return _("Status unknown (the listing page names this site; the registry record does "
                 "not)")
    last = status_label(answer.last_known).lower() if answer.last_known else None
    if answer.not_seen_since:
        since = date_words(answer.not_seen_since)
        if last:
            return _("Status unknown (last known: {status}; no longer returned by the registry "
                     "since {date})").format(status=last, date=since)
        return _("Status unknown (no longer returned by the registry since {date})").format(
            date=since)
    if last and answer.verified:
        return _("Status unknown (last known: {status}, not verified since {date})").format(
            status=last, date=date_words(answer.verified))
    if last:
        return _("Status unknown (last known: {status})").format(status=last)
    if answer.verified:
        return _("Status unknown (not verified since {date})").format(
            date=date_words(answer.verified))
    return _("Status unknown")


def status_source_words(answer: Recruitment, site: Site | None = None) -> str:
    """Where a status comes from, for the details: "the site's own status", "the trial's
    status; the record gives none for this site", …"""
    if answer.status_from is StatusFrom.SITE:
        return _("the site's own status")
    if answer.status_from is StatusFrom.LISTING_ONLY:
        return _("the listing page names this site; the registry record does not")
    if answer.status_from is StatusFrom.PAGE:
        return _("the listing page's own words for the trial")
    if answer.status_from is StatusFrom.NONE:
        return _("the record gives no status")
    if site is None:
        return _("the trial's overall status")
    recorded = answer.recorded
    if answer.standing is Standing.UNKNOWN and recorded is not None:
        return _("the trial's status is unknown: the site's own is not verified either")
    if recorded is not None and recorded is not answer.status:
        return _("the trial's status; the site is still marked {status}").format(
            status=status_label(recorded).lower())
    if site.status is None:
        return _("the trial's status; the record gives none for this site")
    return _("the trial's status")


def status_with_source(answer: Recruitment, site: Site | None = None) -> str:
    """"Recruiting (the site's own status)": the status and where it comes from, in one
    phrase; a listing page's words say their source themselves."""
    if answer.status_from is StatusFrom.PAGE:
        return status_words(answer)
    return _("{status} ({source})").format(status=status_words(answer),
                                           source=status_source_words(answer, site))
