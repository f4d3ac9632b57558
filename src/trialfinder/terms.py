"""The words of a trial's record as a condition search compares them, and the text the store
indexes for it.

Pure: the store calls `searchable_text` when it writes a record (so its FTS5 index and the
matcher used without the index read the same words), `search` calls `condition_words` and
`fts_phrase` for a ``--condition``. Case and accents are folded; a phrase never runs from
one field into the next.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trialfinder.errors import BadInput
from trialfinder.i18n import _
from trialfinder.text import fold

if TYPE_CHECKING:
    from trialfinder.models import Trial

SEARCH_TERMS_MARK = "\x1f"
"""Put by `searchable_text` before a record's MeSH terms (FTS5 reads it as a space): tells the
store the record has them."""

_WORD = re.compile(r"[^\W_]+")
_ONE_WORD = dict.fromkeys(
    ("cancer", "cancers", "neoplasm", "neoplasms", "tumour", "tumours", "tumor", "tumors",
     "neoplasme", "neoplasmes", "tumeur", "tumeurs"),
    "cancer",
)
"""Words a condition search treats as one: "lung cancer" finds "Lung Neoplasms"."""
FIELD_BREAK = "|"
"""Between two fields of the searchable text: a token of its own (store.py's FTS5 table
declares it so), so no phrase runs from one field into the next."""


def words(text: str) -> list[str]:
    """The words of a text as a condition search compares them: case and accents folded,
    split at anything but letters and digits, "cancer", "neoplasm(s)", "tumour(s)",
    "tumor(s)" (and the French "néoplasme(s)", "tumeur(s)") as the one word "cancer"."""
    return [_ONE_WORD.get(w, w) for w in _WORD.findall(fold(text))]


def searchable_text(trial: Trial) -> str:
    """What ``--condition`` is matched against (the store keeps it in `trials.search_text`):
    titles, acronym, conditions and keywords, then the MeSH condition terms and their
    ancestors (after `SEARCH_TERMS_MARK`, which tells the store the record has them), each
    field as its `words` with `FIELD_BREAK` between fields."""
    fields = [" ".join(w) for f in (trial.title, trial.brief_title, trial.acronym,
                                     *trial.conditions, *trial.keywords) if f and (w := words(f))]
    terms = [" ".join(w) for t in trial.condition_terms if (w := words(t))]
    if trial.condition_terms:
        fields.append(SEARCH_TERMS_MARK + (f" {FIELD_BREAK} ".join(terms)))
    return f" {FIELD_BREAK} ".join(fields)


def condition_words(condition: str) -> list[str]:
    """The words of a ``--condition``; BadInput when it has none."""
    found = words(condition)
    if not found:
        raise BadInput(_("--condition has no letters or digits to look for"))
    return found


def fts_phrase(phrase: Sequence[str]) -> str:
    """The FTS5 query for a phrase of `words` (letters and digits only: nothing to escape)."""
    return '"' + " ".join(phrase) + '"'


def text_matches(phrase: Sequence[str], text: str) -> bool:
    """Whether a searchable text holds the phrase within one field (what FTS5 answers, for
    a store searched without its index)."""
    wanted = f" {' '.join(phrase)} "
    return any(wanted in f" {' '.join(field.split())} " for field in text.split(FIELD_BREAK))
