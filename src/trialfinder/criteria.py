"""The one eligibility parser: a record's criteria text as sections of (nested) criteria.

Registries write eligibility as loose Markdown: headings in every wording ("Inclusion
Criteria:", "Key Exclusion Criteria", "INCLUSION CRITERIA", "Inclusion:", "Patients to
include", "Criteria for inclusion", "Non-inclusion criteria", "Critères d'inclusion", in bold
or after ``###``, sometimes with the first criterion on the same line), bullets of every kind
(``*``, ``-``, ``1.``, ``a)``, ``(i)``), nesting by indentation or by a change of numbering,
backslash escapes (``PSA \\<10``) and HTML entities (``\\&lt;6``).

`parse_criteria` reads all of it into `Criteria`: sections (inclusion, exclusion, other) of
`Criterion` trees, in the order written. Every output that shows criteria (`show`, `show
--json`, the referral sheet, the web page) reads them from here; the record keeps only the
text. `unescape_markdown` is the one way a record's Markdown text is made readable. Pure: text
in, values out; no import of the registry client.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Literal

from trialfinder.text import fold

Kind = Literal["inclusion", "exclusion", "other"]

LABEL_MAX_WORDS = 6
"""A paragraph of at most this many words ending with ":" ("Age:", "Performance status:")
labels the bullets under it; a longer one ("Subjects who meet each of the following criteria
are eligible:") only introduces them."""


@dataclass(frozen=True, slots=True)
class Criterion:
    """One criterion as written, with the criteria nested under it."""

    text: str
    children: tuple[Criterion, ...] = ()
    bullet: bool = True
    """False for a paragraph written without a bullet (a lead-in, a label, a note)."""

    @property
    def lead_in(self) -> bool:
        """A paragraph that only introduces the criteria after it ("… the following:")."""
        return not self.bullet and not self.children and self.text.endswith(":")

    def flat(self) -> str:
        """The criterion on one line, nested criteria folded in: "Parent: child 1; child 2".
        No "; " is added after punctuation or a conjunction ("…; or", "either … or")."""
        out = self.text
        for child in self.children:
            piece = child.flat()
            if not piece:
                continue
            if not out:
                out = piece
                continue
            last = out.rsplit(None, 1)[-1].lower()
            out += (" " if out[-1] in ".;:,!?" or last in _CONJUNCTIONS else "; ") + piece
        return out


@dataclass(frozen=True, slots=True)
class CriteriaSection:
    heading: str | None
    """The heading as written, markup removed ("Main inclusion criteria"); None before any."""
    kind: Kind
    items: tuple[Criterion, ...] = ()


@dataclass(frozen=True, slots=True)
class Criteria:
    sections: tuple[CriteriaSection, ...] = field(default=())
    notes: tuple[str, ...] = ()
    """Oddities met and how they were read (a heading stranded inside a list, dropped)."""

    def items(self, kind: Kind) -> tuple[Criterion, ...]:
        return tuple(i for s in self.sections if s.kind == kind for i in s.items)

    @property
    def inclusion(self) -> tuple[Criterion, ...]:
        return self.items("inclusion")

    @property
    def exclusion(self) -> tuple[Criterion, ...]:
        return self.items("exclusion")

    def listed(self, kind: Kind) -> tuple[str, ...]:
        """One line per criterion of that kind (nested ones folded in), lead-ins left out:
        the flat lists of `show --json`."""
        return tuple(t for i in self.items(kind) if not i.lead_in and (t := i.flat()))


# -- text ------------------------------------------------------------------------------------

# CommonMark: a backslash before any ASCII punctuation character is an escape. One regex
# rather than markdown-it-py (not a declared dependency, and a whole Markdown parser for this).
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_BOLD = re.compile(r"(?<!\\)(\*\*|__)(?=\S)(?P<text>.+?)(?<=\S)(?<!\\)\1")
_CONJUNCTIONS = frozenset({"or", "and", "and/or", "ou", "et", "either", "nor"})


def unescape_markdown(text: str) -> str:
    r"""Markdown text as a person reads it: '\>= 18' -> '>= 18', '\&lt;6' -> '<6',
    '**not**' -> 'not'; runs of whitespace become one space."""
    if "**" in text or "__" in text:
        text = _BOLD.sub(r"\g<text>", text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    if "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())


# -- lines -----------------------------------------------------------------------------------

_BULLET = re.compile(
    r"^(?P<indent>[ \t]*)"
    r"(?P<marker>[*+•·▪◦‣-]|[–—]"
    r"|\(?(?:\d{1,3}|[A-Za-z]|[ivxIVX]{2,5})[.)]|\((?:\d{1,3}|[A-Za-z]|[ivxIVX]{2,5})\))"
    r"[ \t]+(?P<text>\S.*)$"
)
_MD_HEADING = re.compile(r"^#{1,6}(?:[ \t]+(?P<text>.*?))?[ \t]*#*[ \t]*$")

_QUALIFIERS = (
    r"(?:(?:key|main|major|principal|primary|general|specific|additional|other|study|trial"
    r"|patient|subject|participant)s?\s+)*"
)
_NEGATION = r"(?P<neg>non\s*|not\s+|in)?"
_HEADINGS = [
    # "Inclusion criteria", "KEY EXCLUSION CRITERIA", "Non-inclusion criteria", "Exclusions",
    # "Ineligibility criteria", "Inclusion criteria for cohort A", "Inclusion", "Eligibility"
    re.compile(
        rf"^{_QUALIFIERS}{_NEGATION}(?P<kind>inclusion|exclusion|eligibility)s?"
        r"(?P<word>\s+(?:criteria|criterion|criterias|requirements?|conditions?))?"
        r"(?P<rest>.*)$"
    ),
    # "Criteria for inclusion", "Criteria for non-inclusion", "Criteria of exclusion"
    re.compile(
        rf"^{_QUALIFIERS}(?P<word>criteria|criterion)\s+(?:for|of)\s+(?:the\s+)?{_NEGATION}"
        r"(?P<kind>inclusion|exclusion|eligibility)(?P<rest>.*)$"
    ),
    # "Patients to include", "Subjects to be excluded", "Participants who will be included"
    re.compile(
        r"^(?:patients?|subjects?|participants?|persons?|people|volunteers?)\s+"
        r"(?:(?P<neg>not\s+)?to\s+(?:be\s+)?|who\s+(?:will\s+be|are|can\s+be|may\s+be)\s+)?"
        r"(?P<kind>include|exclude|included|excluded)"
        r"(?P<word>(?:\s+in\s+(?:the|this)\s+(?:study|trial))?)(?P<rest>)$"
    ),
    # French, Spanish, Italian: "Critères d'inclusion", "Critères de non-inclusion",
    # "Criterios de exclusión", "Criteri di inclusione"
    re.compile(
        r"^(?P<word>criteres?|criterios?|criteri|criterio)\s+(?:d|de|di)\s+"
        r"(?P<neg>non\s*)?(?P<kind>inclusion|inclusione|exclusion|esclusione|eligibilite)"
        r"(?P<rest>.*)$"
    ),
    # German: "Einschlusskriterien", "Ausschlusskriterien"
    re.compile(r"^(?P<kind>einschluss|ausschluss)(?P<word>kriterien|kriterium)(?P<rest>.*)$"),
]
_KINDS: dict[str, Kind] = {
    "inclusion": "inclusion", "include": "inclusion", "included": "inclusion",
    "inclusione": "inclusion", "einschluss": "inclusion",
    "exclusion": "exclusion", "exclude": "exclusion", "excluded": "exclusion",
    "esclusione": "exclusion", "ausschluss": "exclusion",
    "eligibility": "other", "eligibilite": "other",
}
_BOTH = re.compile(r"(?:(?:and|or|&)\s*)?(?:non\s*)?(?:inclusion|exclusion)(?:\s+criteria)?")
_NAMED = re.compile(r"\b(?P<neg>non\s*)?(?P<kind>inclusion|exclusion)\b")
_REST_MAX = 40
"""How much may follow a heading's key words ("for cohort A", "(all patients)")."""


def heading_kind(line: str, *, whole: bool = False) -> tuple[Kind, str, str] | None:
    """(kind, heading, text after it) when ``line`` (markup removed) reads as a criteria
    heading, else None. The text after it is a first criterion written on the same line
    ("Inclusion criteria: adults with GIST"). ``whole``: only a bare heading counts (for a
    bullet: "* Exclusion criteria:" is a heading, "* Exclusion criteria of study X apply"
    is a criterion)."""
    head, colon, after = line.partition(":")
    head = head.strip().strip("*_").strip()
    if not head or len(head) > 120:
        return None
    key = fold(head)
    for pattern in _HEADINGS:
        match = pattern.match(key)
        if match is None:
            continue
        rest = match.group("rest").strip()
        if whole and (rest or after.strip("*_ ")):
            return None
        kind = _KINDS[match.group("kind")]
        if match.groupdict().get("neg"):
            kind = "exclusion" if kind in ("inclusion", "other") else "inclusion"
        both = kind != "other" and _BOTH.fullmatch(rest)
        if both:
            # "Inclusion and exclusion criteria": a heading over both, of neither kind.
            kind, rest = "other", ""
        has_word = "word" in match.groupdict() and match.group("word") is not None
        if rest and not has_word and not both:
            return None  # "Exclusion of patients with …" is a sentence, not a heading
        if len(rest) > _REST_MAX or (not colon and (head.endswith(".") or len(key.split()) > 8)):
            return None
        named = _NAMED.search(rest)
        if kind == "other" and named:
            # "Eligibility criteria - inclusion", "Eligibility criteria (non-inclusion)"
            kind = "exclusion" if named.group("neg") or named.group("kind") == "exclusion" \
                else "inclusion"
        return kind, head, after.strip().lstrip("*_").strip()
    return None




def _subheading(line: str, raw: str) -> str | None:
    """A heading that names no kind: ``### Part A``, a whole line in bold, or a short line in
    capitals ("PATIENT CHARACTERISTICS:"). The section keeps its kind."""
    stripped = raw.strip()
    words = len(line.split())
    if words > 8 or line.endswith("."):
        return None
    md = _MD_HEADING.match(stripped)
    if md:
        return (md.group("text") or "").strip("*_ ").rstrip(":").strip() or None
    mark = stripped[:2]
    if mark in ("**", "__") and stripped.rstrip(":").endswith(mark) and stripped.count(mark) == 2:
        return line.rstrip(":").strip() or None
    letters = [c for c in line if c.isalpha()]
    if (len(letters) >= 4 and all(c.isupper() for c in letters)
            and (line.endswith(":") or words >= 2)):
        return line.rstrip(":").strip()
    return None


def _marker_type(marker: str) -> str:
    core = marker.strip("()").rstrip(".)")
    if core.isdigit():
        return "number"
    if len(core) == 1 and core.isalpha():
        return "letter"
    if core.isalpha():
        return "roman"
    return "symbol"


# -- the parser ------------------------------------------------------------------------------


class _Node:
    __slots__ = ("children", "holds_level", "indent", "marker", "text")

    def __init__(self, text: str, indent: int, marker: str | None, *,
                 holds_level: bool = False) -> None:
        self.text = text
        self.indent = indent
        self.marker = marker
        """The bullet's numbering kind ("number", "letter", "roman", "symbol"); None for a
        paragraph."""
        self.holds_level = holds_level
        """Bullets at this node's own indentation go under it (a label, "1. … :" before
        "a)")."""
        self.children: list[_Node] = []

    def freeze(self) -> Criterion:
        return Criterion(unescape_markdown(self.text),
                         tuple(c.freeze() for c in self.children), self.marker is not None)


class _Section:
    __slots__ = ("heading", "kind", "roots")

    def __init__(self, heading: str | None, kind: Kind) -> None:
        self.heading = heading
        self.kind: Kind = kind
        self.roots: list[_Node] = []

    def freeze(self) -> CriteriaSection:
        heading = unescape_markdown(self.heading) if self.heading else None
        return CriteriaSection(heading, self.kind, tuple(n.freeze() for n in self.roots))


@dataclass(frozen=True, slots=True)
class _Line:
    indent: int
    text: str
    """The line without its indentation or bullet marker."""
    marker: str | None
    plain: str
    """``text`` as read: Markdown heading marks, bold and escapes removed."""
    heading: tuple[Kind, str, str] | None


def _lines(text: str) -> list[_Line | None]:
    """Each line read once: None for a blank line."""
    out: list[_Line | None] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        raw = raw.expandtabs(4).rstrip()
        if not raw.strip():
            out.append(None)
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        bullet = _BULLET.match(raw)
        if bullet:
            body = bullet.group("text")
            plain = unescape_markdown(body)
            out.append(_Line(indent, body, _marker_type(bullet.group("marker")), plain,
                             heading_kind(plain, whole=True)))
            continue
        body = raw.strip()
        md = _MD_HEADING.match(body)
        plain = unescape_markdown((md.group("text") or "") if md else body)
        out.append(_Line(indent, body, None, plain, heading_kind(plain)))
    return out


def parse_criteria(text: str | None) -> Criteria:
    """Sections of criteria from a record's eligibility text.

    - A heading is a line that reads as one (see `heading_kind`); a bullet is a heading only
      when it holds nothing else ("* Exclusion criteria:"). Inclusion and exclusion headings
      start a section of that kind ("non-inclusion" is exclusion); ``###`` headings,
      whole-line bold and short lines in capitals start a section of the same kind. Text
      before any heading is a section of kind "other".
    - A bullet indented deeper than the one above is nested under it; so is a bullet of
      another numbering ("a)" under "1. … :") at the same indentation.
    - A line that is not a bullet continues the bullet above when indented or directly below
      it; after a blank line, unindented, it is a paragraph of its own.
    - A short paragraph ending with ":" ("Age:") labels the bullets under it.
    - A heading indented inside a list when the same heading comes again later, unindented,
      is a copy-paste slip: dropped, with a note.
    """
    if not text or not text.strip():
        return Criteria()
    lines = _lines(text)
    sections: list[_Section] = [_Section(None, "other")]
    stack: list[_Node] = []
    notes: list[str] = []
    blank_before = True
    for index, line in enumerate(lines):
        if line is None:
            blank_before = True
            continue
        section = sections[-1]
        nested = bool(stack) and line.indent > stack[0].indent
        if line.heading is not None and not (line.marker is not None and nested):
            kind, heading, after = line.heading
            if nested and _comes_again(lines, index, kind, stack[0].indent):
                notes.append(f"dropped a heading inside a list: {heading[:40]!r}")
                blank_before = False
                continue
            sections.append(_Section(heading, kind))
            stack = []
            if after:
                node = _Node(after, line.indent, None)
                sections[-1].roots.append(node)
                stack.append(node)
            blank_before = False
            continue
        if line.marker is None and not nested and (not stack or blank_before):
            sub = _subheading(line.plain, line.text)
            if sub is not None:
                sections.append(_Section(sub, section.kind))
                stack = []
                blank_before = True
                continue
        if line.marker is not None:
            _place(_Node(line.text, line.indent, line.marker), stack, section)
        elif stack and (not blank_before or line.indent > stack[0].indent):
            # Continuation of the bullet (or paragraph) above: lazy, or indented under it.
            target = stack[-1]
            if blank_before:
                target = next((n for n in reversed(stack) if n.indent < line.indent), target)
            target.text += " " + line.text
        else:
            label = line.text.endswith(":") and len(line.text.split()) <= LABEL_MAX_WORDS
            node = _Node(line.text, line.indent, None, holds_level=label)
            section.roots.append(node)
            stack = [node]
        blank_before = False
    frozen = [s.freeze() for s in sections]
    return Criteria(tuple(s for s in frozen if s.items or s.heading), tuple(notes))


def _comes_again(lines: list[_Line | None], index: int, kind: Kind, indent: int) -> bool:
    """Whether a heading of ``kind`` comes again after line ``index``, no more indented than
    ``indent``: then the one at ``index`` is a stray."""
    return any(
        line is not None and line.heading is not None and line.heading[0] == kind
        and line.marker is None and line.indent <= indent
        for line in lines[index + 1:]
    )


def _place(node: _Node, stack: list[_Node], section: _Section) -> None:
    """Put a bullet under its parent: by indentation, then by a change of numbering."""
    while stack:
        top = stack[-1]
        if top.indent < node.indent:
            break
        if top.indent == node.indent and top.marker != node.marker:
            if top.holds_level:
                break
            if (top.marker is not None and top.text.rstrip().endswith(":")
                    and not any(s.marker == node.marker and s.indent == node.indent
                                for s in stack)):
                top.holds_level = True  # "1. Adequate function:" then "a) …": nested
                break
        stack.pop()
    (stack[-1].children if stack else section.roots).append(node)
    stack.append(node)
