"""What the JSON's stable values mean, in the reader's language, for the pages.

The values come from the rules (`recruitment`, the geocoding chain) through `render`'s JSON;
this module only words them. JSON keys and values themselves are never translated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trialfinder.i18n import _


def where(site: Mapping[str, Any]) -> str:
    """ "Lyon, France"."""
    return ", ".join(p for p in (site.get("city"), site.get("country")) if p)


def standing_words(site: Mapping[str, Any]) -> str:
    """A site's status as a patient reads it."""
    standing = site.get("standing")
    if standing is None:  # JSON without the rule's standing: the recruiting flag
        standing = "recruiting" if site.get("recruiting") else "not_recruiting"
    words = {
        "recruiting": _("recruiting"),
        "not_yet_recruiting": _("not yet recruiting"),
        "not_recruiting": _("not recruiting"),
        "unknown": _("status unknown"),
        "not_stated": _("the record gives no status"),
    }
    return words.get(str(standing), str(standing))


def status_source_words(site: Mapping[str, Any]) -> str:
    """Where a site's status comes from."""
    words = {
        "site": _("the centre's own status"),
        "trial": _("the trial's status: the record gives none for this centre"),
        "page": _("the words of the listing page"),
        "listing_only": _("only a listing page names this centre"),
        "none": _("nothing in the record"),
    }
    source = str(site.get("status_from"))
    return words.get(source, source)


def precision_words(precision: str | None) -> str:
    words = {
        "facility": _("the building itself"),
        "postal code": _("the centre of its postal code area"),
        "city centre": _("the town centre"),
        "region": _("the centre of the region"),
        "unknown": _("unknown"),
    }
    return words.get(str(precision), str(precision))


def position_words(site: Mapping[str, Any]) -> str:
    """How precisely a site is placed, and by what."""
    text = precision_words(site.get("precision"))
    if site.get("coordinate_source"):
        text = _("{precision}, from {source}").format(
            precision=text, source=site["coordinate_source"]
        )
    return text


def registry_status_words(status: str | None) -> str:
    """A ClinicalTrials.gov status value ("ACTIVE_NOT_RECRUITING") as words."""
    words = {
        "RECRUITING": _("recruiting"),
        "NOT_YET_RECRUITING": _("not yet recruiting"),
        "ENROLLING_BY_INVITATION": _("enrolling by invitation"),
        "ACTIVE_NOT_RECRUITING": _("active, not recruiting"),
        "SUSPENDED": _("suspended"),
        "TERMINATED": _("terminated"),
        "COMPLETED": _("completed"),
        "WITHDRAWN": _("withdrawn"),
        "UNKNOWN": _("status unknown"),
        "WITHHELD": _("withheld"),
    }
    if not status:
        return _("not stated")
    return words.get(status, status.replace("_", " ").lower())
