"""Text and JSON renderings shared by the commands. Pure: values in, strings/dicts out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trialfinder.models import Site, Status, Trial

if TYPE_CHECKING:
    from trialfinder.gazetteer import Place
    from trialfinder.nearest import RankedSite
    from trialfinder.queries import NearestAnswer, TrialView


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


def nearest_json(answer: NearestAnswer) -> dict[str, Any]:
    trial = answer.view.trial
    return {
        "place": place_json(answer.resolution.place),
        "place_notes": list(answer.resolution.notes),
        "place_alternatives": [p.label for p in answer.resolution.alternatives],
        "trial": trial_json(answer.view),
        "warnings": warnings(answer.view),
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


def warnings(view: TrialView) -> list[str]:
    out = []
    trial = view.trial
    if view.stale:
        out.append(
            f"This record dates from {trial.source.as_of_label}, more than six months ago: "
            "recruitment may have changed. Refresh it with "
            f"`trialfinder sync {trial.nct_id}` (needs network) and confirm with the site."
        )
    out.extend(view.notes)
    return out


def provenance_lines(view: TrialView) -> list[str]:
    trial = view.trial
    status = trial.status.label if trial.status else "not stated"
    lines = [
        f"{trial.nct_id}: {trial.title}",
        f"Recorded trial status: {status}",
        f"Source: {trial.source.description}, as of {trial.source.as_of_label}",
    ]
    lines.extend(f"Warning: {w}" for w in warnings(view))
    return lines


def status_text(site: Site, status: Status) -> str:
    if site.status is not None:
        return status.label
    return f"{status.label} (the trial's status; the record gives none for this site)"


def position_text(site: Site) -> str:
    if not site.has_position:
        return "unknown (not placed: ranked last)"
    text = site.precision.value
    if site.coordinate_source:
        text += f" ({site.coordinate_source})"
    if site.shared_position:
        text += "; shares this position with another site"
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
    which = "sites" if answer.include_all else "recruiting sites"
    lines = [f"Nearest {which} to {place.label}, {place.country_name}"]
    lines.extend(f"Note: {n}" for n in answer.resolution.notes)
    lines.extend(provenance_lines(answer.view))
    lines.append("")
    if not answer.ranked:
        lines.append(
            "No recruiting site in this record."
            if not answer.include_all
            else "This record lists no site."
        )
        if not answer.include_all:
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
    "facility", "city", "state", "zip", "country", "status", "status_from", "investigators",
    "contact_names", "contact_phones", "contact_emails", "latitude", "longitude", "precision",
    "coordinate_source", "facility_raw",
)


def site_csv_row(site: Site, trial: Trial) -> dict[str, Any]:
    data = site_json(site, trial.status)
    plain = [c for c in site.contacts if not c.is_investigator]
    return {
        **{k: data[k] for k in ("facility", "city", "state", "zip", "country", "status",
                                "status_from", "latitude", "longitude", "precision",
                                "coordinate_source", "facility_raw")},
        "investigators": "; ".join(data["investigators"]),
        "contact_names": "; ".join(c.name for c in plain),
        "contact_phones": "; ".join(c.phone for c in site.contacts if c.phone),
        "contact_emails": "; ".join(c.email for c in site.contacts if c.email),
    }
