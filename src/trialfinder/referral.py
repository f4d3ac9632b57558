"""A one-page printable referral sheet: the trial, its key criteria, the nearest recruiting sites.

The sheet is one self-contained HTML file (inline CSS, no script, no image, no font, nothing
fetched from the network) laid out for one A4 page when printed. Every value from a record or
from the user is escaped with `html.escape`. The patient appears only as the resolved place
(city, department, postal code): never as the text they typed. Criteria come from
`trialfinder.criteria`, statuses from `trialfinder.recruitment`, the record's age from
`trialfinder.freshness`, like every other output.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from trialfinder import clock
from trialfinder.contacts import reach
from trialfinder.criteria import Criterion, parse_criteria
from trialfinder.i18n import _, ngettext
from trialfinder.models import Contact, Trial
from trialfinder.summary import is_listing_only, phase_label, record_age_words, sex_words
from trialfinder.text import fold
from trialfinder.words import facility_words

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer
    from trialfinder.nearest import RankedSite
    from trialfinder.queries import NearestAnswer, TrialView
    from trialfinder.store import StoreLike

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
    db: StoreLike,
    *,
    gazetteer: Gazetteer | None = None,
    today: date | None = None,
    view: TrialView | None = None,
) -> Referral:
    """The sheet's content: the trial (store, else bundled) and its nearest recruiting sites
    (``db``: an open `Store`, a path, or None; ``view``: the trial already loaded)."""
    from trialfinder import queries

    today = today or clock.today()
    answer = queries.nearest(
        place_query, nct_id, db, limit=SITES_ON_SHEET, include_all=False, gazetteer=gazetteer,
        today=today, view=view,
    )
    return Referral(answer=answer, generated=today)


def referral_sheet(
    nct_id: str,
    place_query: str,
    db: StoreLike = None,
    *,
    gazetteer: Gazetteer | None = None,
    today: date | None = None,
) -> str:
    """The referral sheet as one HTML document (write it with `write_referral`, or as you
    like): the library's entry point behind `trialfinder referral`."""
    return referral_html(build_referral(nct_id, place_query, db, gazetteer=gazetteer,
                                        today=today))


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
    items = tuple(i for i in items if not i.lead_in)
    if not items:
        return "<div><p><strong>{}</strong>: {}</p></div>".format(
            _e(title), _e(_("not stated in the record")))
    shown = items[:limit]
    rows = [f"<li>{_e(_short(item.flat()))}</li>" for item in shown]
    more = len(items) - len(shown)
    more_text = _("… and {count} more (see the registry)").format(count=more)
    tail = f'<p class="more">{_e(more_text)}</p>' if more else ""
    return f"<div><p><strong>{_e(title)}</strong></p><ul>{''.join(rows)}</ul>{tail}</div>"


def _contact_html(contact: Contact) -> str:
    bits = [_e(contact.display)]
    if contact.is_investigator:
        bits[0] += " " + _e(_("(investigator)"))
    if contact.phone:
        bits.append(_e(_("tel. {phone}").format(phone=contact.phone)))
    if contact.email:
        bits.append(_e(contact.email))
    return ", ".join(bits)


def _site_html(ranked: RankedSite, trial: Trial) -> str:
    from trialfinder.recruitment import status_with_source
    from trialfinder.render import shared_words
    from trialfinder.words import distance_words, site_where

    site = ranked.site
    where = site_where(site, full=True)
    distance = (distance_words(ranked.distance_km) if ranked.distance_km is not None
                else _("position unknown — may be near you"))
    status = status_with_source(ranked.recruitment, site)
    contacts = "".join(f"<li>{_contact_html(c)}</li>" for c in site.contacts)
    scope = reach(site, trial).scope
    if scope != "site":
        advice = (_("No phone or e-mail for this site in the record: see the central contacts.")
                  if scope == "trial" else
                  _("No phone or e-mail in the record: contact the investigator through the "
                    "registry page."))
        contacts += f"<li>{_e(advice)}</li>"
    number = f"{ranked.rank}. " if ranked.rank is not None else ""
    shared = ""
    if ranked.group_size > 1 and ranked.rank is not None:
        words = _("Equally near: {shared}").format(shared=shared_words(site, ranked.group_size))
        shared = f'<p class="meta">{_e(words)}</p>'
    return (
        '<div class="site">'
        f"<h3>{number}{_e(facility_words(site))}</h3>"
        f"<p>{_e(where)}</p>"
        f"<p><strong>{_e(distance)}</strong> · {_e(status)}</p>"
        + shared
        + f"<ul>{contacts}</ul>"
        + "</div>"
    )


def referral_html(referral: Referral, *, terminal: bool = True) -> str:
    """The sheet as one HTML page. ``terminal`` False (the web page): advice for a person
    reading it, not commands to run."""
    from trialfinder.freshness import age_sentence
    from trialfinder.recruitment import Standing, status_words
    from trialfinder.render import as_of_text, warnings
    from trialfinder.words import place_title, record_source_words

    answer = referral.answer
    view = answer.view
    trial = view.trial
    place = answer.resolution.place
    listing = is_listing_only(trial)
    missing = _("not in this record (listing page)") if listing else _("not stated")
    title = trial.title + (
        f" ({trial.acronym})" if trial.acronym and trial.acronym not in trial.title else ""
    )
    facts = [
        (_("Phase"), phase_label(trial.phases) or missing),
        (_("Status"), status_words(view.recruitment)),
        (_("Sponsor"), trial.sponsor or missing),
        (_("Conditions"), "; ".join(trial.conditions) or missing),
    ]
    e = trial.eligibility
    if e is not None:
        people = [v for v in (
            sex_words(e.sex),
            _("from {age}").format(age=record_age_words(e.minimum_age)) if e.minimum_age
            else None,
            _("up to {age}").format(age=record_age_words(e.maximum_age)) if e.maximum_age
            else None,
        ) if v]
        if people:
            facts.append((_("Patients"), ", ".join(people)))
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(_current_language())}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>{}</title>".format(_e(_("Referral: {nct_id} near {place}").format(
            nct_id=trial.nct_id, place=place.label))),
        f"<style>{_CSS}</style></head><body>",
        "<h1>{}</h1>".format(_e(_("{nct_id}: {title}").format(nct_id=trial.nct_id, title=title))),
        '<p class="meta">' + " · ".join(
            _e(_("{label}: {value}").format(label=k, value=v)) for k, v in facts) + "</p>",
        '<p class="meta">{}</p>'.format(
            _e(_("Registry: {url}").format(url=trial.registry_url))),
    ]
    parts += [f'<div class="warn">{_e(w)}</div>' for w in warnings(view, terminal=terminal)]

    parts.append("<h2>{}</h2>".format(_e(_("Key eligibility criteria"))))
    if e is None:
        advice = (_("{missing}: run `trialfinder sync {nct_id}` for the registry record, or see "
                    "the registry.") if terminal else _("{missing}: see the registry."))
        parts.append(f"<p>{_e(advice.format(missing=missing, nct_id=trial.nct_id))}</p>")
    else:
        criteria = parse_criteria(e.criteria)
        parts.append(
            '<div class="crit">'
            + _criteria_html(_("Inclusion"), criteria.inclusion, CRITERIA_ON_SHEET)
            + _criteria_html(_("Exclusion"), criteria.exclusion, CRITERIA_ON_SHEET)
            + "</div>"
        )

    parts.append("<h2>{}</h2>".format(_e(_("Nearest recruiting sites to {place}")
                                          .format(place=place_title(place)))))
    placed, unplaced = answer.placed, answer.unplaced
    if placed:
        parts.append('<div class="sites">')
        parts += [_site_html(r, trial) for r in placed]
        parts.append("</div>")
        farther = answer.total_matching - len(placed)
        if farther > 0:
            parts.append('<p class="more">{}</p>'.format(_e(ngettext(
                "{count} other recruiting site farther away: see the registry.",
                "{count} other recruiting sites farther away: see the registry.",
                farther).format(count=farther))))
    if unplaced:
        names = "; ".join(
            f"{facility_words(r.site)} ({r.site.city})" for r in unplaced)
        parts.append('<p class="more">{}</p>'.format(_e(ngettext(
            "Position unknown — may be near you: {names}.",
            "Position unknown — may be near you: {names}.", len(unplaced)).format(names=names))))
    if not placed and not unplaced:
        if view.recruitment.standing is Standing.UNKNOWN:
            parts.append("<p>{}</p>".format(_e(_(
                "No site of this trial is offered as recruiting. {status}.").format(
                    status=status_words(view.recruitment)))))
        else:
            parts.append("<p>{}</p>".format(_e(_(
                "No site of this trial is recorded as recruiting."))))
    parts.append('<p class="meta">{}</p>'.format(_e(_(
        "Distances are great-circle distances from the place's centre; site positions are "
        "often the city centre, so sites in one city are equally near."))))

    if trial.central_contacts:
        parts.append("<h2>{}</h2><ul>".format(_e(_("Central contacts"))))
        parts += [f"<li>{_contact_html(c)}</li>" for c in trial.central_contacts]
        parts.append("</ul>")

    parts.append(
        "<footer>"
        "<p>{} {}</p>".format(
            _e(_("Source: {source}, as of {as_of}.").format(
                source=record_source_words(trial.source.description),
                as_of=as_of_text(trial.source))),
            _e(_("Generated by trialfinder on {date}.").format(
                date=referral.generated.isoformat())))
        + "<p>{}</p>".format(_e(age_sentence(view.freshness,
                                             record_source_words(trial.source.description))))
        + "<p>{}</p>".format(_e(_(
            "Eligibility is decided by the site's investigators; confirm recruitment with the "
            "site before referring.")))
        + "</footer></body></html>"
    )
    return "\n".join(parts) + "\n"


def _current_language() -> str:
    from trialfinder.i18n import current_language

    return current_language()
