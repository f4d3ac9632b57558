"""ClinicalTrials.gov identifiers: NCT and eight ASCII digits, nothing that only looks like it."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from trialfinder.cli import app
from trialfinder.errors import InvalidTrialId
from trialfinder.ids import is_nct_id, normalise_nct_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [("NCT02260505", "NCT02260505"), ("nct02260505", "NCT02260505"),
     (" Nct03830788\n", "NCT03830788"), ("\u00a0NCT00000000\u2003", "NCT00000000")],
)
def test_case_and_surrounding_space_are_forgiven(value, expected):
    """Lower case and surrounding (even non-breaking) spaces: the registry's spelling."""
    assert normalise_nct_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "NCT０３８３０７８８",  # fullwidth digits
        "NCT٠٣٨٣٠٧٨٨",  # Arabic-Indic digits
        "NCT۰۳۸۳۰۷۸۸",  # Extended Arabic-Indic digits
        "NCT०३८३०७८८",  # Devanagari digits
        "NCT𝟎𝟑𝟖𝟑𝟎𝟕𝟖𝟖",  # mathematical bold digits
        "ＮＣＴ03830788",  # fullwidth letters
        "NCT0383078", "NCT038307888", "NCT 03830788", "NCT-03830788", "03830788", "",
        "NCT03830788\nNCT02260505", "NCT0383078８",
    ],
)
def test_anything_else_is_invalid_trial_id_exit_2(value):
    """Digits of other scripts, wrong lengths, separators: InvalidTrialId (exit 2)."""
    with pytest.raises(InvalidTrialId) as info:
        normalise_nct_id(value)
    assert info.value.exit_code == 2
    assert not is_nct_id(value)


def test_a_long_refused_value_is_quoted_short():
    """A pasted page instead of an id: the message quotes 40 characters, on one line."""
    with pytest.raises(InvalidTrialId) as info:
        normalise_nct_id("x" * 10_000)
    assert str(info.value) == (
        f"'{'x' * 39}…' is not a ClinicalTrials.gov identifier (expected NCT and 8 digits, "
        "e.g. NCT02260505)")


@given(st.text(alphabet=string.digits, min_size=8, max_size=8))
def test_every_ascii_id_is_accepted_as_is(digits):
    """Every NCT + 8 ASCII digits is an id, and normalising it changes nothing."""
    value = f"NCT{digits}"
    assert is_nct_id(value)
    assert normalise_nct_id(value) == value
    assert normalise_nct_id(f" {value.lower()} ") == value


@given(st.text(max_size=14))
def test_whatever_is_accepted_is_ascii(value):
    """For any text: either refused, or an ASCII 'NCT' + 8 digits, the text's own spelling
    up to case and surrounding spaces."""
    try:
        nct = normalise_nct_id(value)
    except InvalidTrialId:
        return
    assert is_nct_id(nct) and nct.isascii()
    assert nct == value.strip().upper()


def test_cli_refuses_a_fullwidth_id_before_any_request(tmp_path):
    """`sync NCT０３８３０７８８` is a usage error in one line: exit 2, no store, no request
    (the registry URL points nowhere)."""
    db = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["sync", "NCT０３８３０７８８", "--db", str(db),
                                      "--registry-url", "http://127.0.0.1:9"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", "Error: 'NCT０３８３０７８８' is not a ClinicalTrials.gov identifier (expected NCT "
               "and 8 digits, e.g. NCT02260505)\n")
    assert not db.exists()
