"""ClinicalTrials.gov identifiers: "NCT" and eight ASCII digits."""

from __future__ import annotations

import re

from trialfinder.errors import InvalidTrialId

# ASCII digits only: `\d` would also take "０３８３…" (fullwidth) or Arabic-Indic digits, which
# the registry never uses and which would make a second identity for the same trial.
_NCT = re.compile(r"NCT[0-9]{8}")
_SHOWN = 40
"""At most this many characters of a refused value are quoted back."""


def is_nct_id(value: object) -> bool:
    """True for an identifier exactly as the registry writes it ('NCT02260505')."""
    return isinstance(value, str) and _NCT.fullmatch(value) is not None


def normalise_nct_id(value: str) -> str:
    """'nct02260505 ' -> 'NCT02260505'; anything else raises InvalidTrialId."""
    candidate = value.strip().upper()
    if not _NCT.fullmatch(candidate):
        shown = value.strip() or value
        if len(shown) > _SHOWN:
            shown = shown[: _SHOWN - 1] + "…"
        raise InvalidTrialId(shown)
    return candidate
