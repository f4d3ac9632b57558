"""Recorded registry responses stored into a temporary store, shared by the show, referral and
search tests."""

from __future__ import annotations

import json
from pathlib import Path

from trialfinder.geocode import place_offline
from trialfinder.registry import parse_study
from trialfinder.store import Store

CTGOV = Path(__file__).parent / "fixtures" / "ctgov"
FRENCH = {
    "NCT03830788": "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json",
    "NCT06620835": "study_NCT06620835_nsclc_FR27sites_sitestatus_withdrawn_contacts.json",
    "NCT06323538": "study_NCT06323538_COPLANT_excerpt_retyped.json",
}


def recorded(nct_id: str) -> dict:
    return json.loads((CTGOV / FRENCH[nct_id]).read_text(encoding="utf-8"))


def fill_store(path: Path | str, *nct_ids: str) -> None:
    """Save the recorded responses of these trials (all three French ones by default),
    placed by the current rules as a sync places them."""
    with Store(path) as store:
        for nct in nct_ids or tuple(FRENCH):
            raw = (CTGOV / FRENCH[nct]).read_text(encoding="utf-8")
            store.save_trial(place_offline(parse_study(json.loads(raw)).trial, store), raw)
