"""terms.py: the words a condition search compares, and the text the store indexes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialfinder.errors import BadInput
from trialfinder.models import Source, Trial
from trialfinder.terms import (
    FIELD_BREAK,
    SEARCH_TERMS_MARK,
    condition_words,
    fts_phrase,
    searchable_text,
    text_matches,
    words,
)


def _trial(title: str = "A study", *, conditions: tuple[str, ...] = (),
           terms: tuple[str, ...] = (), acronym: str | None = None) -> Trial:
    return Trial(nct_id="NCT00000001", title=title, conditions=conditions,
                 condition_terms=terms, acronym=acronym,
                 source=Source("registry", "ClinicalTrials.gov API v2", "2025-02-01"))


@pytest.mark.parametrize(("text", "expected"), [
    ("Tumeurs stromales gastro-intestinales", ["cancer", "stromales", "gastro", "intestinales"]),
    ("Lung Neoplasms", ["lung", "cancer"]),
    ("NÉOPLASME du sein", ["cancer", "du", "sein"]),
    ("HER2+ (ERBB2) breast_cancer", ["her2", "erbb2", "breast", "cancer"]),
    ("  \t ", []),
])
def test_words_fold_case_and_accents_and_make_cancer_one_word(text: str,
                                                              expected: list[str]) -> None:
    assert words(text) == expected


def test_searchable_text_keeps_fields_apart_and_marks_mesh_terms() -> None:
    trial = _trial("Imatinib in GIST", acronym="IMADGIST", conditions=("Stomach",),
                   terms=("Gastrointestinal Stromal Tumors",))
    text = searchable_text(trial)
    assert text == (f"imatinib in gist {FIELD_BREAK} imadgist {FIELD_BREAK} stomach "
                    f"{FIELD_BREAK} {SEARCH_TERMS_MARK}gastrointestinal stromal cancer")
    assert SEARCH_TERMS_MARK not in searchable_text(_trial("No terms"))
    assert text_matches(condition_words("GIST"), text)
    assert text_matches(condition_words("stromal tumour"), text)
    assert not text_matches(condition_words("gist imadgist"), text)  # across two fields
    assert not text_matches(condition_words("stroma"), text)  # whole words only


def test_a_condition_without_words_is_refused() -> None:
    with pytest.raises(BadInput, match="no letters or digits"):
        condition_words(' "*" -- () ')


@given(st.text(max_size=60))
def test_a_phrase_is_always_a_safe_fts_query(text: str) -> None:
    """Whatever was typed, the FTS5 query is one quoted phrase of letters and digits: no
    operator, quote or column filter of the user's reaches SQLite."""
    found = words(text)
    if not found:
        return
    query = fts_phrase(found)
    inner = query[1:-1]
    assert query == f'"{inner}"' and '"' not in inner
    assert all(w.isalnum() for w in inner.split(" "))


@given(st.lists(st.text(max_size=20), min_size=1, max_size=4))
def test_every_field_matches_itself(fields: list[str]) -> None:
    text = searchable_text(_trial(fields[0], conditions=tuple(fields[1:])))
    for field in fields:
        if words(field):
            assert text_matches(words(field), text)
