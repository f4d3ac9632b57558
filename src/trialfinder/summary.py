"""A clinician's summary of one trial (`trialfinder show`). Pure: values in, strings/dicts out.

The eligibility criteria are read by `trialfinder.criteria`, the one parser; statuses by
`trialfinder.recruitment`; the record's age by `trialfinder.freshness`.
"""

from __future__ import annotations

import re
import textwrap
from datetime import date
from typing import TYPE_CHECKING, Any

from trialfinder.criteria import Criteria, Criterion, parse_criteria, unescape_markdown
from trialfinder.i18n import N_, _, ngettext
from trialfinder.models import Contact, Trial, to_jsonable
from trialfinder.queries import TrialView, load_view
from trialfinder.words import arm_type_words, role_words

if TYPE_CHECKING:
    from trialfinder.store import StoreLike

__all__ = ["NOT_IN_RECORD", "load_view", "summary_json", "summary_text", "trial_summary"]

NOT_IN_RECORD = N_(
    "not in this record (listing page); run `trialfinder sync` for the registry record"
)
"""What `show` says instead of a blank when the record (the bundled listing) lacks a field."""


def not_in_record() -> str:
    """`NOT_IN_RECORD` in the current language."""
    return _(NOT_IN_RECORD)


def criterion_lines(item: Criterion, indent: int = 2, width: int = 100) -> list[str]:
    """A bullet and its nested bullets as wrapped text lines, children indented."""
    first = " " * indent + ("- " if item.bullet else "")
    lines = textwrap.wrap(
        item.text, width=width, initial_indent=first, subsequent_indent=" " * len(first)
    ) or [first.rstrip()]
    for child in item.children:
        lines.extend(criterion_lines(child, indent + 4, width))
    return lines


# -- the summary ---------------------------------------------------------------------------


def trial_summary(nct_id: str, db: StoreLike = None, *, today: date | None = None
                  ) -> dict[str, Any]:
    """The summary of `show --json` for a trial in the store (else the bundled record)."""
    return summary_json(load_view(nct_id, db, today=today))


def is_listing_only(trial: Trial) -> bool:
    """A record from a listing page: no phase, eligibility, sponsor … by nature."""
    return trial.source.kind == "listing"


def phase_label(phases: tuple[str, ...]) -> str | None:
    """('PHASE2', 'PHASE3') -> 'Phase 2/Phase 3'; ('NA',) -> 'Not applicable'."""
    labels = []
    for phase in phases:
        key = phase.strip().upper()
        if key in ("NA", "N/A"):
            labels.append(_("Not applicable"))
            continue
        match = re.fullmatch(r"(EARLY_)?PHASE_?(\d)", key)
        if match:
            labels.append((_("Early phase {n}") if match.group(1) else _("Phase {n}")).format(
                n=match.group(2)))
        else:
            labels.append(phase)
    return "/".join(labels) or None


def sex_words(sex: str | None) -> str | None:
    """The record's sex field in words: "All", "Female", "Male"."""
    if not sex:
        return None
    words = {"ALL": _("All"), "FEMALE": _("Female"), "MALE": _("Male")}
    return words.get(sex.strip().upper(), sex.capitalize())


_AGE = re.compile(r"\s*(\d+)\s+(year|month|week|day|hour|minute)s?\s*", re.IGNORECASE)


def record_age_words(age: str | None) -> str | None:
    """An age limit as the record gives it ("18 Years", "6 Months") in the current language;
    text of another form as it is."""
    if not age:
        return None
    match = _AGE.fullmatch(age)
    if not match:
        return age
    n = int(match.group(1))
    forms = {
        "year": ngettext("{n} Year", "{n} Years", n),
        "month": ngettext("{n} Month", "{n} Months", n),
        "week": ngettext("{n} Week", "{n} Weeks", n),
        "day": ngettext("{n} Day", "{n} Days", n),
        "hour": ngettext("{n} Hour", "{n} Hours", n),
        "minute": ngettext("{n} Minute", "{n} Minutes", n),
    }
    return forms[match.group(2).lower()].format(n=n)


def _contact_text(contact: Contact) -> str:
    bits = [contact.display]
    if contact.role and contact.role != "CONTACT":
        bits[0] += f" ({role_words(contact.role)})"
    bits += [b for b in (contact.affiliation, contact.phone, contact.email) if b]
    return ", ".join(bits)


def _missing_fields(trial: Trial) -> list[str]:
    missing = []
    if not trial.phases:
        missing.append("phase")
    if not trial.sponsor:
        missing.append("sponsor")
    if not trial.conditions:
        missing.append("conditions")
    if not trial.arms:
        missing.append("arms")
    if trial.eligibility is None:
        missing.append("eligibility")
    if not trial.central_contacts:
        missing.append("contacts")
    return missing


def criterion_json(item: Criterion) -> dict[str, Any]:
    return {"text": item.text, "bullet": item.bullet,
            "children": [criterion_json(c) for c in item.children]}


def criteria_json(criteria: Criteria) -> list[dict[str, Any]]:
    """The parsed sections, in order, each criterion with the ones nested under it."""
    return [{"heading": s.heading, "kind": s.kind, "items": [criterion_json(i) for i in s.items]}
            for s in criteria.sections]


def eligibility_json(trial: Trial) -> dict[str, Any]:
    """``criteria``: the record's text; ``inclusion``/``exclusion``/``other``: one line per
    criterion, and ``sections`` the whole structure, both from `criteria.parse_criteria`."""
    e = trial.eligibility
    if e is None:
        return {"criteria": None, "inclusion": [], "exclusion": [], "other": [], "sections": [],
                "minimum_age": None, "maximum_age": None, "sex": None,
                "healthy_volunteers": None}
    parsed = parse_criteria(e.criteria)
    return {
        "criteria": e.criteria,
        "inclusion": list(parsed.listed("inclusion")),
        "exclusion": list(parsed.listed("exclusion")),
        "other": list(parsed.listed("other")),
        "sections": criteria_json(parsed),
        "minimum_age": e.minimum_age,
        "maximum_age": e.maximum_age,
        "sex": e.sex,
        "healthy_volunteers": e.healthy_volunteers,
    }


def readable(text: str | None) -> str | None:
    """A record's Markdown text as a person reads it, paragraphs kept."""
    if text is None:
        return None
    return "\n\n".join(unescape_markdown(p) for p in re.split(r"\n\s*\n", text) if p.strip())


def summary_json(view: TrialView, *, terminal: bool = True) -> dict[str, Any]:
    """`show --json`: everything a referring clinician reads, as plain JSON. Text fields are
    readable (Markdown escapes removed); ``eligibility.criteria`` is the record's own text."""
    from trialfinder.merge import status_origin_json
    from trialfinder.render import freshness_json, recruitment_json, warnings

    trial = view.trial
    missing = _missing_fields(trial)
    overall = recruitment_json(view.recruitment)
    return {
        "nct_id": trial.nct_id,
        "title": trial.title,
        "brief_title": trial.brief_title,
        "acronym": trial.acronym,
        "status": trial.status.value if trial.status else None,
        "status_text": trial.status_text,
        **{k: v for k, v in overall.items() if k != "status"},
        "phase": phase_label(trial.phases),
        "phases": list(trial.phases),
        "study_type": trial.study_type,
        "sponsor": trial.sponsor,
        "conditions": list(trial.conditions),
        "keywords": list(trial.keywords),
        "start_date": trial.start_date,
        "primary_completion_date": trial.primary_completion_date,
        "completion_date": trial.completion_date,
        "last_update": trial.last_update,
        "verified_date": trial.verified_date,
        "enrollment": trial.enrollment,
        "brief_summary": readable(trial.brief_summary),
        "detailed_description": readable(trial.detailed_description),
        "arms": [
            {"label": a.label, "type": a.type, "description": readable(a.description),
             "interventions": list(a.interventions)}
            for a in trial.arms
        ],
        "eligibility": eligibility_json(trial),
        "contacts": to_jsonable(trial.central_contacts),
        "officials": to_jsonable(trial.officials),
        "sites": len(trial.sites),
        "registry_url": trial.registry_url,
        "as_of": trial.source.as_of,
        "source": trial.source.description,
        "source_kind": trial.source.kind,
        "source_url": trial.source.url,
        "status_origin": status_origin_json(trial),
        "stale": view.stale,
        "freshness": freshness_json(view),
        "warnings": warnings(view, terminal=terminal),
        "not_in_record": missing if is_listing_only(trial) else [],
    }


def _label_value(label: str, value: str | None, missing: str) -> str:
    return _("{label}: {value}").format(label=label, value=value if value else missing)


def summary_text(view: TrialView, *, width: int = 100) -> str:
    """`show`: the trial as a clinician reads it, most useful first."""
    from trialfinder.merge import status_origin
    from trialfinder.recruitment import status_words
    from trialfinder.render import age_lines, as_of_text
    from trialfinder.words import record_source_words

    trial = view.trial
    listing = is_listing_only(trial)
    missing = not_in_record() if listing else _("not stated in the record")
    title = trial.title + (
        f" ({trial.acronym})" if trial.acronym and trial.acronym not in trial.title else ""
    )
    lines = [_("{nct_id}: {title}").format(nct_id=trial.nct_id, title=title)]
    if trial.brief_title and trial.brief_title != trial.title:
        lines.append(_("Brief title: {title}").format(title=trial.brief_title))
    lines.append(_label_value(_("Phase"), phase_label(trial.phases), missing))
    lines.append(_label_value(_("Overall status"), status_words(view.recruitment), missing))
    dates = [
        f"{label} {value}"
        for label, value in (
            (_("start"), trial.start_date),
            (_("primary completion"), trial.primary_completion_date),
            (_("completion"), trial.completion_date),
            (_("last update"), trial.last_update),
        )
        if value
    ]
    lines.append(_label_value(_("Dates"), "; ".join(dates), missing))
    lines.append(_label_value(_("Sponsor"), trial.sponsor, missing))
    lines.append(_label_value(_("Conditions"), "; ".join(trial.conditions), missing))
    if trial.enrollment is not None:
        lines.append(_("Enrollment: {count}").format(count=trial.enrollment))
    lines.append(_("Sites: {count}").format(count=len(trial.sites)))
    summary = readable(trial.brief_summary)
    if summary:
        lines += ["", _("Summary")]
        for paragraph in summary.split("\n\n"):
            lines.extend(textwrap.wrap(paragraph, width=width,
                                       initial_indent="  ", subsequent_indent="  "))

    lines += ["", _("Arms and interventions") if trial.arms
              else _("Arms and interventions: {missing}").format(missing=missing)]
    for arm in trial.arms:
        head = arm.label + (f" ({arm_type_words(arm.type)})" if arm.type else "")
        description = readable(arm.description)
        text = _("{arm}: {description}").format(arm=head, description=description) \
            if description else head
        lines.extend(textwrap.wrap(text,
                                   width=width, initial_indent="  - ", subsequent_indent="    "))
        lines.extend("      " + _("Intervention: {name}").format(name=i)
                     for i in arm.interventions)

    lines += ["", *eligibility_lines(trial, missing, width=width)]

    lines += ["", _("Central contacts") if trial.central_contacts
              else _("Central contacts: {missing}").format(missing=missing)]
    lines.extend("  - " + _contact_text(c) for c in trial.central_contacts)
    if trial.officials:
        lines.append(_("Overall officials"))
        lines.extend("  - " + _contact_text(c) for c in trial.officials)

    lines += [
        "",
        _("Registry: {url}").format(url=trial.registry_url),
        _("Source: {source}, as of {as_of}").format(
            source=record_source_words(trial.source.description),
            as_of=as_of_text(trial.source)),
        *([origin] if (origin := status_origin(trial)) else []),
        *age_lines(view),
    ]
    return "\n".join(lines)


def eligibility_lines(trial: Trial, missing: str, *, width: int = 100) -> list[str]:
    """The eligibility as `show` prints it: who may take part, then each section of the
    criteria as parsed by `criteria.parse_criteria`, nested criteria indented."""
    e = trial.eligibility
    if e is None:
        return [_("Eligibility: {missing}").format(missing=missing)]
    lines = [_("Eligibility")]
    healthy = None if e.healthy_volunteers is None else (
        _("yes") if e.healthy_volunteers else _("no"))
    facts = [
        _("{label}: {value}").format(label=label, value=value)
        for label, value in (
            (_("Sex"), sex_words(e.sex)),
            (_("Minimum age"), record_age_words(e.minimum_age)),
            (_("Maximum age"), record_age_words(e.maximum_age)),
            (_("Healthy volunteers"), healthy),
        )
        if value
    ]
    if facts:
        lines.append("  " + " · ".join(facts))
    parsed = parse_criteria(e.criteria)
    if not parsed.sections:
        lines.append("  " + _("Criteria: not stated in the record"))
    for section in parsed.sections:
        heading = section.heading or {
            "inclusion": _("Inclusion criteria"), "exclusion": _("Exclusion criteria"),
        }.get(section.kind, _("Criteria"))
        lines.append(f"  {heading.rstrip(':').rstrip()}:")
        for item in section.items:
            lines.extend(criterion_lines(item, indent=4, width=width))
    return lines
