"""The one rule for how old a record is, and what the user must be told about it.

Two different ages, two different messages:

- **The copy**: when this copy of the record was taken. A registry record synced today is a
  fresh copy, whatever its content says; a listing page is as old as its "last updated"
  date. A copy older than six months gets a *warning*: refresh it.
- **The sponsor's word**: when the sponsor last updated or verified the record (registry
  records). Older than six months before the copy was taken, it gets a *caution*: confirm
  recruitment with the site. (A listing page's date is both: its copy is its word.)

Every output (nearest, sites, show, search, maps, the referral sheet, the web page) takes
these from `freshness`, and says the age in plain words with `age_words`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from trialfinder import clock
from trialfinder.i18n import _, format_date, ngettext
from trialfinder.models import Trial

STALE_AFTER_DAYS = 183
"""Six months: older than this, a copy gets a warning and a sponsor's word a caution."""


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a record is, in both senses, on a given day."""

    copy_date: date
    """When this copy was taken: the fetch date of a registry record, the page's date of a
    listing (date.min when the page gives none)."""
    copy_label: str
    """The copy's date as precise as known, ISO: "2026-11-20", "2019-01"; "" when unknown."""
    fetched: bool
    """True when ``copy_date`` is a fetch (registry sync), False when it is the source's own
    date (a listing page)."""
    stale: bool
    """The copy is more than six months old: warn, and tell how to refresh."""
    sponsor_date: date | None
    """The newest of the record's last update and status verification (registry records)."""
    sponsor_label: str | None
    """``sponsor_date`` as the record gives it, ISO (maybe partial)."""
    unconfirmed: bool
    """The sponsor's word was more than six months old when the copy was taken: caution."""
    today: date

    @property
    def copy_age_days(self) -> int:
        return (self.today - self.copy_date).days


def freshness(trial: Trial, today: date | None = None) -> Freshness:
    """How old ``trial`` is on ``today`` (default: the real today)."""
    today = today or clock.today()
    source = trial.source
    if source.retrieved:
        copy_label = source.retrieved[:10]
        copy_date = parse_partial_date(copy_label) or date.min
        fetched = True
    else:
        copy_label = source.as_of or ""
        copy_date = parse_partial_date(copy_label) or date.min
        fetched = False
    sponsor_label = _newest(trial.last_update, trial.verified_date,
                            source.as_of if fetched else None)
    sponsor_date = parse_partial_date(sponsor_label) if sponsor_label else None
    unconfirmed = (
        fetched and sponsor_date is not None
        and (copy_date - sponsor_date).days > STALE_AFTER_DAYS
    )
    return Freshness(
        copy_date=copy_date,
        copy_label=copy_label,
        fetched=fetched,
        stale=(today - copy_date).days > STALE_AFTER_DAYS,
        sponsor_date=sponsor_date,
        sponsor_label=sponsor_label,
        unconfirmed=unconfirmed,
        today=today,
    )


def parse_partial_date(text: str | None) -> date | None:
    """'2019' / '2019-01' / '2019-01-31' (or a timestamp) -> the first day it may mean."""
    if not text:
        return None
    try:
        parts = [int(p) for p in text[:10].split("-")]
        while len(parts) < 3:
            parts.append(1)
        return date(parts[0], parts[1], parts[2])
    except ValueError:
        return None


def _newest(*labels: str | None) -> str | None:
    found = newest_dated(*labels)
    return found[1] if found else None


def newest_dated(*labels: str | None) -> tuple[date, str] | None:
    """The newest of these dates (a partial one counts from its first day) and its label as
    given; None when none reads as a date."""
    dated = [(d, label) for label in labels if label and (d := parse_partial_date(label))]
    return max(dated) if dated else None


def date_words(label: str) -> str:
    """An ISO date as precise as it is, in the current language: "January 2019", "15 March
    2024", "2019" ("janvier 2019", "15 mars 2024" in French); "an unknown date" for ""."""
    if not label:
        return _("an unknown date")
    parts = label[:10].split("-")
    try:
        year = int(parts[0])
        if len(parts) == 1:
            return str(year)
        if len(parts) == 2:
            return format_date(date(year, int(parts[1]), 1), day=False)
        return format_date(date(year, int(parts[1]), int(parts[2])))
    except (ValueError, IndexError):
        return label


def age_words(then: date, today: date) -> str:
    """How long ago, in plain words: "today", "3 days ago", "5 months ago", "about a year
    ago", "almost 8 years ago", "over 2 years ago"."""
    days = (today - then).days
    if days < 0:
        return _("in the future")
    if days == 0:
        return _("today")
    if days == 1:
        return _("yesterday")
    if days < 14:
        return ngettext("{n} day ago", "{n} days ago", days).format(n=days)
    if days < 60:
        weeks = round(days / 7)
        return ngettext("{n} week ago", "{n} weeks ago", weeks).format(n=weeks)
    months = (today.year - then.year) * 12 + today.month - then.month - (today.day < then.day)
    if months < 12:
        months = max(months, 2)
        return ngettext("{n} month ago", "{n} months ago", months).format(n=months)
    years, rest = divmod(months, 12)
    if rest >= 9:
        return ngettext("almost {n} year ago", "almost {n} years ago", years + 1).format(
            n=years + 1)
    if rest >= 3:
        if years == 1:
            return _("over a year ago")
        return ngettext("over {n} year ago", "over {n} years ago", years).format(n=years)
    if years == 1:
        return _("about a year ago")
    return ngettext("about {n} year ago", "about {n} years ago", years).format(n=years)


def as_of_words(label: str, then: date, today: date) -> str:
    """"January 2019, almost 8 years ago"; "an unknown date" when the date is unknown."""
    if not label or then == date.min:
        return _("an unknown date")
    return _("{date}, {age}").format(date=date_words(label), age=age_words(then, today))


# -- what every output says about age -------------------------------------------------------


def age_sentence(fresh: Freshness, source: str) -> str:
    """How old the information is, in plain words: "Information as of January 2019, almost
    6 years ago (source: CenterWatch-style listing page)." or "Information fetched from the
    registry on 1 March 2025, today; last updated by the sponsor: May 2023, almost 2 years
    ago."."""
    copy = as_of_words(fresh.copy_label, fresh.copy_date, fresh.today)
    if not fresh.fetched:
        return _("Information as of {when} (source: {source}).").format(when=copy,
                                                                        source=source)
    if fresh.sponsor_label and fresh.sponsor_date is not None:
        sponsor = as_of_words(fresh.sponsor_label, fresh.sponsor_date, fresh.today)
        return _("Information fetched from the registry on {when}; last updated by the "
                 "sponsor: {sponsor}.").format(when=copy, sponsor=sponsor)
    return _("Information fetched from the registry on {when}.").format(when=copy)


def copy_warning(fresh: Freshness, nct_id: str, *, terminal: bool = True) -> str | None:
    """The warning for a copy more than six months old (None when fresh). ``terminal``:
    advise the `trialfinder sync` command; else (a patient on the web page) only to confirm
    with the site."""
    if not fresh.stale:
        return None
    when = as_of_words(fresh.copy_label, fresh.copy_date, fresh.today)
    if fresh.fetched:
        head = _("This copy was fetched from the registry on {when}: recruitment may have "
                 "changed since.").format(when=when)
    elif fresh.copy_date == date.min:
        head = _("This record gives no date: recruitment may have changed since.")
    else:
        head = _("This record dates from {when}: recruitment may have changed since.").format(
            when=when)
    if terminal:
        advice = _("Refresh it with `trialfinder sync {nct_id}` (needs network) and confirm "
                   "with the site.").format(nct_id=nct_id)
    else:
        advice = _("Confirm with the site before you go.")
    return f"{head} {advice}"


def sponsor_caution(fresh: Freshness) -> str | None:
    """The caution for a sponsor's word more than six months older than the copy (None
    otherwise)."""
    if not fresh.unconfirmed or fresh.sponsor_date is None or fresh.sponsor_label is None:
        return None
    return _("Last updated or verified by the sponsor: {when}. Confirm recruitment with "
             "the site.").format(
        when=as_of_words(fresh.sponsor_label, fresh.sponsor_date, fresh.today))


def messages(fresh: Freshness, nct_id: str, *, terminal: bool = True) -> list[str]:
    """Both messages that apply, the warning first."""
    return [m for m in (copy_warning(fresh, nct_id, terminal=terminal), sponsor_caution(fresh))
            if m]
