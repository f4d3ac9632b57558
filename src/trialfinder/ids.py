"""ClinicalTrials.gov identifiers."""

from __future__ import annotations

import re

from trialfinder.errors import InvalidTrialId

_NCT = re.compile(r"^NCT\d{8}$")


def normalise_nct_id(value: str) -> str:
    """'nct02260505 ' -> 'NCT02260505'; anything else raises InvalidTrialId."""
    candidate = value.strip().upper()
    if not _NCT.match(candidate):
        raise InvalidTrialId(value.strip() or value)
    return candidate
