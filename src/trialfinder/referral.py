"""A one-page printable referral sheet: the trial, its key criteria, the nearest recruiting sites.

The sheet is one self-contained HTML file (inline CSS, no script, no image, no font, nothing
fetched from the network) laid out for one A4 page when printed. Every value from a record or
from the user is escaped with `html.escape`. The patient appears only as the resolved place
(city, department, postal code): never as the text they typed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from trialfinder.models import Contact, Site, Status
from trialfinder.summary import Criterion, is_listing_only, parse_criteria, phase_label
from trialfinder.text import fold

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer
    from trialfinder.queries import NearestAnswer

SITES_ON_SHEET = 3
CRITERIA_ON_SHEET = 5
"""Inclusion (and exclusion) criteria printed before "… and N more (see the registry)"."""
CRITERION_CHARS = 240
"""A longer criterion is cut (with "…") so the sheet stays on one page."""


@dataclass(frozen=True, slots=True)
class Referral:
    answer: NearestAnswer
    """The nearest recruiting sites (at most SITES_ON_SHEET) and the trial, sites placed."""
    generated: date


def build_referral(
    nct_id: str,
    place_query: str,
    db_path: Path | None,
    *,
    sites: int = SITES_ON_SHEET,
    gazetteer: Gazetteer | None = None,
    today: date | None = None,
) -> Referral:
    """The sheet's content: the trial (store, else bundled) and its nearest recruiting sites."""
    from trialfinder import queries

    answer = queries.nearest(
        place_query, nct_id, db_path, limit=sites, include_all=False, gazetteer=gazetteer,
        today=today,
    )
    return Referral(answer=answer, generated=today or date.today())


def default_filename(referral: Referral) -> str:
    """referral-NCT03830788-lyon-69.html"""
    slug = re.sub(r"[^a-z0-9]+", "-", fold(referral.answer.resolution.place.label)).strip("-")
    return f"referral-{referral.answer.view.trial.nct_id}-{slug or 'place'}.html"


def write_referral(
    referral: Referral, output: Path | None = None, *, store: Path | str | None = None
) -> Path:
    """Write the sheet atomically with `trialfinder.files.write_output` (its refusals: a
    folder, a device, the store ``store``…) to ``output``, else to `default_filename` in the
    current directory; return the path. A new sheet is owner-only: it names the patient's
    town."""
    from trialfinder.files import write_output

    path = output if output is not None else Path.cwd() / default_filename(referral)
    return write_output(path, referral_html(referral), private=True, stores=(store,))


# -- HTML ---------------------------------------------------------------------------------

_CSS = """
@page { size: A4; margin: 12mm 14mm; }
* { box-sizing: border-box; }
body { font: 9.5pt/1.3 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #111; margin: 0 auto; max-width: 182mm; }
h1 { font-size: 13pt; margin: 0 0 1mm; }
h2 { font-size: 10.5pt; margin: 3mm 0 1mm; border-bottom: 0.3mm solid #999; }
p { margin: 0.8mm 0; }
ul { margin: 0.5mm 0 0.5mm 5mm; padding: 0; }
li { margin: 0.3mm 0; }
.meta { color: #333; }
.warn { border: 0.4mm solid #b45309; background: #fff7ed; padding: 1.5mm; margin: 2mm 0; }
.sites { display: grid; grid-template-columns: repeat(3, 1fr); gap: 2mm; }
.site { border: 0.3mm solid #999; padding: 1.5mm; break-inside: avoid; }
.site h3 { font-size: 9.5pt; margin: 0 0 0.8mm; }
.crit { display: grid; grid-template-columns: 1fr 1fr; gap: 3mm; }
.more { color: #444; font-style: italic; }
footer { margin-top: 3mm; font-size: 8pt; color: #333; border-top: 0.3mm solid #999; }
@media print { body { max-width: none; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str, limit: int = CRITERION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _criteria_html(title: str, items: tuple[Criterion, ...], limit: int) -> str:
    if not items:
        return f"<div><p><strong>{_e(title)}</strong>: not stated in the record</p></div>"
    shown = items[:limit]
    rows = []
    for item in shown:
        text = item.text
        if item.children:
            text += " " + "; ".join(c.text for c in item.children)
        rows.append(f"<li>{_e(_short(text))}</li>")
    more = len(items) - len(shown)
    tail = f'<p class="more">… and {more} more (see the registry)</p>' if more else ""
    return f"<div><p><strong>{_e(title)}</strong></p><ul>{''.join(rows)}</ul>{tail}</div>"


def _contact_html(contact: Contact) -> str:
    bits = [_e(contact.display)]
    if contact.is_investigator:
        bits[0] += " (investigator)"
    if contact.phone:
        bits.append(f"tel. {_e(contact.phone)}")
    if contact.email:
        bits.append(_e(contact.email))
    return ", ".join(bits)


def _site_html(index: int, site: Site, status: Status, distance_km: float | None) -> str:
    where = ", ".join(p for p in (site.zip, site.city, site.state, site.country) if p)
    distance = f"{distance_km:.0f} km" if distance_km is not None else "distance unknown"
    own = "" if site.status is not None else " (the trial's status; none recorded for the site)"
    contacts = "".join(f"<li>{_contact_html(c)}</li>" for c in site.contacts)
    return (
        '<div class="site">'
        f"<h3>{index}. {_e(site.facility or '(facility not named)')}</h3>"
        f"<p>{_e(where)}</p>"
        f"<p><strong>{_e(distance)}</strong> · {_e(status.label + own)}</p>"
        + (f"<ul>{contacts}</ul>" if contacts else "<p>No contact in the record.</p>")
        + "</div>"
    )


def referral_html(referral: Referral) -> str:
    from trialfinder.render import warnings

    answer = referral.answer
    view = answer.view
    trial = view.trial
    place = answer.resolution.place
    listing = is_listing_only(trial)
    missing = "not in this record (listing page)" if listing else "not stated"
    title = trial.title + (
        f" ({trial.acronym})" if trial.acronym and trial.acronym not in trial.title else ""
    )
    facts = [
        ("Phase", phase_label(trial.phases) or missing),
        ("Status", trial.status.label if trial.status else missing),
        ("Sponsor", trial.sponsor or missing),
        ("Conditions", "; ".join(trial.conditions) or missing),
    ]
    e = trial.eligibility
    if e is not None:
        people = [v for v in (
            e.sex.capitalize() if e.sex else None,
            f"from {e.minimum_age}" if e.minimum_age else None,
            f"up to {e.maximum_age}" if e.maximum_age else None,
        ) if v]
        if people:
            facts.append(("Patients", ", ".join(people)))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Referral: {_e(trial.nct_id)} near {_e(place.label)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(trial.nct_id)}: {_e(title)}</h1>",
        '<p class="meta">' + " · ".join(f"{_e(k)}: {_e(v)}" for k, v in facts) + "</p>",
        f"<p class=\"meta\">Registry: {_e(trial.registry_url)}</p>",
    ]
    parts += [f'<div class="warn">{_e(w)}</div>' for w in warnings(view)]

    parts.append("<h2>Key eligibility criteria</h2>")
    if e is None:
        parts.append(
            f"<p>{_e(missing)}: run <code>trialfinder sync {_e(trial.nct_id)}</code> "
            "for the registry record, or see the registry.</p>"
        )
    else:
        criteria = parse_criteria(e.criteria)
        inclusion = criteria.inclusion or tuple(Criterion(t) for t in e.inclusion)
        exclusion = criteria.exclusion or tuple(Criterion(t) for t in e.exclusion)
        parts.append(
            '<div class="crit">'
            + _criteria_html("Inclusion", inclusion, CRITERIA_ON_SHEET)
            + _criteria_html("Exclusion", exclusion, CRITERIA_ON_SHEET)
            + "</div>"
        )

    parts.append(
        f"<h2>Nearest recruiting sites to {_e(place.label)}, {_e(place.country_name)}</h2>"
    )
    if answer.ranked:
        parts.append('<div class="sites">')
        parts += [
            _site_html(i, r.site, r.status, r.distance_km)
            for i, r in enumerate(answer.ranked, start=1)
        ]
        parts.append("</div>")
        if answer.total_matching > len(answer.ranked):
            parts.append(
                f'<p class="more">{answer.total_matching - len(answer.ranked)} other '
                "recruiting site(s) farther away: see the registry.</p>"
            )
    else:
        parts.append("<p>No site of this trial is recorded as recruiting.</p>")
    parts.append(
        "<p class=\"meta\">Distances are great-circle distances from the place's centre; site "
        "positions are often the city centre.</p>"
    )

    if trial.central_contacts:
        parts.append("<h2>Central contacts</h2><ul>")
        parts += [f"<li>{_contact_html(c)}</li>" for c in trial.central_contacts]
        parts.append("</ul>")

    parts.append(
        "<footer>"
        f"<p>Source: {_e(trial.source.description)}, as of {_e(trial.source.as_of_label)}. "
        f"Generated by trialfinder on {_e(referral.generated.isoformat())}.</p>"
        "<p>Eligibility is decided by the site's investigators; confirm recruitment with the "
        "site before referring.</p>"
        "</footer></body></html>"
    )
    return "\n".join(parts) + "\n"
