"""Text and JSON renderings shared by the commands. Pure: values in, strings/dicts out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from trialfinder.models import Site, Source, Status, Trial

if TYPE_CHECKING:
    from trialfinder.gazetteer import Place, Resolution
    from trialfinder.geocode import Placement
    from trialfinder.queries import NearestAnswer, TrialView


def place_title(place: Place) -> str:
    """'Lyon (69), France', 'Valencia, Spain': the label, with the country once."""
    if place.country_name and not place.label.endswith(place.country_name):
        return f"{place.label}, {place.country_name}"
    return place.label


def place_json(place: Place) -> dict[str, Any]:
    return {
        "name": place.name,
        "country": place.country,
        "country_name": place.country_name,
        "region": place.region,
        "department": place.department,
        "postal_code": place.postal_code,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "precision": place.precision.value,
    }


def trial_json(view: TrialView) -> dict[str, Any]:
    trial = view.trial
    return {
        "nct_id": trial.nct_id,
        "title": trial.title,
        "acronym": trial.acronym,
        "status": trial.status.value if trial.status else None,
        "as_of": trial.source.as_of,
        "source": trial.source.description,
        "source_kind": trial.source.kind,
        "source_url": trial.source.url,
        "stale": view.stale,
        "registry_url": trial.registry_url,
    }


def site_json(site: Site, trial_status: Status | None, distance_km: float | None = None,
              *, with_distance: bool = False) -> dict[str, Any]:
    status = site.effective_status(trial_status)
    investigators = site.investigators
    data: dict[str, Any] = {
        "facility": site.facility,
        "facility_raw": site.facility_raw,
        "city": site.city,
        "state": site.state,
        "zip": site.zip,
        "country": site.country,
        "status": status.value,
        "status_from": "site" if site.status else "trial",
        "recruiting": status.is_recruiting,
    }
    if with_distance:
        data["distance_km"] = round(distance_km, 1) if distance_km is not None else None
    data.update(
        {
            "latitude": site.latitude,
            "longitude": site.longitude,
            "precision": site.precision.value,
            "coordinate_source": site.coordinate_source,
            "shared_position": site.shared_position,
            "investigator": investigators[0].display if investigators else None,
            "investigators": [c.display for c in investigators],
            "contacts": [
                {"name": c.name, "role": c.role, "title": c.title, "phone": c.phone,
                 "email": c.email}
                for c in site.contacts
            ],
            "unrepaired": list(site.unrepaired),
            "listing_match": site.listing_match,
        }
    )
    return data


Audience = Literal["terminal", "patient"]
"""Who reads the advice in a message: someone at the command line ("run trialfinder sync"),
or a patient on the web page, who cannot run commands."""


def nearest_json(answer: NearestAnswer, *, audience: Audience = "terminal") -> dict[str, Any]:
    trial = answer.view.trial
    return {
        "place": place_json(answer.resolution.place),
        "place_notes": list(answer.resolution.notes),
        "place_alternatives": [p.label for p in answer.resolution.alternatives],
        "trial": trial_json(answer.view),
        "warnings": warnings(answer.view, audience=audience),
        "sites": [
            site_json(r.site, trial.status, r.distance_km, with_distance=True)
            for r in answer.ranked
        ],
        "sites_matching": answer.total_matching,
    }


def sites_json(view: TrialView) -> dict[str, Any]:
    trial = view.trial
    return {
        "trial": trial_json(view),
        "warnings": warnings(view),
        "sites": [site_json(s, trial.status) for s in trial.sites],
    }


def warnings(view: TrialView, *, audience: Audience = "terminal") -> list[str]:
    from trialfinder.i18n import _

    out = []
    trial = view.trial
    source = trial.source
    refresh = (
        f"Refresh it with `trialfinder sync {trial.nct_id}` (needs network) and confirm with "
        "the site."
        if audience == "terminal"
        else _("Confirm with the site, or ask your oncologist to, before you travel.")
    )
    if view.stale and source.retrieved:
        out.append(
            f"This copy was fetched from the registry on {source.retrieved[:10]}, more than six "
            f"months ago: recruitment may have changed. {refresh}"
        )
    elif view.stale:
        out.append(
            f"This record dates from {source.as_of_label}, more than six months ago: "
            f"recruitment may have changed. {refresh}"
        )
    elif source.retrieved and _older_than_six_months(source):
        out.append(
            f"The registry record was last updated on {source.as_of_label}, more than six "
            "months before it was fetched: confirm recruitment with the site."
        )
    out.extend(view.notes)
    return out


def _older_than_six_months(source: Source) -> bool:
    from datetime import date

    from trialfinder.nearest import is_stale

    return is_stale(source.as_of_date(), date.fromisoformat(source.retrieved[:10]))  # type: ignore[index]


def provenance_lines(view: TrialView) -> list[str]:
    trial = view.trial
    status = trial.status.label if trial.status else "not stated"
    lines = [
        f"{trial.nct_id}: {trial.title}",
        f"Recorded trial status: {status}",
        f"Source: {trial.source.description}, as of {trial.source.as_of_label}"
        + (f" (fetched {trial.source.retrieved[:10]})" if trial.source.retrieved else ""),
    ]
    lines.extend(f"Warning: {w}" for w in warnings(view))
    return lines


def status_text(site: Site, status: Status) -> str:
    if site.status is None:
        return f"{status.label} (the trial's status; the record gives none for this site)"
    if site.status is not status:
        return f"{status.label} (the trial's status; the site is still marked {site.status.label})"
    return status.label


def position_text(site: Site) -> str:
    if not site.has_position:
        return "unknown (not placed: ranked last)"
    text = site.precision.value
    if site.coordinate_source:
        text += f" ({site.coordinate_source})"
    if site.shared_position:
        text += (
            "; shares this position with another site (equally distant: ranked by status, "
            "then name)"
        )
    return text


def site_block(index: int, site: Site, status: Status, distance_km: float | None) -> list[str]:
    where = ", ".join(p for p in (site.city, site.country) if p)
    head = f"{index}. {site.facility or '(facility not named)'} — {where}"
    if distance_km is not None:
        head += f" — {distance_km:.1f} km"
    lines = [head]
    investigators = site.investigators
    if investigators:
        lines.append("   Investigator: " + "; ".join(c.display for c in investigators))
    for contact in site.contacts:
        if contact.is_investigator and not (contact.phone or contact.email):
            continue
        bits = [contact.display] + [b for b in (contact.phone, contact.email) if b]
        lines.append("   Contact: " + ", ".join(bits))
    lines.append(f"   Status: {status_text(site, status)}")
    lines.append(f"   Position: {position_text(site)}")
    if site.unrepaired:
        lines.append(
            "   Note: the name may have lost accents here: " + ", ".join(site.unrepaired)
        )
    return lines


def nearest_text(answer: NearestAnswer) -> str:
    place = answer.resolution.place
    if answer.include_all:
        head = f"Nearest sites to {place_title(place)}"
    elif answer.view.stale:
        head = (
            f"Nearest sites recorded as recruiting in {answer.view.trial.source.as_of_label}, "
            f"to {place_title(place)}"
        )
    else:
        head = f"Nearest recruiting sites to {place_title(place)}"
    lines = [head]
    lines.extend(f"Note: {n}" for n in answer.resolution.notes)
    lines.extend(provenance_lines(answer.view))
    lines.append("")
    if not answer.ranked:
        lines.append(
            "No recruiting site in this record."
            if not answer.include_all
            else "This record lists no site."
        )
        if not answer.include_all and answer.view.trial.sites:
            lines.append("Use --all to see every site whatever its status.")
    for i, ranked in enumerate(answer.ranked, start=1):
        lines.extend(site_block(i, ranked.site, ranked.status, ranked.distance_km))
    shown, total = len(answer.ranked), answer.total_matching
    if total > shown:
        lines.append("")
        lines.append(f"Showing {shown} of {total}; use --limit to see more.")
    return "\n".join(lines)


def sites_text(view: TrialView) -> str:
    trial = view.trial
    lines = provenance_lines(view)
    lines.append(f"{len(trial.sites)} sites")
    lines.append("")
    for i, site in enumerate(trial.sites, start=1):
        lines.extend(site_block(i, site, site.effective_status(trial.status), None))
    return "\n".join(lines)


SITE_CSV_FIELDS = (
    "nct_id", "facility", "city", "state", "zip", "country", "status", "status_from",
    "investigators", "contacts", "contact_names", "contact_phones", "contact_emails", "latitude",
    "longitude", "precision", "coordinate_source", "facility_raw",
)
"""One row a site. ``contacts`` keeps each person with their own phone and e-mail
("Name (role): phone, email; …"); the contact_* columns list them for filtering."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula ("=HYPERLINK(…)", "+33 1 …",
    "-2+3", "@SUM(…)") gets a leading apostrophe, so it is shown as text (CSV injection).
    Control characters become U+FFFD (`trialfinder.terminal.printable`), as in every text
    output. Numbers (latitude, longitude) are left alone."""
    if not isinstance(value, str):
        return value
    from trialfinder.terminal import printable

    value = printable(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _contact_cell(contact: Any) -> str:
    text = contact.display
    if contact.role:
        text += f" ({contact.role.replace('_', ' ').lower()})"
    reach = ", ".join(b for b in (contact.phone, contact.email) if b)
    return f"{text}: {reach}" if reach else text


def site_csv_row(site: Site, trial: Trial) -> dict[str, Any]:
    data = site_json(site, trial.status)
    plain = [c for c in site.contacts if not c.is_investigator]
    row = {
        "nct_id": trial.nct_id,
        **{k: data[k] for k in ("facility", "city", "state", "zip", "country", "status",
                                "status_from", "latitude", "longitude", "precision",
                                "coordinate_source", "facility_raw")},
        "investigators": "; ".join(data["investigators"]),
        "contacts": "; ".join(_contact_cell(c) for c in site.contacts),
        "contact_names": "; ".join(c.name for c in plain),
        "contact_phones": "; ".join(c.phone for c in site.contacts if c.phone),
        "contact_emails": "; ".join(c.email for c in site.contacts if c.email),
    }
    return {k: csv_safe(v) for k, v in row.items()}


def sites_csv(view: TrialView, *, excel: bool = False) -> str:
    """Every site as CSV text: UTF-8 (a byte-order mark first when ``excel``, which older
    Excel needs to read accents), one row a site, "\n" line ends, formula-like cells
    neutralised by `csv_safe`."""
    import csv
    import io

    out = io.StringIO()
    if excel:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=SITE_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for site in view.trial.sites:
        writer.writerow(site_csv_row(site, view.trial))
    return out.getvalue()


# --- geocode and where (trialfinder.geocode) ----------------------------------------------


def geocode_json(placement: Placement, *, online: bool) -> dict[str, Any]:
    trial = placement.trial
    return {
        "nct_id": trial.nct_id,
        "online": online,
        "requests": placement.requests,
        "warnings": list(placement.warnings),
        "sites": [
            {
                "facility": s.facility,
                "city": s.city,
                "zip": s.zip,
                "country": s.country,
                "latitude": s.latitude,
                "longitude": s.longitude,
                "precision": s.precision.value,
                "source": s.coordinate_source,
                "shared_position": s.shared_position,
            }
            for s in trial.sites
        ],
    }


def geocode_text(placement: Placement, *, online: bool) -> str:
    from collections import Counter

    trial = placement.trial
    how = (
        f"online: {placement.requests} request(s) to Nominatim/OpenStreetMap"
        if online
        else "offline: record, geocode cache, bundled gazetteer"
    )
    lines = [f"{trial.nct_id}: {len(trial.sites)} sites ({how})", ""]
    for i, site in enumerate(trial.sites, start=1):
        where = ", ".join(p for p in (site.city, site.country) if p)
        lines.append(f"{i}. {site.facility or '(facility not named)'} — {where}")
        point = (
            f"{site.latitude:.4f}, {site.longitude:.4f} — "
            if site.latitude is not None and site.longitude is not None
            else ""
        )
        lines.append(f"   Position: {point}{position_text(site)}")
    counts = Counter(s.precision.value for s in trial.sites)
    lines.append("")
    lines.append("Precision: " + ", ".join(f"{n} {p}" for p, n in counts.most_common()))
    lines.extend(f"Warning: {w}" for w in placement.warnings)
    return "\n".join(lines)


def where_json(resolution: Resolution) -> dict[str, Any]:
    return {
        "query": resolution.query,
        "place": place_json(resolution.place),
        "label": resolution.place.label,
        "corrected_from": resolution.corrected_from,
        "alternatives": [p.label for p in resolution.alternatives],
        "notes": list(resolution.notes),
    }


def where_text(resolution: Resolution) -> str:
    place = resolution.place
    country = f"{place.country_name} ({place.country})" if place.country else place.country_name
    lines = [
        f"{resolution.query!r} resolves to {place.label}",
        f"Name: {place.name}",
        f"Region: {place.region or 'not known'}",
        f"Department: {place.department or 'not known'}",
        f"Country: {country or 'not known'}",
        f"Postal code: {place.postal_code or 'none'}",
        f"Position: {place.latitude:.4f}, {place.longitude:.4f} ({place.precision.value})",
    ]
    if resolution.corrected_from:
        lines.append(f"Corrected from: {resolution.corrected_from}")
    others = [p.label for p in resolution.alternatives]
    lines.append("Other candidates: " + ("; ".join(others) if others else "none"))
    lines.extend(f"Note: {n}" for n in resolution.notes)
    return "\n".join(lines)
