"""The domain's values in the words a person reads: a place's title, a distance, how precise a
position is and what matched, why a site is unplaced, where a position or a record comes from,
a contact's role, an arm's type, a field a record lacks.

Shared by the renderings (render.py, the map, the referral sheet, the web page) and by the
library's own messages (geocoding notes, the status origin of a merged record, errors), so a
value is said the same way everywhere, in the current language. Pure: values in, words out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trialfinder.i18n import (
    DEFAULT_LANGUAGE,
    _,
    country_code,
    country_name,
    current_language,
    format_decimal,
    pgettext,
)
from trialfinder.models import Precision

if TYPE_CHECKING:
    from trialfinder.gazetteer import Place
    from trialfinder.models import Site


def place_title(place: Place) -> str:
    """'Lyon (69), France', 'Valencia, Spain': the label, with the country once."""
    label, country = place.label, place.country_words
    if country and not label.endswith(country):
        return f"{label}, {country}"
    return label


def distance_words(km: float, *, plain: bool = False) -> str:
    """"3.8 km", "8,650.0 km" (as the current language writes numbers). ``plain`` (the
    answer a patient reads first, as on the web page): "less than 1 km" under a kilometre,
    since positions are rarely that precise (often both are a town's centre)."""
    if plain and km < 1:
        return _("less than 1 km")
    return _("{km} km").format(km=format_decimal(km, 1))


def precision_words(precision: Precision) -> str:
    """A position's precision in words: "city centre", "postal code area", "facility"."""
    words = {
        Precision.FACILITY: _("facility"),
        Precision.POSTAL_CODE: _("postal code area"),
        Precision.CITY: _("city centre"),
        # TRANSLATORS: a patient's place that is a region, department or overseas territory.
        Precision.REGION: pgettext("position precision", "region"),
        Precision.UNKNOWN: _("position of unknown precision"),
    }
    return words.get(precision, precision.value)


def precision_name(precision: Precision) -> str:
    """A precision by its own name ("city centre", "postal code", "facility"), as `where`
    and `geocode` show it; `precision_words` says it for a site's position."""
    names = {
        Precision.FACILITY: pgettext("precision", "facility"),
        Precision.POSTAL_CODE: pgettext("precision", "postal code"),
        Precision.CITY: pgettext("precision", "city centre"),
        Precision.REGION: pgettext("precision", "region"),
        Precision.UNKNOWN: pgettext("precision", "unknown"),
    }
    return names.get(precision, precision.value)


def unplaced_words(reason: str | None) -> str:
    """Why a site has no position, from `Site.unplaced_reason` (a short stable code)."""
    if not reason:
        return _("position unknown")
    reasons = {
        "ambiguous": _("several places have this name and the record does not say which"),
        "state differs": _("no place of this name in the record's state or province"),
        "postal code differs": _("the record's postal code does not match the city"),
        "not found": _("the city is not in the gazetteer"),
        "country unknown": _("the record's country is not known"),
        "registry position outside country": _("the registry's coordinates are not in the "
                                               "record's country"),
    }
    return _("position unknown ({reason})").format(reason=reasons.get(reason, reason))


def matched_words(field: str) -> str:
    """An address field a position agrees with (`Site.matched`): "city", "state", "postal
    code"."""
    words = {
        "city": pgettext("address field", "city"),
        "state": pgettext("address field", "state"),
        "postal code": pgettext("address field", "postal code"),
        "country": pgettext("address field", "country"),
    }
    return words.get(field, field)


def source_words(source: str) -> str:
    """Where a position comes from (`Site.coordinate_source`), as a person reads it: the
    labels trialfinder itself stores are translated; others (a geocoder's name and date)
    are shown as they are."""
    words = {  # geocode.GAZETTEER_SOURCE, registry.GEOPOINT_SOURCE (not imported: they
        # would load the geocoder and the HTTP client into every presentation)
        "bundled gazetteer": _("bundled gazetteer"),
        "ClinicalTrials.gov geoPoint (city centre)": _(
            "ClinicalTrials.gov geoPoint (city centre)"),
    }
    return words.get(source, source)


def record_source_words(description: str) -> str:
    """What a record was read from (`Source.description`), as a person reads it: the labels
    trialfinder itself stores are translated, others shown as they are."""
    words = {  # listing.SOURCE_DESCRIPTION, registry.SOURCE_DESCRIPTION
        "CenterWatch-style listing page": _("CenterWatch-style listing page"),
        "ClinicalTrials.gov API v2": _("ClinicalTrials.gov API v2"),
    }
    return words.get(description, description)


def role_words(role: str) -> str:
    """A contact's role as the registry codes it, in words: "principal investigator"."""
    words = {
        "PRINCIPAL_INVESTIGATOR": pgettext("contact role", "principal investigator"),
        "SUB_INVESTIGATOR": pgettext("contact role", "sub investigator"),
        "STUDY_CHAIR": pgettext("contact role", "study chair"),
        "STUDY_DIRECTOR": pgettext("contact role", "study director"),
        "CONTACT": pgettext("contact role", "contact"),
    }
    return words.get(role, role.replace("_", " ").lower())


def arm_type_words(kind: str) -> str:
    """An arm's type as the registry codes it, in words: "experimental", "active comparator"."""
    words = {
        "EXPERIMENTAL": pgettext("arm type", "experimental"),
        "ACTIVE_COMPARATOR": pgettext("arm type", "active comparator"),
        "PLACEBO_COMPARATOR": pgettext("arm type", "placebo comparator"),
        "SHAM_COMPARATOR": pgettext("arm type", "sham comparator"),
        "NO_INTERVENTION": pgettext("arm type", "no intervention"),
        "OTHER": pgettext("arm type", "other"),
    }
    return words.get(kind, kind.replace("_", " ").lower())


def field_words(field: str) -> str:
    """A field a listing-page record lacks (`summary_json`'s ``not_in_record``), in words."""
    words = {
        "phase": pgettext("record field", "phase"),
        "sponsor": pgettext("record field", "sponsor"),
        "conditions": pgettext("record field", "conditions"),
        "arms": pgettext("record field", "arms"),
        "eligibility": pgettext("record field", "eligibility"),
        "contacts": pgettext("record field", "contacts"),
    }
    return words.get(field, field)


def address_words(city: str | None, country: str | None, *, zip_code: str | None = None,
                  state: str | None = None) -> str:
    """Where a site is, as every output writes it: "Lyon, France", or with what else the
    record gives, "Boston, 02115, Massachusetts, États-Unis"; the country as the current
    language names it."""
    named = _country_words(country) if country else None
    return ", ".join(p for p in (city, zip_code, state, named) if p)


def _country_words(name: str) -> str:
    """A record's country in the current language: CLDR's name, found from CLDR's own names
    or, for the registry's ISO forms CLDR lacks ("Korea, Republic of", "Russian
    Federation"), from the gazetteer's; a name neither knows is kept as written."""
    if current_language() == DEFAULT_LANGUAGE or country_code(name) is not None:
        return country_name(name)
    from trialfinder.gazetteer import record_country_code

    return country_name(name, record_country_code(name))


def facility_words(site: Site) -> str:
    """A site's facility as every output names it: "(facility not named)" when the record
    gives none."""
    return site.facility or _("(facility not named)")


def site_where(site: Site, *, full: bool = False) -> str:
    """`address_words` of a site: city and country, and with ``full`` its postal code and
    state too (the map's popups, the referral sheet, the oncologist's page)."""
    if full:
        return address_words(site.city, site.country, zip_code=site.zip, state=site.state)
    return address_words(site.city, site.country)
