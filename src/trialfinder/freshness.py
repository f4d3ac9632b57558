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

import calendar
from dataclasses import dataclass
from datetime import date

from trialfinder import clock
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
    dated = [(d, label) for label in labels if label and (d := parse_partial_date(label))]
    return max(dated)[1] if dated else None


def date_words(label: str) -> str:
    """An ISO date as precise as it is, in English: "January 2019", "15 March 2024", "2019";
    "an unknown date" for ""."""
    if not label:
        return "an unknown date"
    parts = label[:10].split("-")
    try:
        year = int(parts[0])
        if len(parts) == 1:
            return str(year)
        month = calendar.month_name[int(parts[1])]
        if len(parts) == 2:
            return f"{month} {year}"
        return f"{int(parts[2])} {month} {year}"
    except (ValueError, IndexError):
        return label


def age_words(then: date, today: date) -> str:
    """How long ago, in plain English: "today", "3 days ago", "5 months ago", "about a year
    ago", "almost 8 years ago", "over 2 years ago"."""
    days = (today - then).days
    if days < 0:
        return "in the future"
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    if days < 60:
        return f"{round(days / 7)} weeks ago"
    months = (today.year - then.year) * 12 + today.month - then.month - (today.day < then.day)
    if months < 12:
        return f"{max(months, 2)} months ago"
    years, rest = divmod(months, 12)
    if rest >= 9:
        return f"almost {years + 1} years ago"
    if rest >= 3:
        return f"over {'a year' if years == 1 else f'{years} years'} ago"
    return "about a year ago" if years == 1 else f"about {years} years ago"


def as_of_words(label: str, then: date, today: date) -> str:
    """"January 2019, almost 8 years ago"; "an unknown date" when the date is unknown."""
    if not label or then == date.min:
        return "an unknown date"
    return f"{date_words(label)}, {age_words(then, today)}"
