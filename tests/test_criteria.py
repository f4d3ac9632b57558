"""The one eligibility parser, on the recorded records and on wordings of our own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialfinder.criteria import Criterion, heading_kind, parse_criteria, unescape_markdown

CTGOV = Path(__file__).parent / "fixtures" / "ctgov"


def recorded_criteria(name: str, index: int = 0) -> str:
    data = json.loads((CTGOV / name).read_text(encoding="utf-8"))
    study = data["studies"][index] if "studies" in data else data
    return study["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]


# -- headings -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "kind"), [
    ("Inclusion Criteria:", "inclusion"),
    ("Inclusion Criteria", "inclusion"),
    ("INCLUSION CRITERIA", "inclusion"),
    ("Key Inclusion Criteria:", "inclusion"),
    ("Main inclusion criteria", "inclusion"),
    ("Major Inclusion Criteria -", "inclusion"),
    ("Inclusion:", "inclusion"),
    ("Inclusions", "inclusion"),
    ("Patients to include", "inclusion"),
    ("Subjects to be included:", "inclusion"),
    ("Participants who will be included in the study:", "inclusion"),
    ("Criteria for inclusion", "inclusion"),
    ("Criteria for Inclusion in the study:", "inclusion"),
    ("Inclusion criteria for cohort B (expansion):", "inclusion"),
    ("Critères d'inclusion :", "inclusion"),
    ("Criterios de inclusión", "inclusion"),
    ("Einschlusskriterien:", "inclusion"),
    ("Exclusion Criteria:", "exclusion"),
    ("EXCLUSION:", "exclusion"),
    ("Main exclusion criteria", "exclusion"),
    ("Key Exclusion Criteria", "exclusion"),
    ("Non-inclusion criteria", "exclusion"),
    ("NON INCLUSION CRITERIA:", "exclusion"),
    ("Criteria for non-inclusion:", "exclusion"),
    ("Critères de non-inclusion", "exclusion"),
    ("Critères d'exclusion", "exclusion"),
    ("Patients to exclude:", "exclusion"),
    ("Patients not to be included", "exclusion"),
    ("Ineligibility criteria:", "exclusion"),
    ("Ausschlusskriterien", "exclusion"),
    ("Eligibility Criteria:", "other"),
    ("Eligibility", "other"),
    ("Inclusion and Exclusion Criteria:", "other"),
    ("INCLUSION / EXCLUSION CRITERIA", "other"),
    ("Eligibility criteria - Inclusion", "inclusion"),
    ("Eligibility Criteria (non-inclusion):", "exclusion"),
])
def test_heading_wordings(line: str, kind: str) -> None:
    """Every heading wording real records use is read as the kind it announces."""
    found = heading_kind(line)
    assert found is not None and found[0] == kind


@pytest.mark.parametrize("line", [
    "Exclusion of patients with brain metastases",
    "Inclusion in another interventional trial within 30 days.",
    "Patients included in a previous cohort must wait 3 months before entering this one",
    "Patients who meet the inclusion criteria listed below and agree to follow-up",
    "Age 18 years or older",
    "Criteria",
])
def test_sentences_that_mention_inclusion_are_not_headings(line: str) -> None:
    """A criterion that merely mentions inclusion or exclusion is not a heading."""
    assert heading_kind(line) is None


def test_heading_with_text_on_the_same_line() -> None:
    """'Inclusion criteria: adults …' is a heading and a first criterion."""
    parsed = parse_criteria(
        "Inclusion criteria: adults with a resected GIST.\n"
        "Exclusion criteria: prior imatinib for more than 3 years\n")
    assert [s.heading for s in parsed.sections] == ["Inclusion criteria", "Exclusion criteria"]
    assert parsed.listed("inclusion") == ("adults with a resected GIST.",)
    assert parsed.listed("exclusion") == ("prior imatinib for more than 3 years",)


def test_headings_in_bold_and_after_hashes() -> None:
    """**Bold** and ### headings, with or without a colon inside the bold."""
    parsed = parse_criteria(
        "**Inclusion Criteria:**\n\n- ECOG 0-1\n- Signed consent\n\n"
        "### Exclusion criteria\n\n1. Pregnancy\n2. Active infection\n\n"
        "__Patients to include__\n\n* Also this one\n")
    assert parsed.listed("inclusion") == ("ECOG 0-1", "Signed consent", "Also this one")
    assert parsed.listed("exclusion") == ("Pregnancy", "Active infection")


def test_bold_heading_with_a_criterion_on_the_same_line() -> None:
    """'**Exclusion criteria:** text' keeps the text as the first exclusion."""
    parsed = parse_criteria("**Exclusion criteria:** uncontrolled hypertension\n* HIV\n")
    assert parsed.listed("exclusion") == ("uncontrolled hypertension", "HIV")


def test_a_bulleted_heading_is_a_heading_but_a_bulleted_sentence_is_not() -> None:
    """'* Exclusion criteria:' alone is a heading; a bullet that mentions exclusion is not."""
    parsed = parse_criteria(
        "* Inclusion criteria:\n  * adults\n  * exclusion criteria of study X do not apply\n"
        "* Exclusion criteria:\n  * children\n")
    assert parsed.listed("inclusion") == ("adults", "exclusion criteria of study X do not apply")
    assert parsed.listed("exclusion") == ("children",)


def test_french_record_with_non_inclusion() -> None:
    """A French record's 'Critères de non-inclusion' are the exclusions."""
    parsed = parse_criteria(
        "Critères d'inclusion :\n\n- Âge ≥ 18 ans\n- GIST réséqué\n\n"
        "Critères de non-inclusion :\n\n- Grossesse\n")
    assert parsed.listed("inclusion") == ("Âge ≥ 18 ans", "GIST réséqué")
    assert parsed.listed("exclusion") == ("Grossesse",)


# -- bullets, nesting, paragraphs ----------------------------------------------------------


def test_nested_bullets_escapes_and_entities() -> None:
    """Deeper bullets nest; escapes and entities are undone in every text."""
    parsed = parse_criteria(
        "Inclusion Criteria:\n\n* A female who:\n\n  * Has not undergone a hysterectomy; or\n"
        "  * Is not postmenopausal\n* PSA \\<10 ng/ml and Gleason \\&lt;6\n\n"
        "Exclusion Criteria:\n\n1. Age \\>= 80\n2. Prior \\[treatment\\] \\&ge; 2 lines")
    first, second = parsed.inclusion
    assert first.text == "A female who:"
    assert [c.text for c in first.children] == [
        "Has not undergone a hysterectomy; or", "Is not postmenopausal"]
    assert first.flat() == (
        "A female who: Has not undergone a hysterectomy; or Is not postmenopausal")
    assert second.text == "PSA <10 ng/ml and Gleason <6"
    assert parsed.listed("exclusion") == ("Age >= 80", "Prior [treatment] ≥ 2 lines")


def test_a_change_of_numbering_nests_without_indentation() -> None:
    """'1. … :' followed by 'a)' items at the same indentation: the letters are nested."""
    parsed = parse_criteria(
        "Inclusion criteria\n1. Adequate organ function:\na) ANC >= 1.5\nb) Platelets >= 100\n"
        "2. Signed consent\n")
    first, second = parsed.inclusion
    assert [c.text for c in first.children] == ["ANC >= 1.5", "Platelets >= 100"]
    assert second.text == "Signed consent" and not second.children
    assert parsed.listed("inclusion") == (
        "Adequate organ function: ANC >= 1.5; Platelets >= 100", "Signed consent")


def test_short_labels_hold_their_bullets_and_lead_ins_are_left_out_of_lists() -> None:
    """'Age:' labels the bullets under it; a lead-in sentence is kept but not listed."""
    parsed = parse_criteria(
        "DISEASE CHARACTERISTICS:\n\n* Histologically confirmed GIST\n\n"
        "PATIENT CHARACTERISTICS:\n\nAge:\n\n* 18 and over\n\nPerformance status:\n\n"
        "* ECOG 0-1\n\nExclusion criteria:\n\n"
        "Patients who meet any of the following criteria will not be enrolled:\n\n"
        "* Pregnancy\n* HIV\n")
    assert [(s.heading, s.kind) for s in parsed.sections] == [
        ("DISEASE CHARACTERISTICS", "other"), ("PATIENT CHARACTERISTICS", "other"),
        ("Exclusion criteria", "exclusion")]
    assert parsed.listed("other") == (
        "Histologically confirmed GIST", "Age: 18 and over", "Performance status: ECOG 0-1")
    assert parsed.listed("exclusion") == ("Pregnancy", "HIV")
    lead = parsed.exclusion[0]
    assert lead.lead_in and not lead.bullet


def test_continuation_lines_and_paragraphs() -> None:
    """Lines under a bullet continue it; an unindented paragraph after a blank is its own."""
    parsed = parse_criteria(
        "Preamble, kept apart\n\nInclusion Criteria:\n\n- first\n  continues here\n"
        "- second \\* starred\nlazily continued\n\nA paragraph criterion.\n\n"
        "EXCLUSION CRITERIA\n\n1) one\n2) two\n")
    assert parsed.listed("inclusion") == (
        "first continues here", "second * starred lazily continued", "A paragraph criterion.")
    assert parsed.listed("exclusion") == ("one", "two")
    assert parsed.sections[0].kind == "other"
    assert parsed.sections[0].items[0].text == "Preamble, kept apart"


def test_no_headings_gives_no_inclusion_or_exclusion() -> None:
    """Without headings the criteria are 'other': never guessed to be inclusions."""
    parsed = parse_criteria("* a\n* b")
    assert parsed.listed("inclusion") == parsed.listed("exclusion") == ()
    assert parsed.listed("other") == ("a", "b")
    assert parse_criteria("") == parse_criteria(None) == parse_criteria("  \n ")


def test_a_heading_stranded_inside_a_list_is_dropped_only_when_it_comes_again() -> None:
    """NCT04280705 pasted 'Exclusion Criteria:' inside a nested list; the real one follows."""
    parsed = parse_criteria(recorded_criteria(
        "search_NCT04280705_60sites_10countries_nextPageToken.json"))
    assert len(parsed.listed("inclusion")) == 8 and len(parsed.listed("exclusion")) == 5
    assert parsed.notes == ("dropped a heading inside a list: 'Exclusion Criteria'",)
    # Indented, but never repeated: a real heading.
    alone = parse_criteria("Inclusion Criteria:\n* a\n  Exclusion Criteria:\n* b\n")
    assert alone.listed("exclusion") == ("b",)


# -- the recorded records -------------------------------------------------------------------


def test_recorded_records() -> None:
    """Key/Main headings, intros, nested items and entities in real records."""
    key = parse_criteria(recorded_criteria("study_NCT02210780_42sites_no_facility_names.json"))
    assert (len(key.listed("inclusion")), len(key.listed("exclusion"))) == (5, 8)
    assert "[Eichenfeld 2004]" in key.listed("inclusion")[0]
    main = parse_criteria(recorded_criteria(
        "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json"))
    assert main.listed("inclusion")[0] == "Biopsy proven prostate adenocarcinoma,"
    assert main.listed("exclusion")[0] == "Androgen deprivation therapy,"
    assert "(Prostate volume > 50 cc" in main.listed("exclusion")[1]
    intro = parse_criteria(recorded_criteria(
        "search_page_nextPageToken_NCT05147467_sitestatus.json"))
    assert intro.listed("inclusion")[0] == "Age ≥18 years old."
    assert intro.listed("exclusion")[5].endswith(
        "except that: Fully treated cervical carcinoma in situ; Completely resected basal cell "
        "carcinoma of the skin or localized squamous cell carcinoma of the skin; Confinement "
        "and resection of previously cured malignancies (or other treatment).")
    entities = parse_criteria(recorded_criteria(
        "study_NCT06620835_nsclc_FR27sites_sitestatus_withdrawn_contacts.json"))
    assert any("(Gleason <6)" in item for item in entities.listed("inclusion"))
    only = parse_criteria(recorded_criteria(
        "study_NCT04267848_nsclc_1148sites_sitestatus_contacts.json"))
    assert only.listed("exclusion") == ()
    assert only.listed("inclusion")[0] == (
        "A female of childbearing potential is a sexually mature female who: Has not undergone "
        "a hysterectomy or bilateral oophorectomy; or Has not been naturally postmenopausal for "
        "at least 12 consecutive months (i.e., has had menses at any time in the preceding 12 "
        "consecutive months)")


# -- properties -----------------------------------------------------------------------------

INCLUSION_HEADINGS = ["Inclusion Criteria", "Key inclusion criteria", "INCLUSION CRITERIA",
                      "Inclusion", "Patients to include", "Criteria for inclusion",
                      "Critères d'inclusion", "Main Inclusion Criteria"]
EXCLUSION_HEADINGS = ["Exclusion Criteria", "Key exclusion criteria", "EXCLUSION CRITERIA",
                      "Exclusion", "Non-inclusion criteria", "Criteria for exclusion",
                      "Critères de non-inclusion", "Main exclusion criteria"]
DECORATIONS = ["{}:", "{}", "**{}:**", "**{}**", "### {}", "## {}:", "__{}__"]
MARKERS = ["*", "-", "+", "•", "1.", "2)", "a)", "(i)"]
words = st.lists(st.sampled_from(["age", "ECOG", "≥", "18", "GIST", "prior", "imatinib",
                                  "(mg/m²)", "<10", "[ref]", "Besançon", "oncologist"]),
                 min_size=1, max_size=8).map(" ".join)


def _escaped(text: str) -> str:
    return "".join("\\" + c if c in "<>[]()*" else c for c in text)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(INCLUSION_HEADINGS), st.sampled_from(EXCLUSION_HEADINGS),
    st.sampled_from(DECORATIONS), st.sampled_from(MARKERS),
    st.lists(words, min_size=1, max_size=5), st.lists(words, min_size=1, max_size=5),
    st.sampled_from(["\n", "\n\n", "\r\n"]),
)
def test_generated_records_give_their_lists_back(
    inc_heading: str, exc_heading: str, decoration: str, marker: str,
    inclusion: list[str], exclusion: list[str], gap: str,
) -> None:
    """Any heading wording and decoration, any bullet, escaped text: the lists come back."""
    def block(heading: str, items: list[str]) -> str:
        lines = [decoration.format(heading), ""] + [f"{marker} {_escaped(i)}" for i in items]
        return gap.join(lines)

    text = block(inc_heading, inclusion) + gap + gap + block(exc_heading, exclusion)
    parsed = parse_criteria(text)
    assert parsed.listed("inclusion") == tuple(inclusion)
    assert parsed.listed("exclusion") == tuple(exclusion)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses(text: str) -> None:
    """Whatever the text, the parser answers (never raises) and keeps every word of it
    somewhere, headings or criteria, unless it dropped a stranded heading."""
    parsed = parse_criteria(text)
    shown = " ".join(
        [s.heading or "" for s in parsed.sections]
        + [_all_text(i) for s in parsed.sections for i in s.items])
    for word in unescape_markdown(text).split():
        core = word.strip("*_#:-+•·▪◦‣–—()[].\\")
        if core and not parsed.notes:
            assert core in shown or core in unescape_markdown(shown), word


def _all_text(item: Criterion) -> str:
    return " ".join([item.text, *(_all_text(c) for c in item.children)])
