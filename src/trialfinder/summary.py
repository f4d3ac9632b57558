"""A clinician's summary of one trial (`trialfinder show`), and the eligibility text made readable.

The registry writes eligibility criteria as Markdown with backslash escapes (``PSA \\<10``) and
sometimes HTML entities (``\\&lt;6``). `parse_criteria` turns that text into sections
(inclusion, exclusion, other) of items that may hold nested items; the renderers here and in
`referral` print those. Pure: values in, strings/dicts out.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from trialfinder.models import Contact, Trial, to_jsonable
from trialfinder.nearest import is_stale
from trialfinder.queries import TrialView
from trialfinder.records import load_trial
from trialfinder.registry import unescape_markdown
from trialfinder.text import fold

NOT_IN_RECORD = (
    "not in this record (listing page); run `trialfinder sync` for the registry record"
)
"""What `show` says instead of a blank when the record (the bundled listing) lacks a field."""

SectionKind = Literal["inclusion", "exclusion", "other"]


@dataclass(frozen=True, slots=True)
class Criterion:
    """One bullet of the criteria, with the bullets nested under it."""

    text: str
    children: tuple[Criterion, ...] = ()
    bullet: bool = True
    """False for a paragraph written without a bullet (a footnote, an un-bulleted criterion)."""

    def flat(self) -> str:
        """The criterion as one string, nested bullets on their own indented lines."""
        lines = [self.text]
        for child in self.children:
            lines.extend("  " + line for line in ("- " + child.flat()).splitlines())
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CriteriaSection:
    heading: str | None
    """The heading as written ("Main inclusion criteria"), None before any heading."""
    kind: SectionKind
    items: tuple[Criterion, ...] = ()
    """Bullets and paragraphs in the order written."""


@dataclass(frozen=True, slots=True)
class Criteria:
    sections: tuple[CriteriaSection, ...] = field(default=())

    def items(self, kind: SectionKind) -> tuple[Criterion, ...]:
        return tuple(i for s in self.sections if s.kind == kind for i in s.items)

    @property
    def inclusion(self) -> tuple[Criterion, ...]:
        return self.items("inclusion")

    @property
    def exclusion(self) -> tuple[Criterion, ...]:
        return self.items("exclusion")


# -- eligibility Markdown -----------------------------------------------------------------

_BULLET = re.compile(r"^(?P<indent>\s*)(?:[*+\-•]|\d{1,3}[.)]|[a-zA-Z][.)])\s+(?P<text>.*)$")
_HEADING = re.compile(r"^\s*#{1,6}\s*(?P<text>.*?)\s*#*\s*$")
_BOLD = re.compile(r"(\*\*|__)(?P<text>.+?)\1")


def _clean(text: str) -> str:
    return unescape_markdown(_BOLD.sub(r"\g<text>", text))


def _section_kind(heading: str) -> SectionKind | None:
    """The kind a line announces if it reads like a criteria heading, else None."""
    key = fold(heading)
    if len(key) > 80:
        return None
    if "inclusion" in key or "include" in key:
        return "inclusion"
    if "exclusion" in key or "exclude" in key or "non inclusion" in key:
        return "exclusion"
    return None


def _is_heading(line: str) -> tuple[bool, str]:
    match = _HEADING.match(line)
    if match:
        return True, match.group("text")
    stripped = line.strip()
    bare = stripped.strip("*_ ").rstrip(":").strip()
    if _section_kind(bare) and (stripped.endswith(":") or len(bare.split()) <= 6):
        return True, bare
    return False, stripped


class _Node:
    __slots__ = ("bullet", "children", "indent", "text")

    def __init__(self, text: str, indent: int, bullet: bool = True) -> None:
        self.text = text
        self.indent = indent
        self.bullet = bullet
        self.children: list[_Node] = []

    def freeze(self) -> Criterion:
        return Criterion(_clean(self.text), tuple(c.freeze() for c in self.children), self.bullet)


class _Section:
    def __init__(self, heading: str | None, kind: SectionKind) -> None:
        self.heading = heading
        self.kind = kind
        self.roots: list[_Node] = []

    def freeze(self) -> CriteriaSection:
        return CriteriaSection(
            _clean(self.heading) if self.heading else None,
            self.kind,
            tuple(n.freeze() for n in self.roots),
        )


def parse_criteria(text: str | None) -> Criteria:
    """Sections of bullets from the registry's eligibility Markdown.

    Headings are lines that mention inclusion or exclusion ("Inclusion Criteria:", "Main
    exclusion criteria", "### Key Exclusion"); bullets are ``*``, ``-``, ``+``, ``1.`` or
    ``a)``; a bullet indented deeper than the one above it is nested under it; an indented
    line that is not a bullet continues the bullet above (even after a blank line).
    """
    if not text or not text.strip():
        return Criteria()
    sections: list[_Section] = [_Section(None, "other")]
    stack: list[_Node] = []
    last_was_blank = False
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not raw.strip():
            last_was_blank = True
            continue
        current = sections[-1]
        bullet = _BULLET.match(raw)
        indent = len(raw) - len(raw.lstrip(" \t"))
        if bullet:
            node = _Node(bullet.group("text"), indent)
            while stack and stack[-1].indent >= indent:
                stack.pop()
            (stack[-1].children if stack else current.roots).append(node)
            stack.append(node)
        elif stack and (indent > 0 or not last_was_blank):
            # Continuation of the bullet above (lazy or indented paragraph).
            target = stack[-1]
            for candidate in reversed(stack):
                if candidate.indent < indent:
                    target = candidate
                    break
            target.text += " " + raw.strip()
        else:
            is_heading, heading = _is_heading(raw)
            kind = _section_kind(heading) if is_heading else None
            if is_heading and kind:
                sections.append(_Section(heading, kind))
            elif is_heading:
                sections.append(_Section(heading, current.kind))
            else:
                current.roots.append(_Node(raw.strip(), indent, bullet=False))
            stack = []
        last_was_blank = False
    frozen = [s.freeze() for s in sections]
    return Criteria(tuple(s for s in frozen if s.items or s.heading))


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


def load_view(nct_id: str, db_path: Path | None, *, today: date | None = None) -> TrialView:
    """The store's record (else the bundled one) with its staleness; sites are not placed."""
    trial = load_trial(nct_id, db_path)
    return TrialView(trial=trial, stale=is_stale(trial.source.as_of_date(), today))


def is_listing_only(trial: Trial) -> bool:
    """A record from a listing page: no phase, eligibility, sponsor … by nature."""
    return trial.source.kind == "listing"


def phase_label(phases: tuple[str, ...]) -> str | None:
    """('PHASE2', 'PHASE3') -> 'Phase 2/Phase 3'; ('NA',) -> 'Not applicable'."""
    labels = []
    for phase in phases:
        key = phase.strip().upper()
        if key in ("NA", "N/A"):
            labels.append("Not applicable")
            continue
        match = re.fullmatch(r"(EARLY_)?PHASE_?(\d)", key)
        if match:
            labels.append(("Early phase " if match.group(1) else "Phase ") + match.group(2))
        else:
            labels.append(phase)
    return "/".join(labels) or None


def _contact_text(contact: Contact) -> str:
    bits = [contact.display]
    if contact.role and contact.role != "CONTACT":
        bits[0] += f" ({contact.role.replace('_', ' ').lower()})"
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


def eligibility_json(trial: Trial) -> dict[str, Any]:
    e = trial.eligibility
    if e is None:
        return {"criteria": None, "inclusion": [], "exclusion": [], "minimum_age": None,
                "maximum_age": None, "sex": None, "healthy_volunteers": None}
    return {
        "criteria": e.criteria,
        "inclusion": list(e.inclusion),
        "exclusion": list(e.exclusion),
        "minimum_age": e.minimum_age,
        "maximum_age": e.maximum_age,
        "sex": e.sex,
        "healthy_volunteers": e.healthy_volunteers,
    }


def summary_json(view: TrialView) -> dict[str, Any]:
    """`show --json`: everything a referring clinician reads, as plain JSON."""
    from trialfinder.render import warnings

    trial = view.trial
    missing = _missing_fields(trial)
    return {
        "nct_id": trial.nct_id,
        "title": trial.title,
        "brief_title": trial.brief_title,
        "acronym": trial.acronym,
        "status": trial.status.value if trial.status else None,
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
        "enrollment": trial.enrollment,
        "brief_summary": trial.brief_summary,
        "detailed_description": trial.detailed_description,
        "arms": [
            {"label": a.label, "type": a.type, "description": a.description,
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
        "stale": view.stale,
        "warnings": warnings(view),
        "not_in_record": missing if is_listing_only(trial) else [],
    }


def _label_value(label: str, value: str | None, missing: str) -> str:
    return f"{label}: {value if value else missing}"


def summary_text(view: TrialView, *, width: int = 100) -> str:
    """`show`: the trial as a clinician reads it, most useful first."""
    from trialfinder.render import warnings

    trial = view.trial
    listing = is_listing_only(trial)
    missing = NOT_IN_RECORD if listing else "not stated in the record"
    title = trial.title + (
        f" ({trial.acronym})" if trial.acronym and trial.acronym not in trial.title else ""
    )
    lines = [f"{trial.nct_id}: {title}"]
    if trial.brief_title and trial.brief_title != trial.title:
        lines.append(f"Brief title: {trial.brief_title}")
    lines.append(_label_value("Phase", phase_label(trial.phases), missing))
    lines.append(_label_value("Overall status",
                              trial.status.label if trial.status else None, missing))
    dates = [
        f"{label} {value}"
        for label, value in (
            ("start", trial.start_date),
            ("primary completion", trial.primary_completion_date),
            ("completion", trial.completion_date),
            ("last update", trial.last_update),
        )
        if value
    ]
    lines.append(_label_value("Dates", "; ".join(dates), missing))
    lines.append(_label_value("Sponsor", trial.sponsor, missing))
    lines.append(_label_value("Conditions", "; ".join(trial.conditions), missing))
    if trial.enrollment is not None:
        lines.append(f"Enrollment: {trial.enrollment}")
    lines.append(f"Sites: {len(trial.sites)}")
    if trial.brief_summary:
        lines += ["", "Summary"]
        for paragraph in trial.brief_summary.split("\n\n"):
            lines.extend(textwrap.wrap(" ".join(paragraph.split()), width=width,
                                       initial_indent="  ", subsequent_indent="  "))

    lines += ["", "Arms and interventions" + ("" if trial.arms else f": {missing}")]
    for arm in trial.arms:
        head = arm.label + (f" ({arm.type.replace('_', ' ').lower()})" if arm.type else "")
        lines.extend(textwrap.wrap(head + (f": {arm.description}" if arm.description else ""),
                                   width=width, initial_indent="  - ", subsequent_indent="    "))
        lines.extend(f"      Intervention: {i}" for i in arm.interventions)

    lines += ["", *eligibility_lines(trial, missing, width=width)]

    lines += ["", "Central contacts" + ("" if trial.central_contacts else f": {missing}")]
    lines.extend("  - " + _contact_text(c) for c in trial.central_contacts)
    if trial.officials:
        lines.append("Overall officials")
        lines.extend("  - " + _contact_text(c) for c in trial.officials)

    lines += [
        "",
        f"Registry: {trial.registry_url}",
        f"Source: {trial.source.description}, as of {trial.source.as_of_label}",
    ]
    lines.extend(f"Warning: {w}" for w in warnings(view))
    return "\n".join(lines)


def eligibility_lines(trial: Trial, missing: str, *, width: int = 100) -> list[str]:
    e = trial.eligibility
    if e is None:
        return [f"Eligibility: {missing}"]
    lines = ["Eligibility"]
    facts = [
        f"{label}: {value}"
        for label, value in (
            ("Sex", e.sex.capitalize() if e.sex else None),
            ("Minimum age", e.minimum_age),
            ("Maximum age", e.maximum_age),
            ("Healthy volunteers",
             None if e.healthy_volunteers is None else ("yes" if e.healthy_volunteers else "no")),
        )
        if value
    ]
    if facts:
        lines.append("  " + " · ".join(facts))
    parsed = parse_criteria(e.criteria)
    if not parsed.sections and (e.inclusion or e.exclusion):
        parsed = Criteria((
            CriteriaSection("Inclusion criteria", "inclusion",
                            tuple(Criterion(_clean(i)) for i in e.inclusion)),
            CriteriaSection("Exclusion criteria", "exclusion",
                            tuple(Criterion(_clean(i)) for i in e.exclusion)),
        ))
    if not parsed.sections:
        lines.append("  Criteria: not stated in the record")
    for section in parsed.sections:
        heading = section.heading or {"inclusion": "Inclusion criteria",
                                      "exclusion": "Exclusion criteria"}.get(section.kind)
        if heading:
            lines.append(f"  {heading.rstrip(':')}:")
        for item in section.items:
            lines.extend(criterion_lines(item, indent=4, width=width))
    return lines
